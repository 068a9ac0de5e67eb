//! Adversarial training of the DCGAN and the conditional GAN: one discriminator step, then one
//! generator step.

use anyhow::{Context, Result, anyhow};
use burn::config::Config;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use shared::cgan::{
    ConditionalDiscriminator, ConditionalDiscriminatorConfig, conditional_inputs, digit_rows, labels_tensor,
};
use shared::dcgan::{Discriminator, DiscriminatorConfig, Generator, GeneratorConfig, export_generator};
use shared::grid::{GrayImage, PixelRange, tile};
use shared::latent::{SeededRng, normal_latents};
use shared::mnist::Mnist;
use shared::weights::{ModelKind, StorageType};

use crate::checkpoint::{Checkpoint, CheckpointState, module_bytes, optimizer_bytes};
use crate::data::matrix;
use crate::sample::GRID_COLUMNS;
use crate::train::{Session, TrainBatch, Trainee};

/// Architecture of the discriminator.
#[derive(Config, Debug)]
pub enum CriticConfig {
    /// The DCGAN discriminator, which scores images alone.
    Plain(DiscriminatorConfig),
    /// The conditional GAN discriminator, which scores images with their labels.
    Conditional(ConditionalDiscriminatorConfig),
}

impl CriticConfig {
    /// Initializes the discriminator.
    pub fn init(&self, device: &Device) -> Critic {
        match self {
            CriticConfig::Plain(config) => Critic::Plain(config.init(device)),
            CriticConfig::Conditional(config) => Critic::Conditional(config.init(device)),
        }
    }
}

/// The discriminator of either GAN.
#[derive(Module, Debug)]
pub enum Critic {
    /// Scores images.
    Plain(Discriminator),
    /// Scores images for their labels.
    Conditional(ConditionalDiscriminator),
}

impl Critic {
    /// Scores a batch of images; `labels` (one-hot rows) is required by the conditional critic
    /// and ignored by the plain one.
    ///
    /// # Panics
    ///
    /// Panics if the conditional critic gets no labels, which is a bug in the caller.
    pub fn forward(&self, images: Tensor<4>, labels: Option<Tensor<2>>) -> Tensor<1> {
        match self {
            Critic::Plain(discriminator) => discriminator.forward(images),
            Critic::Conditional(discriminator) => {
                discriminator.forward(images, labels.expect("the conditional critic needs labels"))
            }
        }
    }
}

/// Hyper-parameters of a GAN training run.
#[derive(Config, Debug)]
pub struct GanTrainingConfig {
    /// Generator architecture.
    pub generator: GeneratorConfig,
    /// Discriminator architecture.
    pub discriminator: CriticConfig,
    /// Images per step.
    #[config(default = 128)]
    pub batch_size: usize,
    /// Adam learning rate of both networks.
    #[config(default = 2e-4)]
    pub learning_rate: f64,
    /// Adam's first-moment decay.
    #[config(default = 0.5)]
    pub beta_1: f32,
    /// Adam's second-moment decay.
    #[config(default = 0.999)]
    pub beta_2: f32,
    /// Target of real images in the discriminator loss (one-sided label smoothing).
    #[config(default = 0.9)]
    pub real_target: f32,
}

impl GanTrainingConfig {
    /// Returns the Adam configuration both networks use.
    pub fn optimizer(&self) -> AdamConfig {
        AdamConfig::new()
            .with_beta_1(self.beta_1)
            .with_beta_2(self.beta_2)
            .with_epsilon(1e-8)
    }
}

/// Mean losses of one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepLosses {
    /// Discriminator loss: BCE on real images (target `real_target`) plus BCE on generated ones.
    pub discriminator: f32,
    /// Generator loss: BCE of generated images against the real target 1.
    pub generator: f32,
}

/// The two networks and their optimizers.
pub struct Gan {
    /// The generator being trained.
    pub generator: Generator,
    /// The discriminator being trained.
    pub discriminator: Critic,
    /// The generator's optimizer.
    pub generator_optimizer: ModuleOptimizer,
    /// The discriminator's optimizer.
    pub discriminator_optimizer: ModuleOptimizer,
}

impl Gan {
    /// Initializes both networks on `device`, which must have autodiff enabled.
    pub fn new(config: &GanTrainingConfig, device: &Device) -> Self {
        Self {
            generator: config.generator.init(device),
            discriminator: config.discriminator.init(device),
            generator_optimizer: config.optimizer().init(),
            discriminator_optimizer: config.optimizer().init(),
        }
    }

