//! `trainer publish` and `trainer manifest`: a static folder with the page, content-hashed
//! weights, their manifest and a Content-Security-Policy the page satisfies.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use shared::manifest::{MANIFEST_FILE, MANIFEST_VERSION, Manifest, ModelEntry};
use shared::weights::{decode, format_version, sha256_hex};
use tracing::{info, warn};

use crate::atomic;
use crate::cli::{ManifestArgs, PublishArgs};

/// The models the page loads, by manifest id (the ids of `WeightsFile` in `web/src/engine.rs`),
/// with the part of the page that needs each.
const PAGE_MODELS: [(&str, &str); 5] = [
    ("dcgan", "random digits"),
    ("cgan", "digits on request"),
    ("autoencoder", "the Draw tab"),
    ("vae", "VAE samples and interpolations"),
    ("vae-2d", "the latent map"),
];

/// Hex digits of the content hash in published file names.
const HASH_LEN: usize = 16;

/// Runs `trainer manifest`: writes `manifest.json` into the weights folder, listing the files
/// under their own names.
pub fn manifest(args: &ManifestArgs) -> Result<()> {
    let (manifest, _) = build_manifest(&args.weights_dir, false)?;
    let path = args.weights_dir.join(MANIFEST_FILE);
    atomic::write(&path, manifest.to_json().as_bytes())?;
    info!(manifest = %path.display(), models = manifest.models.len(), "manifest written");
    Ok(())
}

/// Part of the live-reload script that `trunk serve` puts into the page it writes to `dist/`.
const LIVE_RELOAD_MARK: &str = ".well-known/trunk/ws";

/// Runs `trainer publish`.
pub fn publish(args: &PublishArgs) -> Result<()> {
    let index = args.page.join("index.html");
    if !index.is_file() {
        bail!(
            "{} has no index.html; build the page first with `trunk build --release` (or `make build`)",
            args.page.display()
        );
    }
    let html = fs::read_to_string(&index).with_context(|| format!("failed to read {}", index.display()))?;
    if html.contains(LIVE_RELOAD_MARK) {
        bail!(
            "{} comes from `trunk serve` and contains its live-reload script, which fails on other servers, \
             so build the page with `trunk build --release` (or `make build`) and publish again",
            index.display()
        );
    }
    let out = out_folder(args)?;
    let (manifest, copies) = build_manifest(&args.weights_dir, true)?;
    let missing: Vec<String> = PAGE_MODELS
        .iter()
        .filter(|(id, _)| !manifest.models.iter().any(|model| model.id == *id))
        .map(|(id, part)| format!("{id}.bin ({part})"))
        .collect();
    if !missing.is_empty() {
        warn!(
            "{} has no {}; the page will show an error there. Train the missing models or copy them from web/weights/",
            args.weights_dir.display(),
            missing.join(", ")
        );
    }

    let out = &out;
    let name = out.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let parent = out.parent().unwrap_or(Path::new("."));
    let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
    if staging.exists() {
        fs::remove_dir_all(&staging).with_context(|| format!("failed to remove {}", staging.display()))?;
    }

    let result = (|| {
        copy_page(&args.page, &staging)?;
        let weights = staging.join("weights");
        fs::create_dir_all(&weights)?;
        for (source, target) in &copies {
            fs::copy(source, weights.join(target))
                .with_context(|| format!("failed to copy {}", source.display()))?;
        }
        fs::write(weights.join(MANIFEST_FILE), manifest.to_json())?;
        add_content_security_policy(&staging.join("index.html"))
    })();
    if let Err(error) = result {
        let _ = fs::remove_dir_all(&staging);
        return Err(error.context(format!("failed to assemble the site in {}; {} is unchanged", staging.display(), out.display())));
    }

    replace_folder(&staging, out)?;
    info!(out = %out.display(), models = manifest.models.len(), "published");
    Ok(())
}

/// Lists the weights files of `dir` (every `*.bin`), checked by decoding their headers.
/// Returns the manifest and the `(source, published name)` pairs to copy; with `hashed` the
/// weights names carry the first 16 hex digits of their SHA-256.
pub fn build_manifest(dir: &Path, hashed: bool) -> Result<(Manifest, Vec<(PathBuf, String)>)> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("failed to list the weights folder {}; run from the repository root or pass --weights-dir", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "bin"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{} contains no weights (*.bin) files; train a model or pass --weights-dir", dir.display());
    }

    let mut models = Vec::new();
    let mut copies = Vec::new();
    for path in files {
        let bytes = fs::read(&path).with_context(|| format!("failed to read {}", path.display()))?;
        let (header, _) = decode(&bytes).with_context(|| format!("{} is not a valid weights file", path.display()))?;
        let id = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        let sha256 = sha256_hex(&bytes);
        let file = if hashed { format!("{id}.{}.bin", &sha256[..HASH_LEN]) } else { format!("{id}.bin") };
        copies.push((path.clone(), file.clone()));

        let card_path = path.with_extension("md");
        let card_text = fs::read_to_string(&card_path).ok();
        let card = card_text.as_ref().map(|_| format!("{id}.md"));
        if card.is_some() {
            copies.push((card_path, format!("{id}.md")));
        }
        models.push(ModelEntry {
            id: id.clone(),
            kind: header.kind,
            file,
            size: bytes.len() as u64,
            sha256,
            format_version: format_version(&bytes).unwrap_or_default(),
            card,
            metrics: read_metrics(&path.with_extension("metrics.json"))?,
            command: card_text.as_deref().and_then(|text| card_field(text, "command")),
            commit: card_text.as_deref().and_then(|text| card_field(text, "commit")),
        });
    }
    if !hashed {
        // Unhashed names already are the files in the folder; only the manifest is written.
        copies.clear();
    }
    let manifest = Manifest {
        manifest_version: MANIFEST_VERSION,
        models,
    };
    // The manifest must pass the checks the page runs.
    Manifest::parse(manifest.to_json().as_bytes()).context("the generated manifest is invalid")?;
    Ok((manifest, copies))
}

