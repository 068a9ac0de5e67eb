//! `trainer sample`: a PNG grid of digits from an exported weights file.

use anyhow::{Context, Result};
use shared::dcgan::load_generator;
use shared::grid::{PixelRange, tile};
use shared::latent::normal_latents;
use shared::weights::ModelKind;

use crate::cli::{ModelArg, SampleArgs};
use crate::data::matrix;
use crate::{device, png};

/// Digits per row of a sample grid.
pub const GRID_COLUMNS: usize = 8;

/// Runs `trainer sample`.
pub fn sample(args: &SampleArgs) -> Result<()> {
    let file = std::fs::read(&args.weights)
        .with_context(|| format!("failed to read the weights file {}", args.weights.display()))?;
    let device = device::device(args.backend)?;

    let kind = match args.model {
        ModelArg::Dcgan => ModelKind::Dcgan,
    };
    let (config, generator) = load_generator(&file, kind, &device)
        .with_context(|| format!("failed to load {}", args.weights.display()))?;

    let count = args.count as usize;
    let latents = normal_latents(args.seed, count, config.latent_dim);
    let images = generator.forward(matrix(latents, count, config.latent_dim, &device));
    let values = images.into_data().try_to_vec::<f32>().context("failed to read the generated images")?;

    png::write(&args.out, &tile(&values, PixelRange::Symmetric, GRID_COLUMNS, 2))?;
    tracing::info!(out = %args.out.display(), count, seed = args.seed, "samples written");
    Ok(())
}
