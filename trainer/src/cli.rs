//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
}

/// Compute backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// burn-flex on the CPU.
    Cpu,
    /// wgpu on the default GPU adapter (Vulkan, Metal or DX12).
    Wgpu,
}

/// Options of `trainer train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The model to train.
    pub model: ModelArg,
    /// Folder holding the MNIST files (raw or `.gz`).
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Number of passes over the training set.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub epochs: u32,
    /// Images per optimisation step.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(2..=65_536))]
    pub batch_size: u32,
    /// Train on the first N training images only.
    #[arg(long, value_parser = clap::value_parser!(u32).range(2..))]
    pub limit: Option<u32>,
    /// Seed of the weight initialisation, the shuffling and the latent noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Adam learning rate of both networks.
    #[arg(long, default_value_t = 2e-4)]
    pub learning_rate: f64,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = BackendArg::Cpu)]
    pub backend: BackendArg,
    /// Folder for samples, losses, checkpoints and the exported weights [default: runs/MODEL].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue from the checkpoint in the output folder.
    #[arg(long)]
    pub resume: bool,
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
    /// one row of 8 per digit.
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
