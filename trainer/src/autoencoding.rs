//! Training of the autoencoder (mean squared error) and the variational autoencoder (negative
//! ELBO), with their test-set metrics and per-epoch grids.

use anyhow::{Context, Result, anyhow};
use burn::config::Config;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};
use shared::autoencoder::{Autoencoder, AutoencoderConfig, export_autoencoder, mse_of_logits};
use shared::grid::{GrayImage, PixelRange, tile};
use shared::latent::{SeededRng, normal_latents};
use shared::mnist::Mnist;
use shared::vae::{Vae, VaeConfig, bernoulli_nll, export_vae, latent_map};
use shared::weights::StorageType;
use shared::{IMAGE_PIXELS, IMAGE_SIDE};

use crate::checkpoint::{Checkpoint, restore_single, single_files};
use crate::data::{images_tensor, matrix};
use crate::sample::GRID_COLUMNS;
use crate::train::{Session, TrainBatch, Trainee};

/// Test images per forward pass during evaluation.
pub const EVAL_BATCH: usize = 500;

/// Seed offset of the fixed noise behind the test-set ELBO and the sample grids, shared with
/// `trainer eval` so both report the same ELBO for the same seed.
pub const EVAL_STREAM: u64 = 0xE1B0_5EED;

/// Side of the latent map drawn for a 2-D VAE, each epoch and by `trainer sample`.
pub const MAP_SIDE: usize = 16;

/// Hyper-parameters of an autoencoder run.
#[derive(Config, Debug)]
pub struct AutoencoderTrainingConfig {
    /// Architecture.
    pub model: AutoencoderConfig,
    /// Images per step.
    #[config(default = 128)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[config(default = 1e-3)]
    pub learning_rate: f64,
}

/// Hyper-parameters of a VAE run.
#[derive(Config, Debug)]
pub struct VaeTrainingConfig {
    /// Architecture.
    pub model: VaeConfig,
    /// Images per step.
    #[config(default = 128)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[config(default = 1e-3)]
    pub learning_rate: f64,
}

/// Trains the autoencoder.
pub fn run_autoencoder(session: &Session, resume: Option<Checkpoint>) -> Result<()> {
    let settings = session.settings;
    let mut model_config = AutoencoderConfig::new();
    if let Some(dim) = settings.latent_dim {
        model_config = model_config.with_code_dim(dim);
    }
    let config = AutoencoderTrainingConfig::new(model_config)
        .with_batch_size(settings.batch_size)
        .with_learning_rate(settings.learning_rate);

    let mut trainee = AutoencoderRun {
        model: config.model.init(&session.training),
        optimizer: AdamConfig::new().init(),
        config,
    };
    let state;
    (trainee.model, trainee.optimizer, state) = restore_single(resume, trainee.model, trainee.optimizer)?;
    session.run(trainee, state)
}

/// Trains the variational autoencoder.
pub fn run_vae(session: &Session, resume: Option<Checkpoint>) -> Result<()> {
    let settings = session.settings;
    let mut model_config = VaeConfig::new();
    if let Some(dim) = settings.latent_dim {
        model_config = model_config.with_latent_dim(dim);
    }
    let config = VaeTrainingConfig::new(model_config)
        .with_batch_size(settings.batch_size)
        .with_learning_rate(settings.learning_rate);

    let mut trainee = VaeRun {
        model: config.model.init(&session.training),
        optimizer: AdamConfig::new().init(),
        config,
        seed: settings.seed,
    };
    let state;
    (trainee.model, trainee.optimizer, state) = restore_single(resume, trainee.model, trainee.optimizer)?;
    session.run(trainee, state)
}

/// An autoencoder being trained.
pub struct AutoencoderRun {
    /// The network.
    pub model: Autoencoder,
    /// Its optimizer.
    pub optimizer: ModuleOptimizer,
    /// The hyper-parameters.
    pub config: AutoencoderTrainingConfig,
}

impl Trainee for AutoencoderRun {
    fn pixel_range(&self) -> PixelRange {
        PixelRange::Unit
    }

