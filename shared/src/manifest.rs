//! The weights manifest (`weights/manifest.json`): which weights files a published page has,
//! with their sizes, SHA-256 digests and quality metrics.
//!
//! The page reads the manifest first, fetches each file under the name it gives (published names
//! carry a content hash, so caches never serve stale weights) and checks the file's digest
//! before use. The trainer writes it with `trainer publish`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::weights::{FORMAT_VERSION, ModelKind, OLDEST_READABLE_VERSION};

/// Version of the manifest layout this code writes and reads.
pub const MANIFEST_VERSION: u32 = 1;

/// Largest accepted manifest, in bytes.
pub const MAX_MANIFEST_LEN: usize = 1 << 20;

/// Largest number of models in a manifest.
pub const MAX_MODELS: usize = 64;

/// File name of the manifest inside the weights folder.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The list of published weights files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Layout version, [`MANIFEST_VERSION`].
    pub manifest_version: u32,
    /// One entry per weights file.
    pub models: Vec<ModelEntry>,
}

/// One weights file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// Stable name the page requests: `dcgan`, `cgan`, `autoencoder`, `vae`, `vae-2d`,
    /// `classifier`.
    pub id: String,
    /// Kind of model in the file.
    pub kind: ModelKind,
    /// File name relative to the manifest, with a content hash when published.
    pub file: String,
    /// File size in bytes.
    pub size: u64,
    /// SHA-256 of the whole file, lowercase hex.
    pub sha256: String,
    /// Weights format version of the file.
    pub format_version: u32,
    /// Model card file name relative to the manifest, if published.
    #[serde(default)]
    pub card: Option<String>,
    /// Quality metrics from `trainer eval`, by name.
    #[serde(default)]
    pub metrics: Vec<(String, f64)>,
    /// The training command, from the card.
    #[serde(default)]
    pub command: Option<String>,
    /// The commit the weights were trained at, from the card.
    #[serde(default)]
    pub commit: Option<String>,
}

/// Error from reading a manifest or checking a file against it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ManifestError {
    /// The manifest is larger than [`MAX_MANIFEST_LEN`].
    #[error("the manifest is {0} bytes, more than the {MAX_MANIFEST_LEN}-byte maximum")]
    TooLarge(usize),
    /// The manifest is not the expected JSON.
    #[error("invalid manifest: {0}")]
    Syntax(String),
    /// The manifest has a layout version this code does not read.
    #[error("manifest version {0} is not supported (this page reads version {MANIFEST_VERSION}); publish again with a matching trainer")]
    Version(u32),
    /// An entry is invalid.
    #[error("invalid manifest entry {id:?}: {reason}")]
    Entry {
        /// The entry's id.
        id: String,
        /// Reason the entry is invalid.
        reason: String,
    },
    /// The manifest lists no model with the requested id.
    #[error("the manifest lists no model {0:?}; publish its weights with `trainer publish`")]
    Missing(String),
    /// A fetched file's size or digest differs from the manifest's.
    #[error("{file} does not match the manifest ({reason}); the file is stale or corrupt, publish the weights again")]
    Mismatch {
        /// The file name.
        file: String,
        /// The failed check.
        reason: String,
    },
}

impl Manifest {
    /// Parses and checks a manifest.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_MANIFEST_LEN {
            return Err(ManifestError::TooLarge(bytes.len()));
        }
        let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| ManifestError::Syntax(e.to_string()))?;
        if manifest.manifest_version != MANIFEST_VERSION {
            return Err(ManifestError::Version(manifest.manifest_version));
        }
        if manifest.models.len() > MAX_MODELS {
            return Err(ManifestError::Syntax(format!("{} models, more than {MAX_MODELS}", manifest.models.len())));
        }
        for (index, entry) in manifest.models.iter().enumerate() {
            entry.validate()?;
            if manifest.models[..index].iter().any(|other| other.id == entry.id) {
                return Err(entry.invalid("the id appears twice"));
            }
        }
        Ok(manifest)
    }

    /// Returns the entry with `id`.
    pub fn model(&self, id: &str) -> Result<&ModelEntry, ManifestError> {
        self.models
            .iter()
            .find(|entry| entry.id == id)
            .ok_or_else(|| ManifestError::Missing(id.to_string()))
    }

    /// Serializes the manifest as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a manifest always serializes")
    }
}

impl ModelEntry {
    fn invalid(&self, reason: impl Into<String>) -> ManifestError {
        ManifestError::Entry {
            id: self.id.clone(),
            reason: reason.into(),
        }
    }

