//! End-to-end tests of the `trainer` binary on the MNIST fixture.

mod common;

use burn::tensor::Device;
use common::{fixture, stderr, trainer};
use shared::dcgan::load_generator;
use shared::vae::load_vae;
use shared::weights::{ModelKind, StorageType, decode, sha256_hex};

#[test]
fn missing_data_dir_is_reported() {
    let out = tempfile::tempdir().unwrap();
    let output = trainer(&[
        "train",
        "dcgan",
        "--data-dir",
        "/nonexistent/mnist",
        "--out",
        out.path().to_str().unwrap(),
    ]);

    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("/nonexistent/mnist"), "{message}");
    assert!(message.contains("trainer download"), "{message}");
}

#[test]
fn damaged_data_file_is_named_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("mnist");
    std::fs::create_dir(&data).unwrap();
    for entry in std::fs::read_dir(fixture()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, data.join(path.file_name().unwrap())).unwrap();
    }
    let images = data.join("train-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&images).unwrap();
    std::fs::write(&images, &bytes[..bytes.len() / 2]).unwrap();

    let output = trainer(&[
        "train",
        "autoencoder",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        dir.path().join("run").to_str().unwrap(),
    ]);

    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("train-images-idx3-ubyte.gz"), "{message}");
    assert!(message.contains("--force"), "{message}");
    assert_eq!(message.matches("deflate").count(), 1, "{message}");
}

#[test]
fn unknown_model_is_rejected() {
    let output = trainer(&["train", "pixelcnn"]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("pixelcnn"), "{message}");
    assert!(message.contains("dcgan"), "{message}");
}

#[test]
fn bad_numbers_are_rejected() {
    for args in [
        &["train", "dcgan", "--epochs", "0"][..],
        &["train", "dcgan", "--epochs", "ten"],
        &["train", "dcgan", "--batch-size", "1"],
        &["train", "dcgan", "--limit", "-5"],
        &["train", "dcgan", "--backend", "tpu"],
        &["sample", "dcgan", "--weights", "x.bin", "--out", "x.png", "--count", "0"],
    ] {
        let output = trainer(args);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
    }
}

#[test]
fn negative_learning_rate_is_rejected() {
    let out = tempfile::tempdir().unwrap();
    let output = trainer(&[
        "train",
        "dcgan",
        "--data-dir",
        fixture().to_str().unwrap(),
        "--learning-rate=-0.1",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--learning-rate"), "{}", stderr(&output));
}

#[test]
fn corrupt_weights_are_reported_by_sample() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("dcgan.bin");
    std::fs::write(&weights, b"MNISTGEN garbage").unwrap();
    let output = trainer(&[
        "sample",
        "dcgan",
        "--weights",
        weights.to_str().unwrap(),
        "--out",
        dir.path().join("x.png").to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("dcgan.bin"), "{message}");
    assert!(!dir.path().join("x.png").exists());
}

/// Copies a bundled weights file and its card into `dir`.
fn copy_bundled(name: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let bundled = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/weights");
    std::fs::copy(bundled.join(format!("{name}.md")), dir.join(format!("{name}.md"))).unwrap();
    let weights = dir.join(format!("{name}.bin"));
    std::fs::copy(bundled.join(format!("{name}.bin")), &weights).unwrap();
    weights
}

#[test]
fn convert_changes_storage_and_updates_the_card() {
    let dir = tempfile::tempdir().unwrap();
    let weights = copy_bundled("vae-2d", dir.path());

    let output = trainer(&["convert", "--weights", weights.to_str().unwrap(), "--storage", "f16"]);

    assert!(output.status.success(), "{}", stderr(&output));
    let converted = std::fs::read(&weights).unwrap();
    assert_eq!(decode(&converted).unwrap().0.storage, StorageType::F16);
    let (config, _) = load_vae(&converted, &Device::flex()).unwrap();
    assert_eq!(config.latent_dim, 2);
    let card = std::fs::read_to_string(dir.path().join("vae-2d.md")).unwrap();
    assert!(card.contains(&sha256_hex(&converted)), "{card}");
    assert!(card.contains("| storage | f16, converted from int8 by `trainer convert` |"), "{card}");
    assert_eq!(card.matches("| storage |").count(), 1, "{card}");
}

#[test]
fn convert_to_same_storage_keeps_card_note() {
    let dir = tempfile::tempdir().unwrap();
    let weights = copy_bundled("vae-2d", dir.path());
    let card_path = dir.path().join("vae-2d.md");
    let note = |card: &str| card.lines().find(|line| line.starts_with("| storage |")).map(str::to_string);
    let before = note(&std::fs::read_to_string(&card_path).unwrap());

    let output = trainer(&["convert", "--weights", weights.to_str().unwrap(), "--storage", "int8"]);

    assert!(output.status.success(), "{}", stderr(&output));
    let card = std::fs::read_to_string(&card_path).unwrap();
    assert!(before.is_some(), "the bundled card has no storage row: {card}");
    assert_eq!(note(&card), before, "{card}");
    assert!(card.contains(&sha256_hex(&std::fs::read(&weights).unwrap())), "{card}");
}

#[test]
fn convert_to_another_file_keeps_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let weights = copy_bundled("vae-2d", dir.path());
    let original = std::fs::read(&weights).unwrap();
    let out = dir.path().join("vae-2d-f32.bin");

    let output = trainer(&["convert", "--weights", weights.to_str().unwrap(), "--storage", "f32", "--out", out.to_str().unwrap()]);

    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(&weights).unwrap(), original);
    assert_eq!(decode(&std::fs::read(&out).unwrap()).unwrap().0.storage, StorageType::F32);
}

