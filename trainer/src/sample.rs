//! `trainer sample`: a PNG grid of digits from an exported weights file.

use anyhow::{Context, Result, anyhow, bail};
use burn::tensor::Device;
use shared::vae::{latent_map, load_vae};
use shared::cgan::{conditional_inputs, digit_rows};
use shared::dcgan::load_generator;
use shared::grid::{PixelRange, tile};
use shared::latent::normal_latents;
use shared::weights::ModelKind;

use crate::autoencoding::MAP_SIDE;
use crate::cli::{ModelArg, SampleArgs};
use crate::data::matrix;
use crate::input::read_weights_file;
use crate::{device, png};

/// Digits per row of a sample grid.
pub const GRID_COLUMNS: usize = 8;

/// Runs `trainer sample`.
pub fn sample(args: &SampleArgs) -> Result<()> {
    if !args.out.extension().is_some_and(|extension| extension.eq_ignore_ascii_case("png")) {
        bail!("--out {} must name a .png file: `trainer sample` writes PNG images", args.out.display());
    }
    let file = read_weights_file(&args.weights, "the weights file")?;
    let device = device::device(args.backend)?;

    let kind = match args.model {
        ModelArg::Dcgan => ModelKind::Dcgan,
        ModelArg::Cgan => ModelKind::Cgan,
        ModelArg::Vae => return sample_vae(args, &file, &device),
        ModelArg::Autoencoder | ModelArg::Classifier => {
            bail!("`trainer sample` draws from the generative models dcgan, cgan and vae; use `trainer eval` for the {}", args.model.kind())
        }
    };
    if kind == ModelKind::Dcgan && args.digit.is_some() {
        bail!("--digit needs a conditional model: the dcgan generates digits at random; use `trainer sample cgan`");
    }
    let (config, generator) = load_generator(&file, kind, &device)
        .with_context(|| format!("failed to load {}", args.weights.display()))?;

    let latent_dim = config.latent_dim;
    let (rows, count) = match (kind, args.digit) {
        (ModelKind::Cgan, Some(digit)) => {
            let count = args.count as usize;
            let latents = normal_latents(args.seed, count, latent_dim);
            let rows = conditional_inputs(&latents, latent_dim, &vec![digit; count])
                .map_err(|e| anyhow!("invalid --digit: {e}"))?;
            (rows, count)
        }
        (ModelKind::Cgan, None) => {
            let styles = normal_latents(args.seed, GRID_COLUMNS, latent_dim);
            (digit_rows(&styles, latent_dim), GRID_COLUMNS * shared::NUM_CLASSES)
        }
        _ => {
            let count = args.count as usize;
            (normal_latents(args.seed, count, latent_dim), count)
        }
    };
    let input_dim = latent_dim + config.condition_dim;
    let images = generator.forward(matrix(rows, count, input_dim, &device));
    let values = images.into_data().try_to_vec::<f32>().context("failed to read the generated images")?;

    png::write(&args.out, &tile(&values, PixelRange::Symmetric, GRID_COLUMNS, 2))?;
    tracing::info!(out = %args.out.display(), count, seed = args.seed, "samples written");
    Ok(())
}


/// Writes VAE samples: decoded prior samples, or for a 2-D latent space the latent map.
fn sample_vae(args: &SampleArgs, file: &[u8], device: &Device) -> Result<()> {
    if args.digit.is_some() {
        bail!("--digit needs the conditional GAN; the VAE draws digits at random");
    }
    let (config, vae) = load_vae(file, device).with_context(|| format!("failed to load {}", args.weights.display()))?;
    let latent_dim = config.latent_dim;
    let (latents, columns) = if latent_dim == 2 {
        (latent_map(MAP_SIDE), MAP_SIDE)
    } else {
        (normal_latents(args.seed, args.count as usize, latent_dim), GRID_COLUMNS)
    };
    let count = latents.len() / latent_dim;
    let images = vae.decode(matrix(latents, count, latent_dim, device));
    let values = images.into_data().try_to_vec::<f32>().map_err(|e| anyhow!("{e:?}"))?;

    png::write(&args.out, &tile(&values, PixelRange::Unit, columns, 2))?;
    tracing::info!(out = %args.out.display(), count, "samples written");
    Ok(())
}
