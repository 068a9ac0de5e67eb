//! Per-epoch checkpoints of a GAN run: both networks, both optimizers and the epoch count.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use serde::{Deserialize, Serialize};

use crate::atomic;
use crate::gan::{Gan, GanTrainingConfig};

/// Progress stored beside the tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Number of finished epochs.
    pub epochs_done: u32,
    /// Optimisation steps taken so far.
    pub steps_done: u64,
    /// Training seconds so far, over all sessions of the run.
    pub seconds: f64,
    /// Mean discriminator and generator losses of the last finished epoch.
    #[serde(default)]
    pub last_losses: Option<(f32, f32)>,
}

const GENERATOR: &str = "generator.bpk";
const DISCRIMINATOR: &str = "discriminator.bpk";
const GENERATOR_OPTIMIZER: &str = "generator-optimizer.bpk";
const DISCRIMINATOR_OPTIMIZER: &str = "discriminator-optimizer.bpk";
const STATE: &str = "state.json";

/// Returns the checkpoint folder of a run folder.
pub fn folder(out: &Path) -> PathBuf {
    out.join("checkpoint")
}

fn partial_folder(out: &Path) -> PathBuf {
    out.join("checkpoint.partial")
}

fn previous_folder(out: &Path) -> PathBuf {
    out.join("checkpoint.previous")
}

/// Writes a checkpoint as one unit.
///
/// The files go into `checkpoint.partial/`, which then replaces `checkpoint/` by two renames.
/// A crash at any point leaves a complete checkpoint in `checkpoint/` or, between the renames, in
/// `checkpoint.previous/`, and [`load`] looks in both.
pub fn save(out: &Path, gan: &Gan, state: &CheckpointState) -> Result<()> {
    let dir = partial_folder(out);
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("failed to remove {}", dir.display()))?;
    }
    fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;

    let record = |module: ModuleRecord| module.into_bytes().context("failed to serialize a network");
    atomic::write(&dir.join(GENERATOR), &record(gan.generator.clone().into_record())?)?;
    atomic::write(&dir.join(DISCRIMINATOR), &record(gan.discriminator.clone().into_record())?)?;
    let optimizer = |bytes: Result<Bytes, _>| {
        bytes
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("failed to serialize an optimizer")
    };
    atomic::write(&dir.join(GENERATOR_OPTIMIZER), &optimizer(gan.generator_optimizer.into_bytes())?)?;
    atomic::write(
        &dir.join(DISCRIMINATOR_OPTIMIZER),
        &optimizer(gan.discriminator_optimizer.into_bytes())?,
    )?;
    atomic::write(&dir.join(STATE), &serde_json::to_vec_pretty(state)?)?;

    let current = folder(out);
    let previous = previous_folder(out);
    if previous.exists() {
        fs::remove_dir_all(&previous).with_context(|| format!("failed to remove {}", previous.display()))?;
    }
    if current.exists() {
        fs::rename(&current, &previous)
            .with_context(|| format!("failed to move {} aside", current.display()))?;
    }
    fs::rename(&dir, &current).with_context(|| format!("failed to move {} into place", dir.display()))?;
    if previous.exists() {
        fs::remove_dir_all(&previous).with_context(|| format!("failed to remove {}", previous.display()))?;
    }
    Ok(())
}

/// Loads the checkpoint of the run in `out` onto `device`.
pub fn load(out: &Path, config: &GanTrainingConfig, device: &Device) -> Result<(Gan, CheckpointState)> {
    let dir = [folder(out), previous_folder(out)]
        .into_iter()
        .find(|dir| dir.join(STATE).is_file())
        .with_context(|| {
            format!(
                "no checkpoint to resume in {}; start a new run without --resume",
                folder(out).display()
            )
        })?;
    let state_path = dir.join(STATE);
    let state: CheckpointState = serde_json::from_slice(&fs::read(&state_path)?)
        .with_context(|| format!("invalid checkpoint state {}", state_path.display()))?;

    let read = |name: &str| -> Result<Bytes> {
        let path = dir.join(name);
        let bytes = fs::read(&path).with_context(|| format!("failed to read {}", path.display()))?;
        Ok(Bytes::from_bytes_vec(bytes))
    };
    let record = |name: &str| -> Result<ModuleRecord> {
        ModuleRecord::from_bytes(read(name)?)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("invalid checkpoint file {name}; delete the checkpoint folder and start again"))
    };

    let mut gan = Gan::new(config, device);
    gan.generator = gan
        .generator
        .try_load_record(record(GENERATOR)?)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("the checkpoint's generator does not match the configured architecture")?;
    gan.discriminator = gan
        .discriminator
        .try_load_record(record(DISCRIMINATOR)?)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("the checkpoint's discriminator does not match the configured architecture")?;
    gan.generator_optimizer = config
        .optimizer()
        .init()
        .from_bytes(read(GENERATOR_OPTIMIZER)?)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("invalid generator optimizer state")?;
    gan.discriminator_optimizer = config
        .optimizer()
        .init()
        .from_bytes(read(DISCRIMINATOR_OPTIMIZER)?)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("invalid discriminator optimizer state")?;
    Ok((gan, state))
}
