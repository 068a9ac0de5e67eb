//! Helpers shared by the end-to-end tests of the `trainer` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Returns the MNIST fixture folder: 512 training and 256 test digits.
pub fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/mnist")
}

/// Runs the trainer binary with `args`, logging warnings only.
pub fn trainer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the trainer binary runs")
}

/// Returns a run's standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
