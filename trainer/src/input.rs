//! Reading input files named on the command line, with checks that keep a wrong path from
//! reading a device or an endless stream into memory.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// Largest weights file the trainer reads. The largest model that the config limits allow is far
/// smaller, so a bigger file is a wrong path, not a model.
pub const MAX_WEIGHTS_FILE_BYTES: u64 = 1 << 30;

/// Reads the weights file at `path`. `label` names the file in errors, such as "the weights file".
///
/// Rejects anything but a regular file (a directory, a device such as `/dev/zero`, a pipe) and
/// files over [`MAX_WEIGHTS_FILE_BYTES`].
pub fn read_weights_file(path: &Path, label: &str) -> Result<Vec<u8>> {
    let file = File::open(path).with_context(|| {
        format!(
            "failed to read {label} {}; pass the path of a .bin file that `trainer train` wrote, such as one in web/weights/",
            path.display()
        )
    })?;
    let metadata = file.metadata().with_context(|| format!("failed to read {label} {}", path.display()))?;
    if !metadata.is_file() {
        bail!("{label} {} is not a regular file; pass the path of a .bin file that `trainer train` wrote", path.display());
    }
    if metadata.len() > MAX_WEIGHTS_FILE_BYTES {
        bail!(
            "{label} {} has {} bytes, more than the {MAX_WEIGHTS_FILE_BYTES} a weights file can have; check the path",
            path.display(),
            metadata.len()
        );
    }

    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(MAX_WEIGHTS_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("failed to read {label} {}", path.display()))?;
    if bytes.len() as u64 > MAX_WEIGHTS_FILE_BYTES {
        bail!("{label} {} grew past {MAX_WEIGHTS_FILE_BYTES} bytes while it was read; check the path", path.display());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.bin");
        std::fs::write(&path, b"weights").unwrap();

        assert_eq!(read_weights_file(&path, "the weights file").unwrap(), b"weights");
    }

    #[test]
    fn directory_is_rejected() {
        let dir = tempfile::tempdir().unwrap();

        let error = read_weights_file(dir.path(), "the weights file").unwrap_err().to_string();

        assert!(error.contains("is not a regular file"), "{error}");
    }

    #[cfg(unix)]
    #[test]
    fn device_is_rejected() {
        let error = read_weights_file(Path::new("/dev/zero"), "the weights file").unwrap_err().to_string();

        assert!(error.contains("/dev/zero is not a regular file"), "{error}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.bin");

        let error = format!("{:#}", read_weights_file(&path, "the weights file").unwrap_err());

        assert!(error.contains("failed to read the weights file"), "{error}");
        assert!(error.contains("missing.bin"), "{error}");
    }
}
