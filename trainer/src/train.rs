//! `trainer train`: the epoch loop shared by every model, with progress, per-epoch samples and
//! test metrics, interruptible checkpoints and the final export.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use burn::tensor::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use shared::grid::{GrayImage, PixelRange};
use shared::latent::SeededRng;
use shared::mnist::{Mnist, Split};
use shared::weights::{StorageType, sha256_hex};
use tracing::{info, warn};

use crate::card::ModelCard;
use crate::checkpoint::{self, CheckpointState};
use crate::cli::{BackendArg, TrainArgs};
use crate::data::{batches, epoch_order, images_tensor, load_mnist};
use crate::settings::Settings;
use crate::{atomic, device, png, report};

/// One batch of training images with their labels.
pub struct TrainBatch {
    /// `[batch, 1, 28, 28]` images in the model's [`Trainee::pixel_range`].
    pub images: Tensor<4>,
    /// The digit of each image.
    pub digits: Vec<u32>,
}

/// A model being trained: what the epoch loop needs from each kind.
pub trait Trainee: Sized {
    /// Range the training images are scaled to.
    fn pixel_range(&self) -> PixelRange;

    /// Names of the losses [`Trainee::step`] returns, in order.
    fn loss_names(&self) -> &'static [&'static str];

    /// Runs one optimisation step and returns the losses. `noise` is the run's random stream,
    /// saved in checkpoints, so a resumed run draws the same numbers.
    fn step(self, batch: TrainBatch, noise: &mut SeededRng) -> (Self, Vec<f32>);

    /// Checks the mean losses of a finished epoch and returns why training must stop, if it must.
    fn diagnose(&self, _mean_losses: &[f32]) -> Option<String> {
        None
    }

    /// Computes test-set metrics after an epoch, by name.
    fn evaluate(&self, _test: &Mnist, _device: &Device) -> Result<Vec<(String, f64)>> {
        Ok(Vec::new())
    }

    /// Draws the per-epoch sample grid.
    fn samples(&self, test: &Mnist, device: &Device) -> Result<GrayImage>;

    /// Serializes the networks and optimizers for a checkpoint.
    fn checkpoint_files(&self) -> Result<Vec<(&'static str, Vec<u8>)>>;

    /// Serializes the inference weights as `storage`; returns the file name and bytes.
    fn export(&self, storage: StorageType) -> Result<(String, Vec<u8>)>;

    /// Returns the architecture and optimiser config, saved in `config.json`.
    fn config(&self) -> serde_json::Value;
}

/// Removes the rows of `losses.csv` past `steps_done`. A run killed between logging an epoch's
/// steps and writing its checkpoint leaves them behind, and the resumed run logs them again.
fn drop_steps_after(path: &Path, steps_done: u64) -> Result<()> {
    let text = fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))?;
    let is_later = |line: &str| {
        let step = line.split(',').nth(1).and_then(|step| step.parse::<u64>().ok());
        step.is_some_and(|step| step > steps_done)
    };

    let mut earlier_rows = String::with_capacity(text.len());
    let mut dropped = 0;
    for line in text.lines() {
        if is_later(line) {
            dropped += 1;
        } else {
            earlier_rows.push_str(line);
            earlier_rows.push('\n');
        }
    }
    if dropped == 0 {
        return Ok(());
    }
    warn!(path = %path.display(), dropped, steps_done, "dropping the logged steps that the checkpoint does not contain");
    atomic::write(path, earlier_rows.as_bytes())
}

/// Returns the device seed of the step after `steps_done` steps of a run seeded with `seed`.
fn step_seed(seed: u64, steps_done: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ steps_done
}

/// Settings that decide which images each step of an epoch reads, so a resumed run keeps them.
const ORDER_SETTINGS: [&str; 3] = ["batch_size", "limit", "seed"];