    /// Runs one discriminator step and one generator step on a batch of real images and two
    /// batches of generator inputs, the first for the discriminator step and the second for the
    /// generator step.
    ///
    /// For a conditional GAN, `labels` contains the one-hot labels of the real images, and each input
    /// row is a latent followed by the same row's label, so real and generated batches carry the
    /// same digits.
    ///
    /// # Shapes
    ///
    /// - real: `[batch, 1, 28, 28]` in `[-1, 1]`
    /// - labels: `[batch, 10]`
    /// - inputs: `[batch, latent_dim + condition_dim]` each
    pub fn step(
        mut self,
        config: &GanTrainingConfig,
        real: Tensor<4>,
        labels: Option<Tensor<2>>,
        inputs: [Tensor<2>; 2],
    ) -> (Self, StepLosses) {
        let lr = config.learning_rate;
        let [input_d, input] = inputs;

        let fake = self.generator.forward(input_d).detach();
        let loss_real = bce_with_logits(self.discriminator.forward(real, labels.clone()), config.real_target);
        let loss_fake = bce_with_logits(self.discriminator.forward(fake, labels.clone()), 0.0);
        let loss_d = loss_real + loss_fake;
        let grads = GradientsParams::from_grads(loss_d.backward(), &self.discriminator);
        self.discriminator = self.discriminator_optimizer.step(lr, self.discriminator, grads);

        let fake = self.generator.forward(input);
        let loss_g = bce_with_logits(self.discriminator.forward(fake, labels), 1.0);
        let grads = GradientsParams::from_grads(loss_g.backward(), &self.generator);
        self.generator = self.generator_optimizer.step(lr, self.generator, grads);

        let losses = StepLosses {
            discriminator: loss_d.into_scalar(),
            generator: loss_g.into_scalar(),
        };
        (self, losses)
    }
}

/// Mean binary cross-entropy of `logits` against a constant `target`, computed stably as
/// `max(x, 0) - x t + ln(1 + e^-|x|)`.
pub fn bce_with_logits(logits: Tensor<1>, target: f32) -> Tensor<1> {
    let positive = logits.clone().clamp_min(0.0);
    let cross = logits.clone().mul_scalar(target);
    let softplus = logits.abs().neg().exp().log1p();
    (positive - cross + softplus).mean()
}

const GENERATOR: &str = "generator.bpk";
const DISCRIMINATOR: &str = "discriminator.bpk";
const GENERATOR_OPTIMIZER: &str = "generator-optimizer.bpk";
const DISCRIMINATOR_OPTIMIZER: &str = "discriminator-optimizer.bpk";

/// Number of digits in the per-epoch sample grid of the DCGAN: 8 rows of 8.
const SAMPLE_COUNT: usize = 64;

/// Seed offset of the fixed latent batch behind the per-epoch sample grids.
const SAMPLE_STREAM: u64 = 0x5A3D_1E55;

/// Lowest mean discriminator loss a working GAN can reach: with real targets of 0.9 the loss on
/// real images is at least the entropy of Bernoulli(0.9), about 0.325 nats.
const DISCRIMINATOR_FLOOR: f32 = 0.325;

/// A mean discriminator loss this close to [`DISCRIMINATOR_FLOOR`] over a whole epoch means the
/// discriminator separates every image and the generator gets no useful gradient.
const COLLAPSE_MARGIN: f32 = 0.01;

/// Trains the DCGAN or, for `--model cgan`, the conditional GAN.
pub fn run(session: &Session, resume: Option<Checkpoint>) -> Result<()> {
    let settings = session.settings;
    let kind = settings.model;
    let conditional = kind == ModelKind::Cgan;
    let latent_dim = settings.latent_dim.unwrap_or(64);
    let (generator, discriminator) = if conditional {
        let generator = GeneratorConfig::new().with_condition_dim(shared::NUM_CLASSES);
        (generator, CriticConfig::Conditional(ConditionalDiscriminatorConfig::new()))
    } else {
        (GeneratorConfig::new(), CriticConfig::Plain(DiscriminatorConfig::new()))
    };
    let config = GanTrainingConfig::new(generator.with_latent_dim(latent_dim), discriminator)
        .with_batch_size(settings.batch_size)
        .with_learning_rate(settings.learning_rate);

    let mut gan = Gan::new(&config, &session.training);
    let state = match resume {
        Some(checkpoint) => {
            gan.generator = checkpoint.module(GENERATOR, gan.generator)?;
            gan.discriminator = checkpoint.module(DISCRIMINATOR, gan.discriminator)?;
            gan.generator_optimizer = checkpoint.optimizer(GENERATOR_OPTIMIZER, config.optimizer().init())?;
            gan.discriminator_optimizer = checkpoint.optimizer(DISCRIMINATOR_OPTIMIZER, config.optimizer().init())?;
            checkpoint.state
        }
        None => CheckpointState::default(),
    };

    let sample_inputs = if conditional {
        digit_rows(&normal_latents(settings.seed ^ SAMPLE_STREAM, GRID_COLUMNS, latent_dim), latent_dim)
    } else {
        normal_latents(settings.seed ^ SAMPLE_STREAM, SAMPLE_COUNT, latent_dim)
    };
    let trainee = GanRun {
        gan,
        config,
        kind,
        sample_inputs,
    };
    session.run(trainee, state)
}