    fn loss_names(&self) -> &'static [&'static str] {
        &["mse"]
    }

    fn step(mut self, batch: TrainBatch, _noise: &mut SeededRng) -> (Self, Vec<f32>) {
        let logits = self.model.logits(batch.images.clone());
        let loss = mse_of_logits(logits, batch.images);
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        self.model = self.optimizer.step(self.config.learning_rate, self.model, grads);
        (self, vec![loss.into_scalar()])
    }

    fn evaluate(&self, test: &Mnist, device: &Device) -> Result<Vec<(String, f64)>> {
        let metrics = autoencoder_metrics(&self.model.valid().to_device(device), test, device)?;
        Ok(vec![
            ("test_mse".to_string(), metrics.mse),
            ("test_bce_nats".to_string(), metrics.bce),
        ])
    }

    fn samples(&self, test: &Mnist, device: &Device) -> Result<GrayImage> {
        let model = self.model.valid().to_device(device);
        let indices: Vec<u32> = (0..(2 * GRID_COLUMNS).min(test.len()) as u32).collect();
        let inputs = images_tensor(test, &indices, PixelRange::Unit, device);
        let outputs = model.forward(inputs.clone());
        Ok(inputs_above_outputs(&read(inputs)?, &read(outputs)?))
    }

    fn checkpoint_files(&self) -> Result<Vec<(&'static str, Vec<u8>)>> {
        single_files(&self.model, &self.optimizer)
    }

    fn export(&self, storage: StorageType) -> Result<(String, Vec<u8>)> {
        let bytes = export_autoencoder(&self.config.model, &self.model, storage).context("export failed")?;
        Ok(("autoencoder.bin".to_string(), bytes))
    }

    fn config(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).unwrap_or_default()
    }
}

/// A VAE being trained.
pub struct VaeRun {
    /// The network.
    pub model: Vae,
    /// Its optimizer.
    pub optimizer: ModuleOptimizer,
    /// The hyper-parameters.
    pub config: VaeTrainingConfig,
    /// The run's seed, which fixes the evaluation noise and the sample latents.
    pub seed: u64,
}

impl Trainee for VaeRun {
    fn pixel_range(&self) -> PixelRange {
        PixelRange::Unit
    }

    fn loss_names(&self) -> &'static [&'static str] {
        &["negative_elbo", "reconstruction", "kl"]
    }

    fn step(mut self, batch: TrainBatch, noise: &mut SeededRng) -> (Self, Vec<f32>) {
        let count = batch.digits.len();
        let latent_dim = self.config.model.latent_dim;
        let values: Vec<f32> = (0..count * latent_dim).map(|_| noise.next_normal() as f32).collect();
        let noise = matrix(values, count, latent_dim, &batch.images.device());

        let loss = self.model.loss(batch.images, noise);
        let total = loss.negative_elbo().mean();
        let grads = GradientsParams::from_grads(total.backward(), &self.model);
        self.model = self.optimizer.step(self.config.learning_rate, self.model, grads);

        let reconstruction: f32 = loss.reconstruction.mean().into_scalar();
        let kl: f32 = loss.kl.mean().into_scalar();
        (self, vec![total.into_scalar(), reconstruction, kl])
    }

    fn evaluate(&self, test: &Mnist, device: &Device) -> Result<Vec<(String, f64)>> {
        let metrics = vae_metrics(&self.model.valid().to_device(device), test, self.seed ^ EVAL_STREAM, device)?;
        Ok(vec![
            ("test_negative_elbo_nats".to_string(), metrics.negative_elbo),
            ("test_reconstruction_nats".to_string(), metrics.reconstruction),
            ("test_kl_nats".to_string(), metrics.kl),
        ])
    }

    fn samples(&self, _test: &Mnist, device: &Device) -> Result<GrayImage> {
        let model = self.model.valid().to_device(device);
        let latent_dim = self.config.model.latent_dim;
        let (latents, columns) = if latent_dim == 2 {
            (latent_map(MAP_SIDE), MAP_SIDE)
        } else {
            (normal_latents(self.seed ^ EVAL_STREAM, GRID_COLUMNS * GRID_COLUMNS, latent_dim), GRID_COLUMNS)
        };
        let count = latents.len() / latent_dim;
        let images = model.decode(matrix(latents, count, latent_dim, device));
        Ok(tile(&read(images)?, PixelRange::Unit, columns, 2))
    }

    fn checkpoint_files(&self) -> Result<Vec<(&'static str, Vec<u8>)>> {
        single_files(&self.model, &self.optimizer)
    }

    fn export(&self, storage: StorageType) -> Result<(String, Vec<u8>)> {
        let bytes = export_vae(&self.config.model, &self.model, storage).context("export failed")?;
        Ok((vae_file_name(self.config.model.latent_dim), bytes))
    }

    fn config(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).unwrap_or_default()
    }
}