/// Checks a resumed run's settings against the run's saved `config.json`: a change of an
/// [`ORDER_SETTINGS`] entry is an error, any other change a warning.
fn check_resumed_settings(settings: &Settings, saved_path: &Path) -> Result<()> {
    let saved = fs::read(saved_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
    let Some(saved) = saved else {
        warn!(path = %saved_path.display(), "the resumed run has no readable config.json, so changed settings cannot be reported");
        return Ok(());
    };

    let (order, other): (Vec<_>, Vec<_>) = settings
        .changes_from(&saved)
        .into_iter()
        .partition(|(key, _)| ORDER_SETTINGS.contains(&key.as_str()));
    for (_, change) in other {
        warn!("resuming with other settings: {change}");
    }
    if !order.is_empty() {
        let lines: Vec<String> = order.into_iter().map(|(_, change)| change).collect();
        bail!(
            "cannot resume with another batch size, limit or seed, because the checkpoint's place in the epoch would point at other images: {}",
            lines.join("; ")
        );
    }
    Ok(())
}

/// Runs `trainer train`.
pub fn train(args: &TrainArgs) -> Result<()> {
    let settings = Settings::resolve(args)?;
    let out = args.out.clone().unwrap_or_else(|| Path::new("runs").join(settings.model.name()));

    let inference = device::device(args.backend)?;
    let training = inference.clone().autodiff();
    training.seed(settings.seed);
    let resume = if args.resume {
        let found = checkpoint::load(&out)?;
        if let Some(model) = found.state.model
            && model != settings.model
        {
            bail!(
                "the checkpoint in {} is from an earlier {model} run, not {}; resume it with `trainer train {model}` or choose another --out",
                checkpoint::folder(&out).display(),
                settings.model
            );
        }
        if found.state.epochs_done >= settings.epochs {
            info!(
                epochs_done = found.state.epochs_done,
                "the checkpoint already has the requested epochs; exporting it without training"
            );
        } else {
            info!(epochs_done = found.state.epochs_done, steps_done = found.state.steps_done, "resuming from the checkpoint");
        }
        Some(found)
    } else {
        reject_existing_run(&out)?;
        None
    };

    let session = Session {
        args,
        settings: &settings,
        out: &out,
        inference,
        training,
    };
    settings.dispatch(&session, resume)
}

/// Fails if `out` already contains a run, whose checkpoint and files a new run would replace.
fn reject_existing_run(out: &Path) -> Result<()> {
    let checkpoint = checkpoint::folder(out);
    if checkpoint.exists() || out.join("config.json").exists() {
        bail!(
            "{} already contains a training run; continue it with --resume, choose another --out, or delete the folder to start over",
            out.display()
        );
    }
    Ok(())
}

/// Everything the epoch loop needs besides the model.
pub struct Session<'a> {
    /// The command line.
    pub args: &'a TrainArgs,
    /// The effective hyper-parameters.
    pub settings: &'a Settings,
    /// The run folder.
    pub out: &'a Path,
    /// Device for samples and evaluation.
    pub inference: Device,
    /// The same device with autodiff, for training.
    pub training: Device,
}

