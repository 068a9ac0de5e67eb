//! Hyper-parameters of a training run: defaults per model, then a `--config` file, then flags.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use shared::weights::{ModelKind, StorageType};

use crate::checkpoint::Checkpoint;
use crate::cli::{ModelArg, TrainArgs};
use crate::train::Session;
use crate::{autoencoding, classify, gan};

/// Hyper-parameters a `--config` file may set, all optional. Unknown keys are errors, so a typo
/// does not silently leave a default in place.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Number of passes over the training set.
    pub epochs: Option<u32>,
    /// Images per optimisation step.
    pub batch_size: Option<usize>,
    /// Adam learning rate.
    pub learning_rate: Option<f64>,
    /// Seed of the initialisation, shuffling and noise.
    pub seed: Option<u64>,
    /// Train on the first N training images only.
    pub limit: Option<usize>,
    /// Latent size of the VAE and the GANs, code size of the autoencoder.
    pub latent_dim: Option<usize>,
    /// Storage type of the exported weights: `int8`, `f16` or `f32`.
    pub storage: Option<StorageType>,
}

impl ConfigFile {
    /// Reads a TOML (`.toml`) or JSON (any other extension) file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!("failed to read the config file {}; check the path given to --config", path.display())
        })?;
        let is_toml = path.extension().is_some_and(|extension| extension == "toml");
        let parsed = if is_toml {
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{e}"))
        } else {
            serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{e}"))
        };
        parsed.with_context(|| {
            format!(
                "invalid config file {}; it may set epochs, batch_size, learning_rate, seed, limit, latent_dim and storage (int8, f16 or f32)",
                path.display()
            )
        })
    }
}

/// The effective hyper-parameters of a run, saved as `config.json` beside every checkpoint and
/// export.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    /// The model being trained.
    pub model: ModelKind,
    /// Number of passes over the training set.
    pub epochs: u32,
    /// Images per optimisation step.
    pub batch_size: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Seed of the initialisation, shuffling and noise.
    pub seed: u64,
    /// Number of training images used, or all when `None`.
    pub limit: Option<usize>,
    /// Latent (or code) size; `None` keeps the model's default.
    pub latent_dim: Option<usize>,
    /// Storage type of the exported weights.
    pub storage: StorageType,
    /// The model's architecture and optimiser settings, as its `Config` serializes them.
    pub model_config: serde_json::Value,
}