/// Returns the weights file name of a VAE: `vae.bin` for the default latent size of 16, and
/// `vae-2d.bin` and so on for others.
pub fn vae_file_name(latent_dim: usize) -> String {
    if latent_dim == VaeConfig::new().latent_dim {
        "vae.bin".to_string()
    } else {
        format!("vae-{latent_dim}d.bin")
    }
}

/// Reconstruction quality of an autoencoder on a test set, per image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutoencoderMetrics {
    /// Mean squared error per pixel.
    pub mse: f64,
    /// Binary cross-entropy summed over each image's pixels, averaged over images, in nats.
    pub bce: f64,
}

/// Computes [`AutoencoderMetrics`] over every image of `test`.
pub fn autoencoder_metrics(model: &Autoencoder, test: &Mnist, device: &Device) -> Result<AutoencoderMetrics> {
    let (mut squared, mut bce) = (0.0f64, 0.0f64);
    for indices in eval_batches(test.len()) {
        let images = images_tensor(test, &indices, PixelRange::Unit, device);
        let logits = model.logits(images.clone());
        let nll = bernoulli_nll(logits.clone(), images.clone());
        let error = (sigmoid(logits) - images).square().sum();
        squared += f64::from(error.into_scalar::<f32>());
        bce += read1(nll)?.iter().map(|&v| f64::from(v)).sum::<f64>();
    }
    let count = test.len().max(1) as f64;
    Ok(AutoencoderMetrics {
        mse: squared / (count * IMAGE_PIXELS as f64),
        bce: bce / count,
    })
}

/// The negative ELBO of a VAE on a test set and its two terms, per image, in nats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VaeMetrics {
    /// Negative ELBO.
    pub negative_elbo: f64,
    /// Reconstruction term: binary cross-entropy summed over the pixels.
    pub reconstruction: f64,
    /// KL divergence of the posterior from the prior.
    pub kl: f64,
}

/// Computes [`VaeMetrics`] over every image of `test`, with one posterior sample per image from
/// a generator seeded with `seed`.
pub fn vae_metrics(model: &Vae, test: &Mnist, seed: u64, device: &Device) -> Result<VaeMetrics> {
    let latent_dim = model.latent_dim();
    let mut noise = SeededRng::new(seed);
    let (mut reconstruction, mut kl) = (0.0f64, 0.0f64);
    for indices in eval_batches(test.len()) {
        let images = images_tensor(test, &indices, PixelRange::Unit, device);
        let values: Vec<f32> = (0..indices.len() * latent_dim).map(|_| noise.next_normal() as f32).collect();
        let loss = model.loss(images, matrix(values, indices.len(), latent_dim, device));
        reconstruction += read1(loss.reconstruction)?.iter().map(|&v| f64::from(v)).sum::<f64>();
        kl += read1(loss.kl)?.iter().map(|&v| f64::from(v)).sum::<f64>();
    }
    let count = test.len().max(1) as f64;
    Ok(VaeMetrics {
        negative_elbo: (reconstruction + kl) / count,
        reconstruction: reconstruction / count,
        kl: kl / count,
    })
}

/// Splits `0..len` into evaluation batches of at most [`EVAL_BATCH`] indices.
pub fn eval_batches(len: usize) -> impl Iterator<Item = Vec<u32>> {
    (0..len).step_by(EVAL_BATCH).map(move |start| (start as u32..(start + EVAL_BATCH).min(len) as u32).collect())
}

/// Tiles inputs and their reconstructions in pairs of rows: a row of inputs, then the row of
/// their reconstructions below it.
pub fn inputs_above_outputs(inputs: &[f32], outputs: &[f32]) -> GrayImage {
    let row = GRID_COLUMNS * IMAGE_PIXELS;
    let mut values = Vec::with_capacity(inputs.len() * 2);
    for (input_row, output_row) in inputs.chunks(row).zip(outputs.chunks(row)) {
        values.extend_from_slice(input_row);
        values.extend_from_slice(output_row);
        // Pad a short last row, so the reconstructions stay under their inputs.
        let missing = row - input_row.len();
        values.extend(std::iter::repeat_n(0.0, missing));
    }
    debug_assert_eq!(values.len() % (IMAGE_SIDE * IMAGE_SIDE), 0);
    tile(&values, PixelRange::Unit, GRID_COLUMNS, 2)
}