impl Session<'_> {
    /// Trains `trainee` for the configured epochs from `state`, then exports it.
    pub fn run<T: Trainee>(&self, mut trainee: T, mut state: CheckpointState) -> Result<()> {
        let settings = self.settings;
        let data = load_data(&self.args.data_dir, settings.limit)?;
        fs::create_dir_all(self.out.join("samples"))
            .with_context(|| format!("failed to create the output folder {}", self.out.display()))?;
        state.model = Some(settings.model);
        if state.steps_done > 0 {
            check_resumed_settings(settings, &self.out.join("config.json"))?;
        }
        let config_json = settings.to_json(trainee.config())?;
        atomic::write(&self.out.join("config.json"), config_json.as_bytes())?;

        let losses_path = self.out.join("losses.csv");
        if state.steps_done == 0 || !losses_path.is_file() {
            let header = format!("epoch,step,{}\n", trainee.loss_names().join(","));
            atomic::write(&losses_path, header.as_bytes())?;
        } else {
            drop_steps_after(&losses_path, state.steps_done)?;
        }
        let interrupted = interrupt_flag();
        if state.epochs_done < settings.epochs {
            info!(
                images = data.train.len(),
                test_images = data.test.len(),
                batch_size = settings.batch_size,
                epochs = settings.epochs,
                backend = ?self.args.backend,
                out = %self.out.display(),
                "training {}",
                settings.model
            );
        }

        for epoch in state.epochs_done..settings.epochs {
            let order = epoch_order(data.train.len(), settings.seed, epoch);
            let all: Vec<&[u32]> = batches(&order, settings.batch_size).collect();
            let resumed = state.epoch_progress.take().filter(|p| p.epoch == epoch);
            let mut progress = resumed.unwrap_or_else(|| EpochProgress::new(epoch, settings.seed, trainee.loss_names().len()));
            let bar = progress_bar(all.len() as u64, epoch + 1, settings.epochs);
            bar.set_position(progress.batches_done as u64);
            let started = Instant::now();
            let mut images = 0usize;
            let mut rows = String::new();
            let mut noise = progress.noise.clone();

            let Some(remaining) = all.get(progress.batches_done..) else {
                bail!(
                    "the checkpoint is {} batches into epoch {}, but the epoch has only {} batches with these settings; resume with the run's --batch-size, --limit and --seed",
                    progress.batches_done,
                    epoch + 1,
                    all.len()
                );
            };
            for batch in remaining {
                // Dropout draws from the device's generator, whose state a checkpoint does not
                // contain, so every step reseeds it from the run's seed and the step number.
                self.training.seed(step_seed(settings.seed, state.steps_done));
                let digits = batch.iter().map(|&i| u32::from(data.train.labels[i as usize])).collect();
                let images_tensor = images_tensor(&data.train, batch, trainee.pixel_range(), &self.training);
                let losses;
                (trainee, losses) = trainee.step(TrainBatch { images: images_tensor, digits }, &mut noise);
                check_finite(trainee.loss_names(), &losses, epoch, self.out)?;

                state.steps_done += 1;
                progress.batches_done += 1;
                progress.add(&losses);
                images += batch.len();
                let values: Vec<String> = losses.iter().map(f32::to_string).collect();
                let _ = writeln!(rows, "{},{},{}", epoch + 1, state.steps_done, values.join(","));

                let rate = images as f64 / started.elapsed().as_secs_f64().max(1e-9);
                bar.set_message(format!("{rate:.0} img/s  {}", format_losses(trainee.loss_names(), &losses)));
                bar.inc(1);

                if self.args.interrupt_after_steps == Some(state.steps_done) {
                    interrupted.store(true, Ordering::SeqCst);
                }
                if interrupted.load(Ordering::SeqCst) && progress.batches_done < all.len() {
                    bar.finish_and_clear();
                    progress.noise = noise;
                    state.seconds += started.elapsed().as_secs_f64();
                    state.epoch_progress = Some(progress);
                    append(&losses_path, rows.as_bytes())?;
                    checkpoint::save(self.out, &trainee.checkpoint_files()?, &state)?;
                    bail!(
                        "interrupted in epoch {}; the checkpoint in {} holds every finished step, \
                         continue with the same command and --resume",
                        epoch + 1,
                        checkpoint::folder(self.out).display()
                    );
                }
            }
            bar.finish_and_clear();

            let seconds = started.elapsed().as_secs_f64();
            state.seconds += seconds;
            state.epochs_done = epoch + 1;
            let means = progress.means();
            state.last_losses = trainee.loss_names().iter().map(|n| n.to_string()).zip(means.iter().copied()).collect();
            append(&losses_path, rows.as_bytes())?;

            state.test_metrics = trainee.evaluate(&data.test, &self.inference)?;
            if let Some((name, value)) = state.test_metrics.iter().find(|(_, value)| !value.is_finite()) {
                return Err(diverged(epoch, &format!("{name} {value}"), self.out));
            }
            let samples = trainee.samples(&data.test, &self.inference)?;
            png::write(&self.out.join("samples").join(format!("epoch-{:03}.png", epoch + 1)), &samples)?;
            checkpoint::save(self.out, &trainee.checkpoint_files()?, &state)?;
            report::append_epoch(self.out, epoch + 1, &state.last_losses, &state.test_metrics)?;
            info!(
                epoch = epoch + 1,
                losses = %format_losses(trainee.loss_names(), &means),
                test = %format_metrics(&state.test_metrics),
                images_per_second = (images as f64 / seconds).round(),
                seconds = (seconds * 10.0).round() / 10.0,
                "epoch finished"
            );

            if let Some(reason) = trainee.diagnose(&means) {
                bail!(
                    "training stopped after epoch {}: {reason}. The checkpoint in {} holds this epoch; \
                     resume it with --resume and a lower --learning-rate (for example half of {})",
                    epoch + 1,
                    checkpoint::folder(self.out).display(),
                    settings.learning_rate
                );
            }
            if interrupted.load(Ordering::SeqCst) && epoch + 1 < settings.epochs {
                bail!(
                    "interrupted after epoch {}; continue with the same command and --resume",
                    epoch + 1
                );
            }
        }

        report::finish(self.out)?;
        self.export(&trainee, &state, &data.train, &config_json)
    }

    fn export<T: Trainee>(&self, trainee: &T, state: &CheckpointState, train: &Mnist, config_json: &str) -> Result<()> {
        let (file_name, bytes) = trainee.export(self.settings.storage)?;
        let path = self.out.join(&file_name);
        atomic::write(&path, &bytes)?;
        let stem = file_name.trim_end_matches(".bin");
        atomic::write(&self.out.join(format!("{stem}.config.json")), config_json.as_bytes())?;

        let card = ModelCard {
            kind: self.settings.model.to_string(),
            command: command_line(),
            seed: self.settings.seed,
            epochs: state.epochs_done,
            images: train.len(),
            batch_size: self.settings.batch_size,
            learning_rate: self.settings.learning_rate,
            backend: match self.args.backend {
                BackendArg::Cpu => "cpu (burn-flex)".to_string(),
                BackendArg::Wgpu => "wgpu".to_string(),
            },
            seconds: state.seconds,
            weights_file: file_name.clone(),
            weights_bytes: bytes.len(),
            weights_sha256: sha256_hex(&bytes),
            storage: self.settings.storage.to_string(),
            final_losses: state.last_losses.clone(),
            test_metrics: state.test_metrics.clone(),
        };
        card.write(&self.out.join(format!("{stem}.md")))?;
        info!(weights = %path.display(), bytes = bytes.len(), "exported");
        Ok(())
    }
}

