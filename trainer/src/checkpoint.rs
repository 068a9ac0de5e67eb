//! Per-epoch checkpoints: every network and optimizer of a run as named files, plus the progress.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use crate::atomic;

/// Progress stored beside the tensors.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CheckpointState {
    /// The model being trained; `None` in checkpoints written before it was recorded.
    #[serde(default)]
    pub model: Option<shared::weights::ModelKind>,
    /// Number of finished epochs.
    pub epochs_done: u32,
    /// Optimisation steps taken so far.
    pub steps_done: u64,
    /// Training seconds so far, over all sessions of the run.
    pub seconds: f64,
    /// Mean training losses of the last finished epoch, by name.
    #[serde(default)]
    pub last_losses: Vec<(String, f32)>,
    /// Test-set metrics after the last finished epoch, by name.
    #[serde(default)]
    pub test_metrics: Vec<(String, f64)>,
    /// Progress inside an epoch that an interrupt cut short.
    #[serde(default)]
    pub epoch_progress: Option<crate::train::EpochProgress>,
}

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

/// Writes a checkpoint of named files as one unit.
///
/// The files go into `checkpoint.partial/`, which then replaces `checkpoint/` by two renames.
/// A crash at any point leaves a complete checkpoint in `checkpoint/` or, between the renames, in
/// `checkpoint.previous/`, and [`load`] looks in both.
pub fn save(out: &Path, files: &[(&str, Vec<u8>)], state: &CheckpointState) -> Result<()> {
    let dir = partial_folder(out);
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("failed to remove {}", dir.display()))?;
    }
    fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;

    for (name, bytes) in files {
        atomic::write(&dir.join(name), bytes)?;
    }
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

/// A checkpoint found on disk.
pub struct Checkpoint {
    dir: PathBuf,
    /// The progress it records.
    pub state: CheckpointState,
}

/// Finds the checkpoint of the run in `out` and reads its progress.
pub fn load(out: &Path) -> Result<Checkpoint> {
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
        .with_context(|| format!("invalid checkpoint state {}; delete the checkpoint folder and start again", state_path.display()))?;
    Ok(Checkpoint { dir, state })
}

impl Checkpoint {
    /// Reads one file of the checkpoint.
    pub fn bytes(&self, name: &str) -> Result<Bytes> {
        let path = self.dir.join(name);
        let bytes = fs::read(&path).with_context(|| format!("failed to read {}", path.display()))?;
        Ok(Bytes::from_bytes_vec(bytes))
    }

    /// Loads the network stored as `name` into `module`, which must have the same architecture.
    pub fn module<M: Module>(&self, name: &str, module: M) -> Result<M> {
        let record = ModuleRecord::from_bytes(self.bytes(name)?)
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("invalid checkpoint file {name}; delete the checkpoint folder and start again"))?;
        module
            .try_load_record(record)
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("the network in {name} does not match the configured architecture"))
    }

    /// Loads the optimizer state stored as `name` into a fresh `optimizer` of the same kind.
    // NOTE: burn-optim 0.22.1's `load_record` puts the state on `Device::default()`, which is wgpu
    // in this build, so a resumed CPU run also starts a wgpu instance (and Vulkan) once.
    pub fn optimizer(&self, name: &str, optimizer: ModuleOptimizer) -> Result<ModuleOptimizer> {
        optimizer
            .from_bytes(self.bytes(name)?)
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("invalid optimizer state in {name}"))
    }
}

/// Serializes a network for [`save`].
pub fn module_bytes<M: Module>(module: &M) -> Result<Vec<u8>> {
    let bytes = module
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| anyhow!("{e}"))
        .context("failed to serialize a network")?;
    Ok(bytes.to_vec())
}

/// Serializes an optimizer's state for [`save`].
pub fn optimizer_bytes(optimizer: &ModuleOptimizer) -> Result<Vec<u8>> {
    let bytes = optimizer
        .into_bytes()
        .map_err(|e| anyhow!("{e}"))
        .context("failed to serialize an optimizer")?;
    Ok(bytes.to_vec())
}

/// File names of a run with one network and one optimizer.
const MODEL: &str = "model.bpk";
const OPTIMIZER: &str = "optimizer.bpk";

/// Restores one network and its optimizer from `resume`, or returns them unchanged with a fresh
/// state when there is no checkpoint.
pub fn restore_single<M: Module>(
    resume: Option<Checkpoint>,
    model: M,
    optimizer: ModuleOptimizer,
) -> Result<(M, ModuleOptimizer, CheckpointState)> {
    match resume {
        Some(checkpoint) => {
            let model = checkpoint.module(MODEL, model)?;
            let optimizer = checkpoint.optimizer(OPTIMIZER, optimizer)?;
            Ok((model, optimizer, checkpoint.state))
        }
        None => Ok((model, optimizer, CheckpointState::default())),
    }
}

/// Serializes one network and its optimizer, the counterpart of [`restore_single`].
pub fn single_files<M: Module>(model: &M, optimizer: &ModuleOptimizer) -> Result<Vec<(&'static str, Vec<u8>)>> {
    Ok(vec![(MODEL, module_bytes(model)?), (OPTIMIZER, optimizer_bytes(optimizer)?)])
}