fn read(images: Tensor<4>) -> Result<Vec<f32>> {
    images
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow!("{e:?}"))
        .context("failed to read images from the device")
}

fn read1(values: Tensor<1>) -> Result<Vec<f32>> {
    values
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow!("{e:?}"))
        .context("failed to read values from the device")
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::mnist::Split;

    fn fixture(split: Split) -> Mnist {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/mnist");
        Mnist::load(&dir, split).unwrap()
    }

    #[test]
    fn vae_file_names() {
        assert_eq!(vae_file_name(16), "vae.bin");
        assert_eq!(vae_file_name(2), "vae-2d.bin");
    }

    #[test]
    fn eval_batches_cover_every_index_once() {
        let all: Vec<u32> = eval_batches(1_234).flatten().collect();
        assert_eq!(all, (0..1_234).collect::<Vec<u32>>());
        assert_eq!(eval_batches(1_000).count(), 2);
    }

    #[test]
    fn short_vae_training_lowers_the_loss() {
        let train = fixture(Split::Train);
        let test = fixture(Split::Test);
        let device = Device::flex();
        let training = device.clone().autodiff();
        training.seed(7);
        let config = VaeTrainingConfig::new(VaeConfig::new().with_latent_dim(4));
        let mut run = VaeRun {
            model: config.model.init(&training),
            optimizer: AdamConfig::new().init(),
            config,
            seed: 7,
        };
        let before = vae_metrics(&run.model.valid(), &test, 1, &device).unwrap();

        let mut noise = SeededRng::new(3);
        for epoch in 0..3u32 {
            for batch in crate::data::batches(&crate::data::epoch_order(train.len(), 7, epoch), 64) {
                let images = images_tensor(&train, batch, PixelRange::Unit, &training);
                let digits = vec![0; batch.len()];
                let losses;
                (run, losses) = run.step(TrainBatch { images, digits }, &mut noise);
                assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
            }
        }
        let after = vae_metrics(&run.model.valid(), &test, 1, &device).unwrap();

        assert!(
            after.negative_elbo < before.negative_elbo - 50.0,
            "negative ELBO went from {} to {}",
            before.negative_elbo,
            after.negative_elbo
        );
        assert!((after.negative_elbo - after.reconstruction - after.kl).abs() < 1e-3);
    }

    #[test]
    fn short_autoencoder_training_lowers_test_mse() {
        let train = fixture(Split::Train);
        let test = fixture(Split::Test);
        let device = Device::flex();
        let training = device.clone().autodiff();
        training.seed(7);
        let config = AutoencoderTrainingConfig::new(AutoencoderConfig::new());
        let mut run = AutoencoderRun {
            model: config.model.init(&training),
            optimizer: AdamConfig::new().init(),
            config,
        };
        let before = autoencoder_metrics(&run.model.valid(), &test, &device).unwrap();

        let mut noise = SeededRng::new(0);
        for epoch in 0..3u32 {
            for batch in crate::data::batches(&crate::data::epoch_order(train.len(), 7, epoch), 64) {
                let images = images_tensor(&train, batch, PixelRange::Unit, &training);
                let digits = vec![0; batch.len()];
                (run, _) = run.step(TrainBatch { images, digits }, &mut noise);
            }
        }
        let after = autoencoder_metrics(&run.model.valid(), &test, &device).unwrap();

        // The loss is the MSE; the cross-entropy may rise in the first steps, so it is only
        // checked to be finite.
        assert!(after.mse < before.mse * 0.8, "test MSE went from {} to {}", before.mse, after.mse);
        assert!(after.bce.is_finite(), "test BCE is {}", after.bce);
    }

    #[test]
    fn grid_puts_reconstructions_under_inputs() {
        let inputs = vec![1.0; 3 * IMAGE_PIXELS];
        let outputs = vec![0.0; 3 * IMAGE_PIXELS];

        let grid = inputs_above_outputs(&inputs, &outputs);

        // Two rows of 28 px tiles with 2 px between them.
        assert_eq!(grid.height, 2 * IMAGE_SIDE + 2);
        let input_pixel = grid.pixels[0];
        let output_pixel = grid.pixels[(IMAGE_SIDE + 2) * grid.width];
        assert_eq!(input_pixel, 255);
        assert_eq!(output_pixel, 0);
    }
}
