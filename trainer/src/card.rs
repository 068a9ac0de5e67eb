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