/// Progress inside an unfinished epoch, saved when a run is interrupted mid-epoch.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EpochProgress {
    /// The epoch, counted from 0.
    pub epoch: u32,
    /// Batches of the epoch already trained on.
    pub batches_done: usize,
    /// The noise generator after those batches.
    pub noise: SeededRng,
    /// Sum of each loss over those batches.
    pub loss_sums: Vec<f64>,
}

impl EpochProgress {
    fn new(epoch: u32, seed: u64, losses: usize) -> Self {
        Self {
            epoch,
            batches_done: 0,
            noise: SeededRng::new(seed.wrapping_add(u64::from(epoch) << 32)),
            loss_sums: vec![0.0; losses],
        }
    }

    fn add(&mut self, losses: &[f32]) {
        for (sum, &loss) in self.loss_sums.iter_mut().zip(losses) {
            *sum += f64::from(loss);
        }
    }

    fn means(&self) -> Vec<f32> {
        let count = self.batches_done.max(1) as f64;
        self.loss_sums.iter().map(|sum| (sum / count) as f32).collect()
    }
}

/// The training and test sets.
pub struct Data {
    /// Training images, truncated to `--limit`.
    pub train: Mnist,
    /// Test images.
    pub test: Mnist,
}

fn load_data(dir: &Path, limit: Option<usize>) -> Result<Data> {
    let mut train = load_mnist(dir, Split::Train)?;
    if let Some(limit) = limit {
        train.truncate(limit);
    }
    if train.len() < 2 {
        bail!("the training set has {} images; at least 2 are needed", train.len());
    }
    let test = load_mnist(dir, Split::Test)?;
    Ok(Data { train, test })
}