/// Reads the `(name, value)` pairs of a `trainer eval --update-card` metrics file, if present.
fn read_metrics(path: &Path) -> Result<Vec<(String, f64)>> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let json: serde_json::Value = serde_json::from_slice(&fs::read(path)?)
        .with_context(|| format!("invalid metrics file {}; run `trainer eval --update-card` again", path.display()))?;
    let metrics = json["metrics"].as_array().cloned().unwrap_or_default();
    Ok(metrics
        .iter()
        .filter_map(|m| Some((m["name"].as_str()?.to_string(), m["value"].as_f64()?)))
        .collect())
}

/// Returns the value of a `| name | value |` row of a model card, without backticks.
fn card_field(card: &str, name: &str) -> Option<String> {
    let prefix = format!("| {name} | ");
    let line = card.lines().find(|line| line.starts_with(&prefix))?;
    let value = line[prefix.len()..].trim_end_matches('|').trim().trim_matches('`');
    Some(value.to_string())
}

/// Copies the built page into `target`, leaving out its `weights/` folder, which is replaced by
/// the published weights.
fn copy_page(page: &Path, target: &Path) -> Result<()> {
    fn copy_dir(from: &Path, to: &Path, skip: Option<&Path>) -> Result<()> {
        fs::create_dir_all(to).with_context(|| format!("failed to create {}", to.display()))?;
        for entry in fs::read_dir(from).with_context(|| format!("failed to list {}", from.display()))? {
            let entry = entry?;
            let path = entry.path();
            if Some(path.as_path()) == skip {
                continue;
            }
            let destination = to.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                copy_dir(&path, &destination, None)?;
            } else {
                fs::copy(&path, &destination).with_context(|| format!("failed to copy {}", path.display()))?;
            }
        }
        Ok(())
    }
    copy_dir(page, target, Some(&page.join("weights")))
}

/// Swaps `staging` into place at `out`: the old folder is moved aside, the new one renamed in,
/// and the old one removed. If the second rename fails the old folder is put back, so `out`
/// ends up either wholly old or wholly new.
/// Resolves `--out` to an absolute path and checks that publishing may replace what is there.
/// That is nothing, an empty folder, or a site that an earlier `publish` wrote. The site must
/// have no files of its own and contain none of the folders that `publish` reads.
fn out_folder(args: &PublishArgs) -> Result<PathBuf> {
    let out = &args.out;
    let invalid = || format!("invalid output folder {}; pass a folder name such as `site`", out.display());
    let name = out.file_name().with_context(invalid)?;
    if out.is_symlink() {
        bail!("--out {} is a symbolic link; pass the folder it points to", out.display());
    }
    if out.exists() && !out.is_dir() {
        bail!("--out {} is a file; pass a folder for the site", out.display());
    }
    let parent = out.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(parent).with_context(|| format!("failed to create {}", parent.display()))?;
    let canonical = |path: &Path| fs::canonicalize(path).with_context(|| format!("failed to resolve {}", path.display()));
    let resolved = canonical(parent)?.join(name);

    let page = canonical(&args.page)?;
    if resolved.starts_with(&page) {
        bail!("--out {} is inside the page folder {}; pass a folder outside it", out.display(), args.page.display());
    }
    if !resolved.exists() {
        return Ok(resolved);
    }
    let readers = [
        (std::env::current_dir().context("failed to read the current folder")?, "the current folder"),
        (page.clone(), "the page folder (--page)"),
        (canonical(&args.weights_dir)?, "the weights folder (--weights-dir)"),
    ];
    for (path, reader) in readers {
        if path.starts_with(&resolved) {
            bail!(
                "--out {} contains {reader}, which publishing would delete; pass a new folder for the site",
                out.display()
            );
        }
    }

    // A site contains the page's files, `weights/` and `csp.txt`, and nothing else.
    let names = |dir: &Path| -> Result<Vec<String>> {
        let entries = fs::read_dir(dir).with_context(|| format!("failed to list {}", dir.display()))?;
        Ok(entries.filter_map(|entry| entry.ok()).map(|entry| entry.file_name().to_string_lossy().into_owned()).collect())
    };
    let mut expected = names(&page)?;
    expected.extend(["weights".to_string(), "csp.txt".to_string()]);
    let present = names(&resolved)?;
    let foreign: Vec<&String> = present.iter().filter(|name| !expected.contains(name)).take(5).collect();
    let earlier_site = resolved.join("index.html").is_file() && resolved.join("weights").join(MANIFEST_FILE).is_file();
    if !present.is_empty() && (!earlier_site || !foreign.is_empty()) {
        let reason = if foreign.is_empty() {
            format!("is not a site that `trainer publish` wrote (no index.html and weights/{MANIFEST_FILE})")
        } else {
            let list: Vec<&str> = foreign.iter().map(|name| name.as_str()).collect();
            format!("contains files that `trainer publish` did not write ({})", list.join(", "))
        };
        bail!(
            "--out {} {reason}, so it is left alone; pass a new or empty folder, or delete it first",
            out.display()
        );
    }
    Ok(resolved)
}