/// A GAN with its training config, as the epoch loop drives it.
pub struct GanRun {
    /// The networks and optimizers.
    pub gan: Gan,
    /// The hyper-parameters.
    pub config: GanTrainingConfig,
    /// DCGAN or conditional GAN.
    pub kind: ModelKind,
    /// Fixed generator inputs of the per-epoch grids: 64 latents for the DCGAN, one row per
    /// digit for the conditional GAN, where column `j` of every row shares latent `j`.
    pub sample_inputs: Vec<f32>,
}

impl GanRun {
    fn input_dim(&self) -> usize {
        self.config.generator.latent_dim + self.config.generator.condition_dim
    }
}

impl Trainee for GanRun {
    fn pixel_range(&self) -> PixelRange {
        PixelRange::Symmetric
    }

    fn loss_names(&self) -> &'static [&'static str] {
        &["discriminator_loss", "generator_loss"]
    }

    fn step(mut self, batch: TrainBatch, noise: &mut SeededRng) -> (Self, Vec<f32>) {
        let count = batch.digits.len();
        let latent_dim = self.config.generator.latent_dim;
        let input_dim = self.input_dim();
        let device = batch.images.device();
        let conditional = self.kind == ModelKind::Cgan;

        let inputs = [0, 1].map(|_| {
            let latents: Vec<f32> = (0..count * latent_dim).map(|_| noise.next_normal() as f32).collect();
            let rows = if conditional {
                conditional_inputs(&latents, latent_dim, &batch.digits).expect("MNIST labels are checked to be digits")
            } else {
                latents
            };
            matrix(rows, count, input_dim, &device)
        });
        let labels = conditional.then(|| labels_tensor(&batch.digits, &device).expect("MNIST labels are checked to be digits"));

        let losses;
        (self.gan, losses) = self.gan.step(&self.config, batch.images, labels, inputs);
        (self, vec![losses.discriminator, losses.generator])
    }

    fn diagnose(&self, mean_losses: &[f32]) -> Option<String> {
        let discriminator = mean_losses[0];
        (discriminator < DISCRIMINATOR_FLOOR + COLLAPSE_MARGIN).then(|| {
            format!(
                "the discriminator loss averaged {discriminator:.4} over the epoch, at its floor of \
                 {DISCRIMINATOR_FLOOR}: the discriminator rejects every generated digit, so the \
                 generator no longer learns"
            )
        })
    }

    fn samples(&self, _test: &Mnist, device: &Device) -> Result<GrayImage> {
        let generator = self.gan.generator.valid().to_device(device);
        let input_dim = self.input_dim();
        let input = matrix(self.sample_inputs.clone(), self.sample_inputs.len() / input_dim, input_dim, device);
        let values = generator
            .forward(input)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow!("{e:?}"))
            .context("failed to read the sample images")?;
        Ok(tile(&values, PixelRange::Symmetric, GRID_COLUMNS, 2))
    }

    // NOTE: a resumed GAN run ends with other BatchNorm running statistics than an uninterrupted
    // one, although its losses and trainable tensors match. The cause is not known yet.
    fn checkpoint_files(&self) -> Result<Vec<(&'static str, Vec<u8>)>> {
        Ok(vec![
            (GENERATOR, module_bytes(&self.gan.generator)?),
            (DISCRIMINATOR, module_bytes(&self.gan.discriminator)?),
            (GENERATOR_OPTIMIZER, optimizer_bytes(&self.gan.generator_optimizer)?),
            (DISCRIMINATOR_OPTIMIZER, optimizer_bytes(&self.gan.discriminator_optimizer)?),
        ])
    }

    fn export(&self, storage: StorageType) -> Result<(String, Vec<u8>)> {
        let bytes = export_generator(self.kind, &self.config.generator, &self.gan.generator, storage)
            .context("export failed")?;
        Ok((format!("{}.bin", self.kind), bytes))
    }

    fn config(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bce_matches_direct_formula() {
        let device = Device::flex();
        let logits = Tensor::<1>::from_floats([-3.0, 0.0, 2.5], &device);
        let sigmoid = |x: f32| 1.0 / (1.0 + (-x).exp());
        let expected: f32 = [-3.0f32, 0.0, 2.5]
            .iter()
            .map(|&x| -(0.9 * sigmoid(x).ln() + 0.1 * (1.0 - sigmoid(x)).ln()))
            .sum::<f32>()
            / 3.0;

        let actual: f32 = bce_with_logits(logits, 0.9).into_scalar();

        assert!((actual - expected).abs() < 1e-5, "{actual} != {expected}");
    }

    #[test]
    fn bce_is_finite_for_extreme_logits() {
        let device = Device::flex();
        let logits = Tensor::<1>::from_floats([-1e4, 1e4], &device);
        let loss: f32 = bce_with_logits(logits, 1.0).into_scalar();
        assert!(loss.is_finite());
        assert!((loss - 5e3).abs() < 1.0, "{loss}");
    }

    #[test]
    fn training_steps_change_both_networks() {
        use crate::data::{images_tensor, matrix};
        use shared::grid::PixelRange;
        use shared::latent::normal_latents;
        use shared::mnist::{Mnist, Split};

        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/mnist");
        let mnist = Mnist::load(&fixture, Split::Train).unwrap();
        let device = Device::flex().autodiff();
        device.seed(1);
        let discriminator = CriticConfig::Plain(DiscriminatorConfig::new());
        let config = GanTrainingConfig::new(GeneratorConfig::new(), discriminator).with_batch_size(32);
        let mut gan = Gan::new(&config, &device);

        let plain = Device::flex();
        let probe_latents = matrix(normal_latents(9, 4, 64), 4, 64, &plain);
        let probe_images = images_tensor(&mnist, &[0, 1, 2, 3], PixelRange::Symmetric, &plain);
        let generated_before = gan.generator.valid().forward(probe_latents.clone()).into_data();
        let scores_before = gan.discriminator.valid().forward(probe_images.clone(), None).into_data();

        for step in 0..3u32 {
            let indices: Vec<u32> = (step * 32..(step + 1) * 32).collect();
            let real = images_tensor(&mnist, &indices, PixelRange::Symmetric, &device);
            let latent = matrix(normal_latents(u64::from(step), 32, 64), 32, 64, &device);
            let losses;
            (gan, losses) = gan.step(&config, real, None, [latent.clone(), latent]);
            assert!(losses.discriminator.is_finite(), "{losses:?}");
            assert!(losses.generator.is_finite(), "{losses:?}");
        }

        let generated_after = gan.generator.valid().forward(probe_latents).into_data();
        let scores_after = gan.discriminator.valid().forward(probe_images, None).into_data();
        assert_ne!(generated_before, generated_after);
        assert_ne!(scores_before, scores_after);
    }

    #[test]
    fn conditional_steps_keep_losses_finite() {
        use crate::data::{images_tensor, matrix};
        use shared::cgan::{conditional_inputs, labels_tensor};
        use shared::grid::PixelRange;
        use shared::latent::normal_latents;
        use shared::mnist::{Mnist, Split};

        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/mnist");
        let mnist = Mnist::load(&fixture, Split::Train).unwrap();
        let device = Device::flex().autodiff();
        let generator = GeneratorConfig::new().with_condition_dim(10);
        let discriminator = CriticConfig::Conditional(ConditionalDiscriminatorConfig::new());
        let config = GanTrainingConfig::new(generator, discriminator);
        let mut gan = Gan::new(&config, &device);

        let indices: Vec<u32> = (0..16).collect();
        let digits: Vec<u32> = indices.iter().map(|&i| u32::from(mnist.labels[i as usize])).collect();
        for step in 0..2u64 {
            let real = images_tensor(&mnist, &indices, PixelRange::Symmetric, &device);
            let rows = conditional_inputs(&normal_latents(step, 16, 64), 64, &digits).unwrap();
            let input = matrix(rows, 16, 74, &device);
            let labels = labels_tensor(&digits, &device).unwrap();
            let losses;
            (gan, losses) = gan.step(&config, real, Some(labels), [input.clone(), input]);
            assert!(losses.discriminator.is_finite(), "{losses:?}");
            assert!(losses.generator.is_finite(), "{losses:?}");
        }
    }
}
