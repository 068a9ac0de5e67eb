//! Atomic file writes: write a temporary file beside the target, sync it, rename it over.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Writes `bytes` to `path` so that readers see either the old file or the whole new one.
///
/// An existing file keeps its permissions. A path that names a directory, a device, a symbolic
/// link or anything else but a regular file is an error, as is a missing parent folder.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let existing = check_target(path)?;
    let temporary = temporary_path(path);
    let result = (|| -> Result<()> {
        let mut file = fs::File::create(&temporary)
            .with_context(|| format!("failed to create {}", temporary.display()))?;
        file.write_all(bytes)
            .with_context(|| format!("failed to write {}", temporary.display()))?;
        file.sync_all()
            .with_context(|| format!("failed to sync {}", temporary.display()))?;
        if let Some(metadata) = &existing {
            fs::set_permissions(&temporary, metadata.permissions())
                .with_context(|| format!("failed to copy the permissions of {}", path.display()))?;
        }
        fs::rename(&temporary, path)
            .with_context(|| format!("failed to move {} to {}", temporary.display(), path.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    if result.is_ok() {
        remove_stale_temporaries(path);
    }
    result
}

/// Removes the temporary files of `path` that killed processes left behind, recognised by a
/// process id that no longer runs. Without `/proc` (outside Linux) it removes nothing.
fn remove_stale_temporaries(path: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else { return };
    let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
    let prefix = format!("{}{TEMPORARY_INFIX}", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let entry_name = entry.file_name();
        let Some(pid) = entry_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else { continue };
        let is_pid = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
        if is_pid && !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Returns the metadata of the regular file at `path`, `None` when there is none yet, or an
/// error when the path cannot take a file.
fn check_target(path: &Path) -> Result<Option<fs::Metadata>> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        bail!("cannot write {}: the folder {} does not exist; create it first", path.display(), parent.display());
    }

    match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_file() => Ok(Some(metadata)),
        Ok(metadata) => {
            let entry_kind = if metadata.is_dir() {
                "a directory"
            } else if metadata.file_type().is_symlink() {
                "a symbolic link"
            } else {
                "not a regular file"
            };
            bail!("cannot write {}: it is {entry_kind}; give the path of a regular file", path.display())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("cannot write {}", path.display())),
    }
}

/// Text between the target's file name and the process id in the name of its temporary file.
const TEMPORARY_INFIX: &str = ".tmp-";

/// Path of the temporary file used while writing `path`.
pub fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!("{TEMPORARY_INFIX}{}", std::process::id()));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_replaces_a_file_and_keeps_its_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weights.bin");
        fs::write(&path, b"old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();

        write(&path, b"new").unwrap();

        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
    }

    #[test]
    fn write_removes_dead_process_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weights.bin");
        // Linux process ids stay below 2^22, so no process 99999999 runs. Process 1 always runs.
        let dead = dir.path().join("weights.bin.tmp-99999999");
        let running = dir.path().join("weights.bin.tmp-1");
        let other = dir.path().join("other.bin.tmp-99999999");
        for leftover in [&dead, &running, &other] {
            fs::write(leftover, b"partial").unwrap();
        }

        write(&path, b"new").unwrap();

        assert!(!dead.exists());
        assert!(running.exists());
        assert!(other.exists());
    }

    #[test]
    fn directory_target_is_rejected() {
        let dir = tempfile::tempdir().unwrap();

        let error = write(dir.path(), b"x").unwrap_err();

        assert!(error.to_string().contains("it is a directory"), "{error}");
    }

    #[test]
    fn symbolic_link_target_is_rejected_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.bin");
        fs::write(&target, b"kept").unwrap();
        let link = dir.path().join("link.bin");
        std::os::unix::fs::symlink(&target, &link).unwrap();

        let error = write(&link, b"x").unwrap_err();

        assert!(error.to_string().contains("symbolic link"), "{error}");
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(fs::read(&target).unwrap(), b"kept");
    }

    #[test]
    fn missing_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/weights.bin");

        let error = write(&path, b"x").unwrap_err();

        assert!(error.to_string().contains("does not exist"), "{error}");
        assert!(error.to_string().contains("missing"), "{error}");
    }
}
