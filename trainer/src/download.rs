//! `trainer download`: fetch the MNIST files from a mirror and check their digests.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::atomic;

/// Public mirrors of the original files, tried in order.
pub const DEFAULT_MIRRORS: &[&str] = &[
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
];

/// One MNIST file: its stem and the size and SHA-256 of its decompressed bytes, as published.
#[derive(Debug, Clone, Copy)]
pub struct MnistFile {
    /// File name without `.gz`.
    pub stem: &'static str,
    /// Decompressed size in bytes.
    pub size: u64,
    /// SHA-256 of the decompressed bytes, lowercase hex.
    pub sha256: &'static str,
}

/// The four files of the MNIST database.
pub const FILES: [MnistFile; 4] = [
    MnistFile {
        stem: "train-images-idx3-ubyte",
        size: 47_040_016,
        sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    },
    MnistFile {
        stem: "train-labels-idx1-ubyte",
        size: 60_008,
        sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    },
    MnistFile {
        stem: "t10k-images-idx3-ubyte",
        size: 7_840_016,
        sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    },
    MnistFile {
        stem: "t10k-labels-idx1-ubyte",
        size: 10_008,
        sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
];

/// Largest compressed download accepted, in bytes; the largest real file is about 9.9 MB.
const MAX_DOWNLOAD: u64 = 64 * 1024 * 1024;

/// Downloads every file that is missing or invalid in `dir` from the first mirror that serves a
/// valid copy, using `files` as the list of expected files and digests.
pub fn download(dir: &Path, mirrors: &[String], files: &[MnistFile], force: bool) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("failed to create the data folder {}", dir.display()))?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(300)))
        .timeout_connect(Some(Duration::from_secs(20)))
        .build()
        .into();

    for file in files {
        let target = dir.join(format!("{}.gz", file.stem));
        if !force && target.is_file() {
            match std::fs::read(&target).map_err(anyhow::Error::from).and_then(|b| verify(file, &b)) {
                Ok(()) => {
                    info!(file = %target.display(), "already present and valid");
                    continue;
                }
                Err(error) => warn!(file = %target.display(), "present but invalid, downloading again: {error:#}"),
            }
        }

        let mut failures = Vec::new();
        let mut fetched = None;
        for mirror in mirrors {
            let url = format!("{}/{}.gz", mirror.trim_end_matches('/'), file.stem);
            info!(%url, "downloading");
            match fetch(&agent, &url).and_then(|bytes| verify(file, &bytes).map(|()| bytes)) {
                Ok(bytes) => {
                    fetched = Some(bytes);
                    break;
                }
                Err(error) => {
                    warn!(%url, "failed: {error:#}");
                    failures.push(format!("{url}: {error:#}"));
                }
            }
        }

        let Some(bytes) = fetched else {
            bail!(
                "no mirror served a valid {}.gz:\n  {}\nPass another mirror with --mirror URL, or copy the four MNIST files into {}",
                file.stem,
                failures.join("\n  "),
                dir.display()
            );
        };
        atomic::write(&target, &bytes)?;
        info!(file = %target.display(), bytes = bytes.len(), "saved");
    }
    Ok(())
}

fn fetch(agent: &ureq::Agent, url: &str) -> Result<Vec<u8>> {
    let mut response = agent.get(url).call().context("request failed")?;
    let bytes = response
        .body_mut()
        .with_config()
        .limit(MAX_DOWNLOAD)
        .read_to_vec()
        .context("reading the response failed")?;
    Ok(bytes)
}

/// Checks that `compressed` is gzip whose decompressed bytes have the published size and digest.
pub fn verify(file: &MnistFile, compressed: &[u8]) -> Result<()> {
    let mut decoder = GzDecoder::new(compressed).take(file.size + 1);
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let read = decoder.read(&mut buffer).context("not a valid gzip file")?;
        if read == 0 {
            break;
        }
        size += read as u64;
        hasher.update(&buffer[..read]);
    }

    if size != file.size {
        bail!("decompressed size is {size} bytes, expected {}", file.size);
    }
    let digest: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if digest != file.sha256 {
        bail!("SHA-256 of the decompressed bytes is {digest}, expected {}", file.sha256);
    }
    Ok(())
}
