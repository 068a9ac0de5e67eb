//! `trainer convert`: re-encodes a weights file with another storage type.

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use shared::autoencoder::{export_autoencoder, load_autoencoder};
use shared::classifier::{export_classifier, load_classifier};
use shared::dcgan::{export_generator, load_generator};
use shared::vae::{export_vae, load_vae};
use shared::weights::{ModelKind, StorageType, WeightsError, decode};
use tracing::info;

use crate::atomic;
use crate::card::with_weights_file;
use crate::input::read_weights_file;
use crate::cli::ConvertArgs;

/// Runs `trainer convert`: writes the weights in `--storage` over the input, or to `--out`,
/// and updates the model card beside the output when there is one.
pub fn convert(args: &ConvertArgs) -> Result<()> {
    let input = read_weights_file(&args.weights, "the weights file")?;
    let (header, _) = decode(&input)
        .with_context(|| format!("{} is not a valid weights file", args.weights.display()))?;
    let storage = StorageType::from(args.storage);

    let bytes = reencode(&input, header.kind, storage)
        .with_context(|| format!("failed to re-encode {}", args.weights.display()))?;

    let out = args.out.as_deref().unwrap_or(&args.weights);
    check_out(out, header.kind)?;
    atomic::write(out, &bytes)?;
    // Re-encoding in the same storage type changes nothing a reader of the card needs to know,
    // so its storage note (how the file was made) stays.
    let note = (header.storage != storage)
        .then(|| format!("{storage}, converted from {} by `trainer convert`", header.storage));
    update_card(out, &bytes, note.as_deref())?;
    info!(
        weights = %out.display(),
        from = %header.storage,
        to = %storage,
        bytes_before = input.len(),
        bytes_after = bytes.len(),
        "converted"
    );
    Ok(())
}

/// Loads a weights file of `kind` and exports it again as `storage`.
///
/// Converting to a wider type restores no precision: an 8-bit file stays 8-bit at heart.
pub fn reencode(file: &[u8], kind: ModelKind, storage: StorageType) -> Result<Vec<u8>, WeightsError> {
    let device = Device::flex();
    match kind {
        ModelKind::Dcgan | ModelKind::Cgan => {
            let (config, generator) = load_generator(file, kind, &device)?;
            export_generator(kind, &config, &generator, storage)
        }
        ModelKind::Autoencoder => {
            let (config, model) = load_autoencoder(file, &device)?;
            export_autoencoder(&config, &model, storage)
        }
        ModelKind::Vae => {
            let (config, model) = load_vae(file, &device)?;
            export_vae(&config, &model, storage)
        }
        ModelKind::Classifier => {
            let (config, model) = load_classifier(file, &device)?;
            export_classifier(&config, &model, storage)
        }
    }
}

/// Refuses to write over a file that is not a weights file of `kind`, so converting cannot
/// replace another model or an unrelated file.
fn check_out(out: &Path, kind: ModelKind) -> Result<()> {
    let existing = match std::fs::read(out) {
        Ok(existing) => existing,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error).with_context(|| format!("cannot write {}", out.display())),
    };
    match decode(&existing) {
        Ok((header, _)) if header.kind == kind => Ok(()),
        Ok((header, _)) => bail!(
            "--out {} holds a {} model, not {kind}; give another path or delete it first",
            out.display(),
            header.kind
        ),
        Err(_) => bail!(
            "--out {} exists and is not a weights file; give another path or delete it first",
            out.display()
        ),
    }
}

fn update_card(weights: &Path, bytes: &[u8], storage: Option<&str>) -> Result<()> {
    let card_path = weights.with_extension("md");
    let card = match std::fs::read_to_string(&card_path) {
        Ok(card) => card,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(error).with_context(|| {
                format!("converted {}, but failed to read its card {}; fix its permissions", weights.display(), card_path.display())
            });
        }
    };
    let file_name = weights.file_name().unwrap_or_default().to_string_lossy();
    let card = with_weights_file(&card, &file_name, bytes, storage);
    atomic::write(&card_path, card.as_bytes())
}
