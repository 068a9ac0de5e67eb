//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use shared::weights::{ModelKind, StorageType};

/// Default folder for the MNIST files.
pub const DEFAULT_DATA_DIR: &str = "data/mnist";

/// Train MNIST generative models with Burn and export their weights for the web app.
#[derive(Debug, Parser)]
#[command(name = "trainer", version, about)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Trainer commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download the four MNIST files, checking their SHA-256 digests.
    Download(DownloadArgs),
    /// Train a model and export its weights.
    Train(TrainArgs),
    /// Generate a PNG grid of samples from exported weights.
    Sample(SampleArgs),
    /// Measure an exported model's quality on the MNIST test set.
    Eval(EvalArgs),
    /// Write a static site: the built page, content-hashed weights, their manifest and a
    /// Content-Security-Policy.
    Publish(PublishArgs),
    /// Write manifest.json into a weights folder, listing its files under their own names.
    Manifest(ManifestArgs),
    /// Re-encode a weights file as int8, f16 or f32, updating its model card.
    Convert(ConvertArgs),
}

/// Options of `trainer download`.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// Folder to write the files into.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Base URL of a mirror holding the four `.gz` files; repeat to try several in order.
    /// Defaults to the public mirrors listed in `trainer download --help`.
    #[arg(long = "mirror", value_name = "URL")]
    pub mirrors: Vec<String>,
    /// Download again even when valid files are present.
    #[arg(long)]
    pub force: bool,
}

/// Models the trainer can train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelArg {
    /// Deep convolutional GAN.
    Dcgan,
    /// Conditional GAN: generates the digit you ask for.
    Cgan,
    /// Convolutional autoencoder: reconstructs drawn digits.
    Autoencoder,
    /// Variational autoencoder: samples, interpolations and a latent map.
    Vae,
    /// Digit classifier: the reference network of the quality metrics.
    Classifier,
}

impl ModelArg {
    /// Returns the model kind of the weights file this model exports.
    pub fn kind(self) -> ModelKind {
        match self {
            ModelArg::Dcgan => ModelKind::Dcgan,
            ModelArg::Cgan => ModelKind::Cgan,
            ModelArg::Autoencoder => ModelKind::Autoencoder,
            ModelArg::Vae => ModelKind::Vae,
            ModelArg::Classifier => ModelKind::Classifier,
        }
    }
}

/// Compute backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// burn-flex on the CPU.
    Cpu,
    /// wgpu on the default GPU adapter (Vulkan, Metal or DX12).
    Wgpu,
}

/// Element types of exported weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StorageArg {
    /// 8-bit weights with one scale per channel, f16 biases: the smallest.
    Int8,
    /// Half precision.
    F16,
    /// Single precision, as trained.
    F32,
}

impl From<StorageArg> for StorageType {
    fn from(storage: StorageArg) -> Self {
        match storage {
            StorageArg::Int8 => StorageType::Int8,
            StorageArg::F16 => StorageType::F16,
            StorageArg::F32 => StorageType::F32,
        }
    }
}

/// Options of `trainer train`.
///
/// Hyper-parameters come from the model's defaults, then the `--config` file, then these flags.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The model to train.
    pub model: ModelArg,
    /// Folder holding the MNIST files (raw or `.gz`).
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// TOML (`.toml`) or JSON file of hyper-parameters: epochs, batch_size, learning_rate, seed,
    /// limit, latent_dim, storage. Flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Number of passes over the training set [default: 10].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub epochs: Option<u32>,
    /// Images per optimisation step [default: 128].
    #[arg(long, value_parser = clap::value_parser!(u32).range(2..=65_536))]
    pub batch_size: Option<u32>,
    /// Train on the first N training images only.
    #[arg(long, value_parser = clap::value_parser!(u32).range(2..))]
    pub limit: Option<u32>,
    /// Seed of the weight initialisation, the shuffling and the noise [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Adam learning rate [default: 2e-4 for the GANs, 1e-3 for the others].
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// Size of the latent space (VAE: 16 by default, 2 for the latent map; GANs: 64) or of the
    /// autoencoder's code (32).
    #[arg(long)]
    pub latent_dim: Option<usize>,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = BackendArg::Cpu)]
    pub backend: BackendArg,
    /// Storage type of the exported weights [default: int8].
    #[arg(long, value_enum)]
    pub storage: Option<StorageArg>,
    /// Folder for samples, losses, checkpoints and the exported weights [default: runs/MODEL].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue from the checkpoint in the output folder.
    #[arg(long)]
    pub resume: bool,
    /// Acts as if Ctrl-C were pressed once this many steps are done, for tests of resuming.
    #[arg(long, hide = true, value_name = "STEPS")]
    pub interrupt_after_steps: Option<u64>,
}

