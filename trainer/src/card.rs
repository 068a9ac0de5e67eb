//! The model card written next to exported weights: how the file was made.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::atomic;

/// Facts about a training run, as written into the card.
#[derive(Debug, Clone)]
pub struct ModelCard {
    /// Model kind.
    pub kind: String,
    /// The command line that produced the weights.
    pub command: String,
    /// Seed of the run.
    pub seed: u64,
    /// Epochs trained.
    pub epochs: u32,
    /// Training images per epoch.
    pub images: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Backend used.
    pub backend: String,
    /// Training wall time, in seconds.
    pub seconds: f64,
    /// Weights file name.
    pub weights_file: String,
    /// Weights file size in bytes.
    pub weights_bytes: usize,
    /// SHA-256 of the weights file.
    pub weights_sha256: String,
    /// Storage type of the weights: `int8`, `f16` or `f32`.
    pub storage: String,
    /// Last epoch's mean losses, by name.
    pub final_losses: Vec<(String, f32)>,
    /// Test-set metrics after the last epoch, by name.
    pub test_metrics: Vec<(String, f64)>,
}

impl ModelCard {
    /// Renders the card as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(text, "# {} weights\n", self.kind);
        let _ = writeln!(text, "| | |\n| --- | --- |");
        let _ = writeln!(text, "| file | `{}` ({} bytes) |", self.weights_file, self.weights_bytes);
        let _ = writeln!(text, "| SHA-256 | `{}` |", self.weights_sha256);
        let _ = writeln!(text, "| storage | {} |", self.storage);
        let _ = writeln!(text, "| command | `{}` |", self.command);
        let _ = writeln!(text, "| seed | {} |", self.seed);
        let _ = writeln!(
            text,
            "| epochs | {} of {} images, batch {}, learning rate {} |",
            self.epochs, self.images, self.batch_size, self.learning_rate
        );
        let _ = writeln!(text, "| backend | {} |", self.backend);
        let _ = writeln!(text, "| wall time | {:.0} s ({:.1} min) |", self.seconds, self.seconds / 60.0);
        let _ = writeln!(text, "| machine | {} |", machine());
        let _ = writeln!(text, "| commit | {} |", commit());
        for (name, value) in &self.final_losses {
            let _ = writeln!(text, "| last epoch mean {name} | {value:.4} |");
        }
        for (name, value) in &self.test_metrics {
            let _ = writeln!(text, "| {name} | {value:.4} |");
        }
        text
    }

    /// Writes the card to `path` atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        atomic::write(path, self.to_markdown().as_bytes())
    }
}

/// Rewrites the rows of `card` (Markdown from [`ModelCard::to_markdown`]) that describe the
/// weights file, after the file was re-encoded; other rows are kept. `storage` is the new text
/// of the storage row, which a card written before storage rows existed gets after its SHA-256
/// row. With `None` the storage row stays as it is.
pub fn with_weights_file(card: &str, file: &str, bytes: &[u8], storage: Option<&str>) -> String {
    let file_row = format!("| file | `{file}` ({} bytes) |", bytes.len());
    let sha_row = format!("| SHA-256 | `{}` |", shared::weights::sha256_hex(bytes));
    let storage_row = storage.map(|storage| format!("| storage | {storage} |"));
    let has_storage = card.lines().any(|line| line.starts_with("| storage |"));

    let mut text = String::with_capacity(card.len() + 64);
    for line in card.lines() {
        if line.starts_with("| file |") {
            text.push_str(&file_row);
        } else if line.starts_with("| SHA-256 |") {
            text.push_str(&sha_row);
            if let (false, Some(row)) = (has_storage, &storage_row) {
                text.push('\n');
                text.push_str(row);
            }
        } else if let (true, Some(row)) = (line.starts_with("| storage |"), &storage_row) {
            text.push_str(row);
        } else {
            text.push_str(line);
        }
        text.push('\n');
    }
    text
}

/// CPU model and core count, from `/proc/cpuinfo` where present.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|name| name.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    format!("{model}, {cores} threads, {}", std::env::consts::OS)
}

/// Returns the current git commit, with `-dirty` when the work tree has changes, or `unknown`.
fn commit() -> String {
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
    };
    match run(&["rev-parse", "--short=12", "HEAD"]) {
        Some(hash) if !hash.is_empty() => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            if dirty { format!("{hash}-dirty") } else { hash }
        }
        _ => "unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD_CARD: &str = "# dcgan weights\n\n| | |\n| --- | --- |\n| file | `dcgan.bin` (10 bytes) |\n| SHA-256 | `00` |\n| seed | 1 |\n";

    #[test]
    fn weights_rows_are_rewritten_others_kept() {
        let card = with_weights_file(OLD_CARD, "dcgan.bin", b"abc", Some("int8"));

        assert!(card.contains("| file | `dcgan.bin` (3 bytes) |"), "{card}");
        assert!(card.contains(&format!("| SHA-256 | `{}` |", shared::weights::sha256_hex(b"abc"))), "{card}");
        assert!(card.contains("| SHA-256 | `ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad` |\n| storage | int8 |\n"), "{card}");
        assert!(card.contains("| seed | 1 |"), "{card}");
    }

    #[test]
    fn existing_storage_row_is_replaced_not_repeated() {
        let once = with_weights_file(OLD_CARD, "dcgan.bin", b"abc", Some("int8"));
        let twice = with_weights_file(&once, "dcgan.bin", b"abc", Some("f16"));

        assert_eq!(twice.matches("| storage |").count(), 1, "{twice}");
        assert!(twice.contains("| storage | f16 |"), "{twice}");
    }

    #[test]
    fn storage_row_is_kept_without_new_text() {
        let once = with_weights_file(OLD_CARD, "dcgan.bin", b"abc", Some("int8, exported by training"));
        let twice = with_weights_file(&once, "dcgan.bin", b"abcd", None);

        assert!(twice.contains("| storage | int8, exported by training |"), "{twice}");
        assert!(twice.contains("| file | `dcgan.bin` (4 bytes) |"), "{twice}");
        assert_eq!(twice.matches("| storage |").count(), 1, "{twice}");
    }
}