#[test]
fn convert_refuses_to_overwrite_another_model() {
    let dir = tempfile::tempdir().unwrap();
    let weights = copy_bundled("vae-2d", dir.path());
    let other = copy_bundled("autoencoder", dir.path());
    let original = std::fs::read(&other).unwrap();

    let output = trainer(&["convert", "--weights", weights.to_str().unwrap(), "--storage", "f16", "--out", other.to_str().unwrap()]);

    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("holds a autoencoder model, not vae"), "{message}");
    assert_eq!(std::fs::read(&other).unwrap(), original);
}

#[test]
fn convert_of_a_corrupt_file_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("broken.bin");
    std::fs::write(&weights, b"not weights").unwrap();

    let output = trainer(&["convert", "--weights", weights.to_str().unwrap(), "--storage", "int8"]);

    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("broken.bin"), "{message}");
    assert_eq!(std::fs::read(&weights).unwrap(), b"not weights");
}

#[test]
fn dcgan_trains_exports_and_samples() {
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let output = trainer(&[
        "train",
        "dcgan",
        "--data-dir",
        fixture().to_str().unwrap(),
        "--limit",
        "256",
        "--batch-size",
        "64",
        "--epochs",
        "2",
        "--seed",
        "3",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));

    for file in ["samples/epoch-001.png", "samples/epoch-002.png", "config.json", "dcgan.md", "checkpoint/state.json"] {
        assert!(run.join(file).is_file(), "{file} is missing");
    }
    let losses = std::fs::read_to_string(run.join("losses.csv")).unwrap();
    let rows: Vec<&str> = losses.lines().collect();
    assert_eq!(rows[0], "epoch,step,discriminator_loss,generator_loss");
    assert_eq!(rows.len(), 1 + 2 * 4, "{losses}");
    for row in &rows[1..] {
        for value in row.split(',').skip(2) {
            assert!(value.parse::<f32>().unwrap().is_finite(), "{row}");
        }
    }

    let weights = std::fs::read(run.join("dcgan.bin")).unwrap();
    let (config, _) = load_generator(&weights, ModelKind::Dcgan, &Device::flex()).unwrap();
    assert_eq!(config.latent_dim, 64);
    let card = std::fs::read_to_string(run.join("dcgan.md")).unwrap();
    assert!(card.contains(&sha256_hex(&weights)), "{card}");
    assert_eq!(decode(&weights).unwrap().0.storage, StorageType::Int8, "int8 is the default storage");
    assert!(card.contains("| storage | int8 |"), "{card}");

    let png = out.path().join("grid.png");
    let output = trainer(&[
        "sample",
        "dcgan",
        "--weights",
        run.join("dcgan.bin").to_str().unwrap(),
        "--count",
        "16",
        "--out",
        png.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
}

#[test]
fn resume_without_checkpoint_is_an_error() {
    let out = tempfile::tempdir().unwrap();
    let output = trainer(&[
        "train",
        "dcgan",
        "--data-dir",
        fixture().to_str().unwrap(),
        "--resume",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("no checkpoint"), "{}", stderr(&output));
}

#[test]
fn cgan_trains_and_samples_a_requested_digit() {
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let output = trainer(&[
        "train",
        "cgan",
        "--data-dir",
        fixture().to_str().unwrap(),
        "--limit",
        "128",
        "--batch-size",
        "64",
        "--epochs",
        "1",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let weights = std::fs::read(run.join("cgan.bin")).unwrap();
    let (config, _) = load_generator(&weights, ModelKind::Cgan, &Device::flex()).unwrap();
    assert_eq!(config.condition_dim, 10);

    // One row of 8 per digit, 2-pixel gaps: 8 * 30 - 2 by 10 * 30 - 2 pixels.
    let grid = image_size(&std::fs::read(run.join("samples/epoch-001.png")).unwrap());
    assert_eq!(grid, (238, 298));

    let png = out.path().join("sevens.png");
    let weights_arg = run.join("cgan.bin");
    let output = trainer(&[
        "sample",
        "cgan",
        "--weights",
        weights_arg.to_str().unwrap(),
        "--digit",
        "7",
        "--count",
        "8",
        "--out",
        png.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(image_size(&std::fs::read(&png).unwrap()), (238, 28));

    let output = trainer(&[
        "sample",
        "cgan",
        "--weights",
        weights_arg.to_str().unwrap(),
        "--digit",
        "12",
        "--out",
        png.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("digit 12 is out of range"), "{}", stderr(&output));

    let output = trainer(&[
        "sample",
        "dcgan",
        "--weights",
        weights_arg.to_str().unwrap(),
        "--digit",
        "3",
        "--out",
        png.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--digit needs a conditional model"), "{}", stderr(&output));
}

/// Returns the width and height in a PNG file's header.
fn image_size(png: &[u8]) -> (u32, u32) {
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    (width, height)
}

#[test]
fn publish_rejects_trunk_serve_page() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("dist");
    std::fs::create_dir(&page).unwrap();
    let html = "<html><head><script>const url = base + '.well-known/trunk/ws';</script></head></html>";
    std::fs::write(page.join("index.html"), html).unwrap();
    let out = dir.path().join("site");

    let output = trainer(&["publish", "--page", page.to_str().unwrap(), "--out", out.to_str().unwrap()]);

    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("trunk serve"), "{message}");
    assert!(message.contains("trunk build --release"), "{message}");
    assert!(!out.exists());
}

/// Makes a page folder with an index.html and a weights folder with the bundled `model`.
fn page_and_weights(dir: &std::path::Path, model: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let page = dir.join("dist");
    std::fs::create_dir(&page).unwrap();
    std::fs::write(page.join("index.html"), "<html><head></head><body></body></html>").unwrap();
    let weights = dir.join("weights");
    std::fs::create_dir(&weights).unwrap();
    copy_bundled(model, &weights);
    (page, weights)
}

fn publish(page: &std::path::Path, weights: &std::path::Path, out: &std::path::Path) -> std::process::Output {
    trainer(&[
        "publish",
        "--page",
        page.to_str().unwrap(),
        "--weights-dir",
        weights.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
fn publish_warns_about_models_the_page_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let (page, weights) = page_and_weights(dir.path(), "vae-2d");
    let out = dir.path().join("site");

    let output = publish(&page, &weights, &out);

    let message = stderr(&output);
    assert!(output.status.success(), "{message}");
    assert!(message.contains("dcgan.bin (random digits)"), "{message}");
    assert!(message.contains("autoencoder.bin (the Draw tab)"), "{message}");
    assert!(!message.contains("vae-2d.bin"), "{message}");
    assert!(out.join("index.html").is_file());
}

#[test]
fn sample_rejects_non_png_out() {
    let dir = tempfile::tempdir().unwrap();
    let weights = copy_bundled("dcgan", dir.path());
    let out = dir.path().join("digits.txt");

    let output = trainer(&["sample", "dcgan", "--weights", weights.to_str().unwrap(), "--out", out.to_str().unwrap()]);

    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("digits.txt"), "{message}");
    assert!(message.contains(".png"), "{message}");
    assert!(!out.exists());
}

#[test]
fn missing_weights_file_gets_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("nowhere.bin");
    let output = trainer(&["sample", "dcgan", "--weights", weights.to_str().unwrap(), "--out", dir.path().join("x.png").to_str().unwrap()]);

    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("nowhere.bin"), "{message}");
    assert!(message.contains("trainer train"), "{message}");
}

#[test]
fn publish_replaces_only_an_earlier_site() {
    let dir = tempfile::tempdir().unwrap();
    let (page, weights) = page_and_weights(dir.path(), "dcgan");
    let site = dir.path().join("site");

    for attempt in ["first", "second"] {
        let output = publish(&page, &weights, &site);
        assert!(output.status.success(), "{attempt} publish: {}", stderr(&output));
        assert!(site.join("weights/manifest.json").is_file());
    }

    // The same folder written with a trailing `.`, as a shell may complete it.
    let output = publish(&page, &weights, &site.join("."));
    assert!(output.status.success(), "publish to site/.: {}", stderr(&output));

    std::fs::write(site.join("CNAME"), "digits.example").unwrap();
    let output = publish(&page, &weights, &site);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("did not write (CNAME)"), "{message}");
    assert!(site.join("CNAME").is_file());

    let other = dir.path().join("notes");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("thesis.txt"), "keep me").unwrap();
    let output = publish(&page, &weights, &other);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("did not write (thesis.txt)"), "{message}");
    assert!(other.join("thesis.txt").is_file());
}

#[test]
fn publish_rejects_out_containing_its_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let (page, weights) = page_and_weights(dir.path(), "dcgan");

    for out in [weights.clone(), dir.path().to_path_buf()] {
        let output = publish(&page, &weights, &out);
        assert!(!output.status.success(), "{}", out.display());
        let message = stderr(&output);
        assert!(message.contains("which publishing would delete"), "{message}");
        assert!(weights.join("dcgan.bin").is_file());
    }

    let output = publish(&page, &weights, &page.join("site"));
    assert!(!output.status.success());
    assert!(stderr(&output).contains("inside the page folder"), "{}", stderr(&output));
    assert!(!page.join("site").exists());
}

#[test]
fn diverged_run_stops_without_weights() {
    // The autoencoder's losses turn NaN within the first epoch; the DCGAN's stay finite but its
    // weights overflow what the export stores.
    for model in ["autoencoder", "dcgan"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");

        let output = trainer(&[
            "train",
            model,
            "--epochs",
            "2",
            "--learning-rate",
            "1e6",
            "--data-dir",
            fixture().to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);

        assert!(!output.status.success(), "{model}");
        let message = stderr(&output);
        assert!(message.contains("diverged"), "{model}: {message}");
        assert!(message.contains("lower --learning-rate"), "{model}: {message}");
        assert!(!out.join(format!("{model}.bin")).exists(), "{model}");
    }
}