    fn validate(&self) -> Result<(), ManifestError> {
        let safe_name = |name: &str| {
            !name.is_empty()
                && name.len() <= 128
                && !name.starts_with('.')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        };
        if !safe_name(&self.id) {
            return Err(self.invalid("the id must be 1-128 letters, digits, '.', '-' or '_'"));
        }
        if !safe_name(&self.file) {
            return Err(self.invalid(format!("file name {:?} is not a plain file name", self.file)));
        }
        if let Some(card) = &self.card
            && !safe_name(card)
        {
            return Err(self.invalid(format!("card name {card:?} is not a plain file name")));
        }
        if self.sha256.len() != 64 || !self.sha256.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
            return Err(self.invalid("sha256 must be 64 lowercase hex digits"));
        }
        if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&self.format_version) {
            return Err(self.invalid(format!(
                "weights format version {} is not supported (this build reads versions {OLDEST_READABLE_VERSION} to {FORMAT_VERSION})",
                self.format_version
            )));
        }
        Ok(())
    }

    /// Checks a fetched file against this entry's size and digest.
    pub fn verify(&self, bytes: &[u8]) -> Result<(), ManifestError> {
        if bytes.len() as u64 != self.size {
            return Err(ManifestError::Mismatch {
                file: self.file.clone(),
                reason: format!("{} bytes, the manifest says {}", bytes.len(), self.size),
            });
        }
        let digest: String = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
        if digest != self.sha256 {
            return Err(ManifestError::Mismatch {
                file: self.file.clone(),
                reason: format!("SHA-256 {digest}, the manifest says {}", self.sha256),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(bytes: &[u8]) -> ModelEntry {
        ModelEntry {
            id: "dcgan".to_string(),
            kind: ModelKind::Dcgan,
            file: "dcgan.0123456789abcdef.bin".to_string(),
            size: bytes.len() as u64,
            sha256: crate::weights::sha256_hex(bytes),
            format_version: FORMAT_VERSION,
            card: Some("dcgan.md".to_string()),
            metrics: vec![("frechet_distance".to_string(), 1.5)],
            command: None,
            commit: None,
        }
    }

    fn manifest(models: Vec<ModelEntry>) -> Vec<u8> {
        Manifest {
            manifest_version: MANIFEST_VERSION,
            models,
        }
        .to_json()
        .into_bytes()
    }

    #[test]
    fn manifest_round_trips() {
        let parsed = Manifest::parse(&manifest(vec![entry(b"abc")])).unwrap();
        assert_eq!(parsed.model("dcgan").unwrap().size, 3);
        assert!(matches!(parsed.model("vae"), Err(ManifestError::Missing(_))));
    }

    #[test]
    fn verify_detects_changed_bytes() {
        let listed = entry(b"weights");
        assert!(listed.verify(b"weights").is_ok());

        let error = listed.verify(b"weightz").unwrap_err();
        assert!(error.to_string().contains("dcgan.0123456789abcdef.bin"), "{error}");
        assert!(error.to_string().contains("SHA-256"), "{error}");

        let error = listed.verify(b"short").unwrap_err();
        assert!(error.to_string().contains("5 bytes"), "{error}");
    }

    #[test]
    fn path_in_file_name_is_rejected() {
        for file in ["../secret.bin", "/etc/passwd", "a/b.bin", ".hidden", ""] {
            let mut bad = entry(b"x");
            bad.file = file.to_string();
            let error = Manifest::parse(&manifest(vec![bad])).unwrap_err();
            assert!(matches!(error, ManifestError::Entry { .. }), "{file}: {error}");
        }
    }

    #[test]
    fn malformed_manifests_are_rejected() {
        let cases: [(&[u8], &str); 4] = [
            (b"", "invalid manifest"),
            (b"{\"manifest_version\": 2, \"models\": []}", "version 2"),
            (b"{\"manifest_version\": 1, \"models\": [], \"extra\": 1}", "unknown field"),
            (b"[1, 2, 3]", "invalid manifest"),
        ];
        for (bytes, expected) in cases {
            let error = Manifest::parse(bytes).unwrap_err().to_string();
            assert!(error.contains(expected), "{:?}: {error}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn duplicate_ids_and_bad_digests_are_rejected() {
        let error = Manifest::parse(&manifest(vec![entry(b"a"), entry(b"b")])).unwrap_err();
        assert!(error.to_string().contains("twice"), "{error}");

        let mut bad = entry(b"a");
        bad.sha256 = "XYZ".to_string();
        assert!(matches!(Manifest::parse(&manifest(vec![bad])), Err(ManifestError::Entry { .. })));
    }

    #[test]
    fn oversized_manifest_is_rejected() {
        let huge = vec![b' '; MAX_MANIFEST_LEN + 1];
        assert_eq!(Manifest::parse(&huge), Err(ManifestError::TooLarge(MAX_MANIFEST_LEN + 1)));
    }
}