fn replace_folder(staging: &Path, out: &Path) -> Result<()> {
    let previous = staging.with_file_name(format!(
        "{}.previous",
        staging.file_name().unwrap_or_default().to_string_lossy()
    ));
    let had_old = out.exists();
    if had_old && let Err(error) = fs::rename(out, &previous) {
        let _ = fs::remove_dir_all(staging);
        return Err(error).with_context(|| format!("failed to move {} aside; it is unchanged", out.display()));
    }
    if let Err(error) = fs::rename(staging, out) {
        if had_old {
            let _ = fs::rename(&previous, out);
        }
        let _ = fs::remove_dir_all(staging);
        return Err(error).with_context(|| format!("failed to move the new site into {}", out.display()));
    }
    if had_old {
        fs::remove_dir_all(&previous).with_context(|| format!("failed to remove the old site {}", previous.display()))?;
    }
    Ok(())
}

/// Returns the Content-Security-Policy for a page whose inline scripts are `inline_scripts`.
///
/// Everything comes from the page's own origin. Trunk's loader is an inline module script, so it
/// is allowed by its SHA-256 hash, and WebAssembly compilation needs 'wasm-unsafe-eval'.
pub fn content_security_policy(inline_scripts: &[&str]) -> String {
    let hashes: Vec<String> = inline_scripts
        .iter()
        .map(|script| {
            let digest = Sha256::digest(script.as_bytes());
            format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest))
        })
        .collect();
    let script_sources = std::iter::once("'self'".to_string())
        .chain(hashes)
        .chain(std::iter::once("'wasm-unsafe-eval'".to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "default-src 'self'; script-src {script_sources}; style-src 'self'; img-src 'self' data: blob:; \
         connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'none'"
    )
}

/// Returns the contents of the inline `<script>` elements of an HTML page.
pub fn inline_scripts(html: &str) -> Vec<&str> {
    let mut scripts = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<script") {
        let after = &rest[start..];
        let Some(open_end) = after.find('>') else { break };
        let tag = &after[..open_end];
        let body_start = open_end + 1;
        let Some(close) = after[body_start..].find("</script>") else { break };
        if !tag.contains(" src=") {
            scripts.push(&after[body_start..body_start + close]);
        }
        rest = &after[body_start + close..];
    }
    scripts
}

/// Adds a `<meta http-equiv="Content-Security-Policy">` for the page's inline scripts to
/// `index.html`, and writes the same policy to `csp.txt` for hosts that set it as a header.
fn add_content_security_policy(index: &Path) -> Result<()> {
    let html = fs::read_to_string(index).with_context(|| format!("failed to read {}", index.display()))?;
    let policy = content_security_policy(&inline_scripts(&html));
    let meta = format!("<meta http-equiv=\"Content-Security-Policy\" content=\"{policy}\" />");
    let Some(head) = html.find("<head>") else {
        bail!("{} has no <head> element to put the Content-Security-Policy in", index.display());
    };
    let insert_at = head + "<head>".len();
    let updated = format!("{}\n    {meta}{}", &html[..insert_at], &html[insert_at..]);
    fs::write(index, updated)?;
    fs::write(index.with_file_name("csp.txt"), format!("{policy}\n"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_scripts_skip_external_ones() {
        let html = r#"<head><script src="/a.js"></script><script type="module">import x;</script></head>"#;
        assert_eq!(inline_scripts(html), vec!["import x;"]);
    }

    #[test]
    fn policy_hashes_inline_scripts() {
        let policy = content_security_policy(&["alert(1)"]);
        // echo -n 'alert(1)' | openssl dgst -sha256 -binary | base64
        assert!(policy.contains("'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='"), "{policy}");
        assert!(policy.contains("'wasm-unsafe-eval'"), "{policy}");
        assert!(!policy.contains("unsafe-inline"), "{policy}");
    }

    #[test]
    fn card_fields_are_read() {
        let card = "| command | `trainer train dcgan --epochs 8` |\n| commit | 4528051 |\n";
        assert_eq!(card_field(card, "command").as_deref(), Some("trainer train dcgan --epochs 8"));
        assert_eq!(card_field(card, "commit").as_deref(), Some("4528051"));
        assert_eq!(card_field(card, "seed"), None);
    }
}