/// Returns a flag that turns true on Ctrl-C (SIGINT) or SIGTERM. The first signal makes the loop
/// checkpoint and stop, and a second one ends the process at once.
fn interrupt_flag() -> Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let handler_flag = flag.clone();
        let result = ctrlc::set_handler(move || {
            if handler_flag.swap(true, Ordering::SeqCst) {
                eprintln!("interrupted twice; exiting without a checkpoint");
                std::process::exit(130);
            }
            eprintln!("interrupt received; writing a checkpoint after the current step (press Ctrl-C again to exit now)");
        });
        if let Err(error) = result {
            warn!(%error, "could not install the Ctrl-C handler; an interrupt will lose the current epoch");
        }
        flag
    })
    .clone()
}

fn check_finite(names: &[&str], losses: &[f32], epoch: u32, out: &Path) -> Result<()> {
    if losses.iter().all(|loss| loss.is_finite()) {
        return Ok(());
    }
    Err(diverged(epoch, &format_losses(names, losses), out))
}

/// Returns the error for a run that diverged in `epoch` (from 0), showing `values`, with the
/// way to go on from the last checkpoint or, in the first epoch, to start again.
fn diverged(epoch: u32, values: &str, out: &Path) -> anyhow::Error {
    let next = if epoch == 0 {
        format!(
            "No epoch finished, so start again with a lower --learning-rate (for example half the current rate), \
             after deleting {} or with another --out",
            out.display()
        )
    } else {
        format!(
            "The checkpoint in {} holds the last finished epoch; resume it with `--resume --learning-rate` set \
             lower (for example half the current rate)",
            checkpoint::folder(out).display()
        )
    };
    anyhow!("training diverged in epoch {}: {values}. {next}", epoch + 1)
}

fn format_losses(names: &[&str], losses: &[f32]) -> String {
    names
        .iter()
        .zip(losses)
        .map(|(name, loss)| format!("{name} {loss:.4}"))
        .collect::<Vec<_>>()
        .join("  ")
}

/// Formats test-set metrics for the epoch log. The GANs have none during training.
fn format_metrics(metrics: &[(String, f64)]) -> String {
    if metrics.is_empty() {
        return "none (`trainer eval` measures the finished model)".to_string();
    }
    metrics
        .iter()
        .map(|(name, value)| format!("{name} {value:.4}"))
        .collect::<Vec<_>>()
        .join("  ")
}

fn progress_bar(steps: u64, epoch: u32, epochs: u32) -> ProgressBar {
    let progress = ProgressBar::new(steps);
    progress.set_style(
        ProgressStyle::with_template("epoch {prefix} {bar:30} {pos}/{len} {elapsed_precise} {msg}")
            .expect("the progress template is valid"),
    );
    progress.set_prefix(format!("{epoch}/{epochs}"));
    progress
}

/// Appends `bytes` to the file at `path`.
pub fn append(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("failed to open {}", path.display()))?;
    file.write_all(bytes).with_context(|| format!("failed to append to {}", path.display()))
}

/// Returns the command line as a user would type it, with `trainer` in place of the binary path.
fn command_line() -> String {
    std::iter::once("trainer".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ")
}
