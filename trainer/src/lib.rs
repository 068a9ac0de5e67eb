//! The `trainer` command: download MNIST, train the models, export and sample their weights.

pub mod atomic;
pub mod autoencoding;
pub mod card;
pub mod checkpoint;
pub mod classify;
pub mod cli;
pub mod convert;
pub mod data;
pub mod device;
pub mod download;
pub mod eval;
pub mod gan;
pub mod input;
pub mod logging;
pub mod metrics;
pub mod png;
pub mod publish;
pub mod report;
pub mod sample;
pub mod settings;
pub mod train;

use anyhow::Result;

use crate::cli::{Cli, Command};

// burn-flex allocates a new buffer for every tensor operation. glibc's malloc maps buffers of
// 128 KiB and more with mmap and unmaps them on free, so every operation paid for page faults
// and zeroed pages. mimalloc reuses freed pages, which made autoencoder and VAE training about
// 1.5 times faster (see BENCHMARKS.md). Declared in the library, it also serves the tests,
// examples and benchmarks that link it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Download(args) => {
            let mirrors: Vec<String> = if args.mirrors.is_empty() {
                download::DEFAULT_MIRRORS.iter().map(|m| m.to_string()).collect()
            } else {
                args.mirrors
            };
            download::download(&args.data_dir, &mirrors, &download::FILES, args.force)
        }
        Command::Train(args) => train::train(&args),
        Command::Sample(args) => sample::sample(&args),
        Command::Eval(args) => eval::eval(&args),
        Command::Publish(args) => publish::publish(&args),
        Command::Manifest(args) => publish::manifest(&args),
        Command::Convert(args) => convert::convert(&args),
    }
}
