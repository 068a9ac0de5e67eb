//! `trainer train`: the epoch loop with progress, per-epoch samples, losses, checkpoints and the
//! final export.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressStyle};
use shared::cgan::{ConditionalDiscriminatorConfig, conditional_inputs, digit_rows, labels_tensor};
use shared::dcgan::{DiscriminatorConfig, GeneratorConfig, export_generator};
use shared::grid::{PixelRange, tile};
use shared::latent::{SeededRng, normal_latents};
use shared::mnist::{Mnist, Split};
use shared::weights::{ModelKind, sha256_hex};
use tracing::info;

use crate::card::ModelCard;
use crate::checkpoint::{self, CheckpointState};
use crate::cli::{BackendArg, ModelArg, TrainArgs};
use crate::data::{batches, epoch_order, images_tensor, matrix};
use crate::gan::{CriticConfig, Gan, GanTrainingConfig, StepLosses};
use crate::sample::GRID_COLUMNS;
use crate::{atomic, device, png};

/// Number of digits in the per-epoch sample grid of the DCGAN: 8 rows of 8.
const SAMPLE_COUNT: usize = 64;

/// Seed offset of the fixed latent batch behind the per-epoch sample grids.
const SAMPLE_STREAM: u64 = 0x5A3D_1E55;

/// Runs `trainer train`.
pub fn train(args: &TrainArgs) -> Result<()> {
    match args.model {
        ModelArg::Dcgan => train_gan(args, ModelKind::Dcgan),
        ModelArg::Cgan => train_gan(args, ModelKind::Cgan),
    }
}

fn train_gan(args: &TrainArgs, kind: ModelKind) -> Result<()> {
    let out = args.out.clone().unwrap_or_else(|| Path::new("runs").join(kind.name()));
    let mut mnist = Mnist::load(&args.data_dir, Split::Train).with_context(|| {
        format!(
            "failed to load the MNIST training set from {}; run `trainer download --data-dir {}` first",
            args.data_dir.display(),
            args.data_dir.display()
        )
    })?;
    if let Some(limit) = args.limit {
        mnist.truncate(limit as usize);
    }
    let batch_size = args.batch_size as usize;
    if mnist.len() < 2 {
        bail!("the training set has {} images; at least 2 are needed", mnist.len());
    }

    let conditional = kind == ModelKind::Cgan;
    let (generator, discriminator) = if conditional {
        let generator = GeneratorConfig::new().with_condition_dim(shared::NUM_CLASSES);
        (generator, CriticConfig::Conditional(ConditionalDiscriminatorConfig::new()))
    } else {
        (GeneratorConfig::new(), CriticConfig::Plain(DiscriminatorConfig::new()))
    };
    let config = GanTrainingConfig::new(generator, discriminator)
        .with_batch_size(batch_size)
        .with_learning_rate(args.learning_rate);
    if !(args.learning_rate.is_finite() && args.learning_rate > 0.0) {
        bail!("invalid --learning-rate {}: expected a positive number", args.learning_rate);
    }

    fs::create_dir_all(out.join("samples"))
        .with_context(|| format!("failed to create the output folder {}", out.display()))?;
    let inference = device::device(args.backend)?;
    let training = inference.clone().autodiff();
    training.seed(args.seed);

    let (mut gan, mut state) = if args.resume {
        let (gan, state) = checkpoint::load(&out, &config, &training)?;
        info!(epochs_done = state.epochs_done, "resuming from the checkpoint");
        (gan, state)
    } else {
        let state = CheckpointState {
            epochs_done: 0,
            steps_done: 0,
            seconds: 0.0,
            last_losses: None,
        };
        (Gan::new(&config, &training), state)
    };
    atomic::write(&out.join("config.json"), config.to_string().as_bytes())?;

    let losses_path = out.join("losses.csv");
    if !args.resume || !losses_path.is_file() {
        atomic::write(&losses_path, b"epoch,step,discriminator_loss,generator_loss\n")?;
    }

    let latent_dim = config.generator.latent_dim;
    let input_dim = latent_dim + config.generator.condition_dim;
    let sample_inputs = sample_inputs(args.seed, latent_dim, conditional);
    info!(
        images = mnist.len(),
        batch_size,
        epochs = args.epochs,
        backend = ?args.backend,
        out = %out.display(),
        "training {kind}"
    );

    for epoch in state.epochs_done..args.epochs {
        let started = Instant::now();
        let order = epoch_order(mnist.len(), args.seed, epoch);
        let steps = order.len().div_ceil(batch_size);
        let progress = progress_bar(steps as u64, epoch + 1, args.epochs);
        let mut noise = SeededRng::new(args.seed.wrapping_add(u64::from(epoch) << 32));
        let mut rows = String::new();
        let (mut sum_d, mut sum_g, mut count, mut images) = (0.0f64, 0.0f64, 0usize, 0usize);

        for batch in batches(&order, batch_size) {
            let real = images_tensor(&mnist, batch, PixelRange::Symmetric, &training);
            let digits: Vec<u32> = batch.iter().map(|&i| u32::from(mnist.labels[i as usize])).collect();
            let inputs = [0, 1].map(|_| {
                let latents: Vec<f32> = (0..batch.len() * latent_dim).map(|_| noise.next_normal() as f32).collect();
                let rows = if conditional {
                    conditional_inputs(&latents, latent_dim, &digits).expect("MNIST labels are checked to be digits")
                } else {
                    latents
                };
                matrix(rows, batch.len(), input_dim, &training)
            });
            let labels = conditional.then(|| labels_tensor(&digits, &training).expect("MNIST labels are checked to be digits"));

            let losses: StepLosses;
            (gan, losses) = gan.step(&config, real, labels, inputs);
            check_finite(&losses, epoch, &out)?;

            state.steps_done += 1;
            sum_d += f64::from(losses.discriminator);
            sum_g += f64::from(losses.generator);
            count += 1;
            images += batch.len();
            let _ = writeln!(rows, "{},{},{},{}", epoch + 1, state.steps_done, losses.discriminator, losses.generator);

            let rate = images as f64 / started.elapsed().as_secs_f64().max(1e-9);
            progress.set_message(format!(
                "{rate:.0} img/s  D {:.3}  G {:.3}",
                losses.discriminator, losses.generator
            ));
            progress.inc(1);
        }
        progress.finish_and_clear();

        let seconds = started.elapsed().as_secs_f64();
        state.seconds += seconds;
        state.epochs_done = epoch + 1;
        let last_means = ((sum_d / count as f64) as f32, (sum_g / count as f64) as f32);
        state.last_losses = Some(last_means);

        append(&losses_path, rows.as_bytes())?;
        let samples = render_samples(&gan, &sample_inputs, input_dim, &inference)?;
        png::write(&out.join("samples").join(format!("epoch-{:03}.png", epoch + 1)), &samples)?;
        checkpoint::save(&out, &gan, &state)?;
        info!(
            epoch = epoch + 1,
            discriminator_loss = last_means.0,
            generator_loss = last_means.1,
            images_per_second = (images as f64 / seconds).round(),
            seconds = seconds.round(),
            "epoch finished"
        );
    }

    export(args, &out, kind, &config, &gan, &mnist, &state)
}