impl Settings {
    /// Merges the model's defaults, the `--config` file and the flags, in that order, and
    /// checks the result.
    pub fn resolve(args: &TrainArgs) -> Result<Self> {
        let file = match &args.config {
            Some(path) => ConfigFile::read(path)?,
            None => ConfigFile::default(),
        };
        let model = args.model.kind();
        let default_rate = match args.model {
            ModelArg::Dcgan | ModelArg::Cgan => 2e-4,
            ModelArg::Autoencoder | ModelArg::Vae | ModelArg::Classifier => 1e-3,
        };

        let settings = Settings {
            model,
            epochs: args.epochs.or(file.epochs).unwrap_or(10),
            batch_size: args.batch_size.map(|b| b as usize).or(file.batch_size).unwrap_or(128),
            learning_rate: args.learning_rate.or(file.learning_rate).unwrap_or(default_rate),
            seed: args.seed.or(file.seed).unwrap_or(0),
            limit: args.limit.map(|l| l as usize).or(file.limit),
            latent_dim: args.latent_dim.or(file.latent_dim),
            storage: args.storage.map(StorageType::from).or(file.storage).unwrap_or_default(),
            model_config: serde_json::Value::Null,
        };
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<()> {
        if !(1..=100_000).contains(&self.epochs) {
            bail!("invalid epochs {} (--epochs or epochs in --config): expected 1 to 100000", self.epochs);
        }
        if !(2..=65_536).contains(&self.batch_size) {
            bail!(
                "invalid batch size {} (--batch-size or batch_size in --config): expected 2 to 65536",
                self.batch_size
            );
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            bail!(
                "invalid learning rate {} (--learning-rate or learning_rate in --config): expected a positive number",
                self.learning_rate
            );
        }
        if let Some(limit) = self.limit.filter(|&limit| limit < 2) {
            bail!("invalid limit {limit} (--limit or limit in --config): at least 2 images are needed");
        }
        if let Some(dim) = self.latent_dim {
            if !(1..=1024).contains(&dim) {
                bail!("invalid latent dimension {dim} (--latent-dim or latent_dim in --config): expected 1 to 1024");
            }
            if matches!(self.model, ModelKind::Classifier) {
                bail!("--latent-dim does not apply to the classifier");
            }
        }
        Ok(())
    }

    /// Returns these settings with the model's `config` as pretty JSON.
    pub fn to_json(&self, config: serde_json::Value) -> Result<String> {
        let mut settings = self.clone();
        settings.model_config = config;
        Ok(serde_json::to_string_pretty(&settings)?)
    }

    /// Lists the settings that differ from `saved`, the `config.json` of the run being resumed:
    /// each setting's key and a line with the flag that restores the run's value. The epoch
    /// count and the model config, which follows from the other settings, are left out.
    pub fn changes_from(&self, saved: &serde_json::Value) -> Vec<(String, String)> {
        let Ok(serde_json::Value::Object(current)) = serde_json::to_value(self) else {
            return Vec::new();
        };

        let mut changes = Vec::new();
        for (key, value) in &current {
            if key == "epochs" || key == "model_config" {
                continue;
            }
            let Some(before) = saved.get(key) else { continue };
            if before == value {
                continue;
            }
            let flag = key.replace('_', "-");
            let restore = match before {
                serde_json::Value::Null => format!("leave out --{flag}"),
                serde_json::Value::String(text) => format!("pass --{flag} {text}"),
                other => format!("pass --{flag} {other}"),
            };
            changes.push((key.clone(), format!("{key} is {value} now but was {before} in the run; {restore} to keep the run's value")));
        }
        changes
    }

    /// Builds the model's trainee, fresh or from `resume`, and runs the epoch loop.
    pub fn dispatch(&self, session: &Session, resume: Option<Checkpoint>) -> Result<()> {
        match self.model {
            ModelKind::Dcgan | ModelKind::Cgan => gan::run(session, resume),
            ModelKind::Autoencoder => autoencoding::run_autoencoder(session, resume),
            ModelKind::Vae => autoencoding::run_vae(session, resume),
            ModelKind::Classifier => classify::run(session, resume),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_config_file_parses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.toml");
        std::fs::write(&path, "epochs = 3\nlearning_rate = 0.0005\nlatent_dim = 2\n").unwrap();

        let file = ConfigFile::read(&path).unwrap();

        assert_eq!(file.epochs, Some(3));
        assert_eq!(file.learning_rate, Some(5e-4));
        assert_eq!(file.latent_dim, Some(2));
        assert_eq!(file.batch_size, None);
    }

    #[test]
    fn json_config_file_parses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.json");
        std::fs::write(&path, r#"{"batch_size": 64, "seed": 9}"#).unwrap();

        let file = ConfigFile::read(&path).unwrap();

        assert_eq!(file.batch_size, Some(64));
        assert_eq!(file.seed, Some(9));
    }

    fn dcgan_settings() -> Settings {
        Settings {
            model: ModelKind::Dcgan,
            epochs: 5,
            batch_size: 128,
            learning_rate: 2e-4,
            seed: 0,
            limit: None,
            latent_dim: None,
            storage: StorageType::Int8,
            model_config: serde_json::Value::Null,
        }
    }

    #[test]
    fn changed_storage_names_the_flag() {
        let mut run = dcgan_settings();
        run.storage = StorageType::F16;
        let saved: serde_json::Value = serde_json::from_str(&run.to_json(serde_json::json!({"channels": 64})).unwrap()).unwrap();

        let changes = dcgan_settings().changes_from(&saved);

        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].0, "storage");
        assert!(changes[0].1.contains("--storage f16"), "{changes:?}");
    }

    #[test]
    fn more_epochs_are_no_change() {
        let run = dcgan_settings();
        let saved: serde_json::Value = serde_json::from_str(&run.to_json(serde_json::Value::Null).unwrap()).unwrap();
        let mut resumed = dcgan_settings();
        resumed.epochs = 20;

        assert_eq!(resumed.changes_from(&saved), Vec::<(String, String)>::new());
    }

    #[test]
    fn unknown_config_key_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.toml");
        std::fs::write(&path, "epoch = 3\n").unwrap();

        let error = format!("{:#}", ConfigFile::read(&path).unwrap_err());

        assert!(error.contains("epoch"), "{error}");
        assert!(error.contains("run.toml"), "{error}");
    }
}