/// Options of `trainer sample`.
#[derive(Debug, Args)]
pub struct SampleArgs {
    /// The kind of model in the weights file.
    pub model: ModelArg,
    /// Exported weights file.
    #[arg(long)]
    pub weights: PathBuf,
    /// Seed of the latent vectors; the page's `?seed=` gives the same digits.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number of digits, drawn in rows of 8. Ignored by `cgan` without `--digit`, which draws
    /// one row of 8 per digit, and by a 2-D `vae`, which draws its 16×16 latent map.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub count: u32,
    /// Digit 0-9 to generate (cgan only).
    #[arg(long)]
    pub digit: Option<u32>,
    /// PNG file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = BackendArg::Cpu)]
    pub backend: BackendArg,
}

/// Options of `trainer eval`.
///
/// Metrics for `dcgan` and `cgan`: the Fréchet distance between generated digits and the test set
/// in the reference classifier's hidden-layer features (the 128 ReLU activations before its output
/// layer). The floor beside it is the same distance from training digits. For `cgan` also the
/// share of digits read as requested. For `autoencoder`, test MSE and cross-entropy; for `vae`,
/// the negative ELBO and an importance-weighted bound, in nats; for `classifier`, accuracy.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The kind of model in the weights file.
    pub model: ModelArg,
    /// Exported weights file.
    #[arg(long)]
    pub weights: PathBuf,
    /// Folder holding the MNIST files (raw or `.gz`).
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Number of digits to generate for the GAN metrics.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(2..=1_000_000))]
    pub samples: u32,
    /// Posterior samples per test digit in the VAE's importance-weighted bound.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub k: u32,
    /// Reference classifier weights for the GAN metrics [default: classifier.bin beside --weights].
    #[arg(long)]
    pub classifier: Option<PathBuf>,
    /// Seed of the latents and the noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write the metrics into the model card beside the weights (NAME.md) and NAME.metrics.json.
    #[arg(long)]
    pub update_card: bool,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = BackendArg::Cpu)]
    pub backend: BackendArg,
}

/// Options of `trainer publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The page built by `trunk build --release`.
    #[arg(long, default_value = "dist")]
    pub page: PathBuf,
    /// Folder of weights files (`*.bin`) with their cards (`NAME.md`) and metrics
    /// (`NAME.metrics.json`).
    #[arg(long, default_value = "web/weights")]
    pub weights_dir: PathBuf,
    /// Folder to write the site into. A site from an earlier `publish` there is replaced whole.
    /// Any other folder that is not empty is rejected, and so is a site with files of its own.
    #[arg(long)]
    pub out: PathBuf,
}

/// Options of `trainer convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The weights file to re-encode.
    #[arg(long)]
    pub weights: PathBuf,
    /// The storage type to write.
    #[arg(long, value_enum)]
    pub storage: StorageArg,
    /// Output file [default: the `--weights` file, replaced].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Options of `trainer manifest`.
#[derive(Debug, Args)]
pub struct ManifestArgs {
    /// Folder of weights files (`*.bin`) to list.
    #[arg(long, default_value = "web/weights")]
    pub weights_dir: PathBuf,
}