#[allow(clippy::too_many_arguments)]
fn export(
    args: &TrainArgs,
    out: &Path,
    kind: ModelKind,
    config: &GanTrainingConfig,
    gan: &Gan,
    mnist: &Mnist,
    state: &CheckpointState,
) -> Result<()> {
    let bytes = export_generator(kind, &config.generator, &gan.generator).context("export failed")?;
    let file_name = format!("{kind}.bin");
    let path = out.join(&file_name);
    atomic::write(&path, &bytes)?;

    let card = ModelCard {
        kind: kind.to_string(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        seed: args.seed,
        epochs: state.epochs_done,
        images: mnist.len(),
        batch_size: config.batch_size,
        backend: match args.backend {
            BackendArg::Cpu => "cpu (burn-flex)".to_string(),
            BackendArg::Wgpu => "wgpu".to_string(),
        },
        seconds: state.seconds,
        weights_file: file_name,
        weights_bytes: bytes.len(),
        weights_sha256: sha256_hex(&bytes),
        final_losses: state
            .last_losses
            .map(|(discriminator, generator)| {
                vec![
                    ("discriminator loss".to_string(), discriminator),
                    ("generator loss".to_string(), generator),
                ]
            })
            .unwrap_or_default(),
    };
    card.write(&out.join(format!("{kind}.md")))?;
    info!(weights = %path.display(), bytes = bytes.len(), "exported");
    Ok(())
}

/// Returns the fixed generator inputs of the per-epoch grids: 64 latents for the DCGAN, and for
/// the conditional GAN one row per digit, where column `j` of every row shares latent `j`.
fn sample_inputs(seed: u64, latent_dim: usize, conditional: bool) -> Vec<f32> {
    if conditional {
        digit_rows(&normal_latents(seed ^ SAMPLE_STREAM, GRID_COLUMNS, latent_dim), latent_dim)
    } else {
        normal_latents(seed ^ SAMPLE_STREAM, SAMPLE_COUNT, latent_dim)
    }
}

fn render_samples(gan: &Gan, inputs: &[f32], input_dim: usize, device: &Device) -> Result<shared::grid::GrayImage> {
    let generator = gan.generator.valid();
    let input = matrix(inputs.to_vec(), inputs.len() / input_dim, input_dim, device);
    let values = generator
        .forward(input)
        .into_data()
        .try_to_vec::<f32>()
        .context("failed to read the sample images")?;
    Ok(tile(&values, PixelRange::Symmetric, GRID_COLUMNS, 2))
}

fn check_finite(losses: &StepLosses, epoch: u32, out: &Path) -> Result<()> {
    if losses.discriminator.is_finite() && losses.generator.is_finite() {
        return Ok(());
    }
    bail!(
        "training diverged in epoch {}: discriminator loss {}, generator loss {}. \
         The checkpoint in {} holds the last finished epoch; resume it with \
         `--resume --learning-rate` set lower (for example half the current rate)",
        epoch + 1,
        losses.discriminator,
        losses.generator,
        checkpoint::folder(out).display()
    )
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

fn append(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("failed to open {}", path.display()))?;
    file.write_all(bytes).with_context(|| format!("failed to append to {}", path.display()))
}
