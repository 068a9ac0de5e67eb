//! End-to-end runs of the autoencoders and the classifier, config files and resuming, on the
//! MNIST fixture.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use burn::tensor::Device;
use common::{fixture, stderr, trainer};
use shared::autoencoder::load_autoencoder;
use shared::classifier::load_classifier;
use shared::vae::load_vae;

/// Runs `trainer train MODEL` on the fixture with `extra` arguments into `run`.
fn train(model: &str, run: &Path, extra: &[&str]) -> Output {
    let data_dir = fixture();
    let mut args = vec!["train", model, "--data-dir", data_dir.to_str().unwrap(), "--out", run.to_str().unwrap()];
    args.extend_from_slice(extra);
    trainer(&args)
}

#[test]
fn autoencoder_trains_and_reports() {
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");

    let output = train("autoencoder", &run, &["--epochs", "2", "--limit", "256"]);

    assert!(output.status.success(), "{}", stderr(&output));
    for file in ["autoencoder.bin", "autoencoder.md", "autoencoder.config.json", "losses.svg", "samples.png", "metrics.csv"] {
        assert!(run.join(file).is_file(), "{file} is missing");
    }
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let rows: Vec<&str> = metrics.lines().collect();
    assert_eq!(rows[0], "epoch,mse,test_mse,test_bce_nats");
    assert_eq!(rows.len(), 3, "{metrics}");
    let card = std::fs::read_to_string(run.join("autoencoder.md")).unwrap();
    assert!(card.contains("test_mse"), "{card}");
    assert!(card.contains("| command | `trainer train autoencoder"), "{card}");

    let weights = std::fs::read(run.join("autoencoder.bin")).unwrap();
    let (config, _) = load_autoencoder(&weights, &Device::flex()).unwrap();
    assert_eq!(config.code_dim, 32);
}

#[test]
fn two_dimensional_vae_trains_and_samples_its_map() {
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");

    let output = train("vae", &run, &["--epochs", "1", "--latent-dim", "2", "--limit", "256"]);

    assert!(output.status.success(), "{}", stderr(&output));
    let weights = std::fs::read(run.join("vae-2d.bin")).unwrap();
    let (config, _) = load_vae(&weights, &Device::flex()).unwrap();
    assert_eq!(config.latent_dim, 2);
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert!(metrics.starts_with("epoch,negative_elbo,reconstruction,kl,test_negative_elbo_nats"), "{metrics}");

    let png = out.path().join("map.png");
    let output = trainer(&[
        "sample",
        "vae",
        "--weights",
        run.join("vae-2d.bin").to_str().unwrap(),
        "--out",
        png.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let picture = image::open(&png).unwrap();
    // 16 tiles of 28 px with 2 px between them.
    assert_eq!(picture.width(), 16 * 30 - 2);
    assert_eq!(picture.height(), 16 * 30 - 2);
}

#[test]
fn classifier_trains_and_exports() {
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");

    let output = train("classifier", &run, &["--epochs", "1", "--limit", "256"]);

    assert!(output.status.success(), "{}", stderr(&output));
    let weights = std::fs::read(run.join("classifier.bin")).unwrap();
    assert!(load_classifier(&weights, &Device::flex()).is_ok());
    let card = std::fs::read_to_string(run.join("classifier.md")).unwrap();
    assert!(card.contains("test_accuracy"), "{card}");
}

#[test]
fn config_file_sets_and_flags_override() {
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let config = out.path().join("run.toml");
    std::fs::write(&config, "epochs = 1\nlimit = 128\nbatch_size = 32\nlearning_rate = 0.002\n").unwrap();

    let output = train("autoencoder", &run, &["--config", config.to_str().unwrap(), "--batch-size", "64"]);

    assert!(output.status.success(), "{}", stderr(&output));
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(saved["epochs"], 1);
    assert_eq!(saved["limit"], 128);
    assert_eq!(saved["batch_size"], 64, "the flag overrides the file");
    assert_eq!(saved["learning_rate"], 0.002);
    assert_eq!(saved["model_config"]["model"]["code_dim"], 32);
    let losses = std::fs::read_to_string(run.join("losses.csv")).unwrap();
    assert_eq!(losses.lines().count(), 1 + 2, "128 images in batches of 64: {losses}");
}

#[test]
fn invalid_config_file_is_reported() {
    let out = tempfile::tempdir().unwrap();
    let config = out.path().join("run.toml");
    std::fs::write(&config, "epochs = \"many\"\n").unwrap();

    let output = train("vae", &out.path().join("run"), &["--config", config.to_str().unwrap()]);

    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("run.toml"), "{message}");
    assert!(message.contains("epochs"), "{message}");
}

#[test]
fn resume_with_smaller_limit_is_rejected() {
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let first = train("autoencoder", &run, &["--epochs", "2", "--limit", "256", "--batch-size", "32", "--interrupt-after-steps", "3"]);
    assert!(run.join("checkpoint").is_dir(), "{}", stderr(&first));

    let output = train("autoencoder", &run, &["--epochs", "2", "--limit", "64", "--batch-size", "32", "--resume"]);

    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.contains("cannot resume with another batch size, limit or seed"), "{message}");
    assert!(message.contains("--limit 256"), "{message}");
    assert!(!message.contains("panicked"), "{message}");
}

#[test]
fn resume_drops_steps_logged_after_checkpoint() {
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let common = ["--epochs", "1", "--limit", "256", "--batch-size", "32"];
    let mut first = common.to_vec();
    first.extend(["--interrupt-after-steps", "3"]);
    train("autoencoder", &run, &first);
    // A run killed after logging step 4 but before its checkpoint leaves this row behind.
    let losses = run.join("losses.csv");
    let mut text = std::fs::read_to_string(&losses).unwrap();
    text.push_str("1,4,0.5\n");
    std::fs::write(&losses, text).unwrap();

    let mut resumed = common.to_vec();
    resumed.push("--resume");
    let output = train("autoencoder", &run, &resumed);

    assert!(output.status.success(), "{}", stderr(&output));
    let text = std::fs::read_to_string(&losses).unwrap();
    let steps: Vec<&str> = text.lines().skip(1).map(|line| line.split(',').nth(1).unwrap()).collect();
    let expected: Vec<String> = (1..=8).map(|step| step.to_string()).collect();
    assert_eq!(steps, expected, "{text}");
}

#[test]
fn resumed_run_matches_uninterrupted_run() {
    // The classifier's dropout draws from the device's generator, the VAE's noise from the
    // checkpointed one.
    for model in ["vae", "classifier"] {
        assert_resumed_run_matches(model);
    }
}

/// Checks that `model`, interrupted twice and resumed, exports the same file as without breaks.
fn assert_resumed_run_matches(model: &str) {
    let out = tempfile::tempdir().unwrap();
    let whole = out.path().join("whole");
    let split = out.path().join("split");
    let common = ["--epochs", "2", "--limit", "256", "--batch-size", "32", "--seed", "4"];

    let output = train(model, &whole, &common);
    assert!(output.status.success(), "{}", stderr(&output));

    // Interrupted in the middle of the first epoch (8 steps per epoch), resumed, interrupted
    // again in the second and resumed to the end.
    let mut first = common.to_vec();
    first.extend(["--interrupt-after-steps", "3"]);
    let output = train(model, &split, &first);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--resume"), "{}", stderr(&output));
    let mut second = common.to_vec();
    second.extend(["--resume", "--interrupt-after-steps", "11"]);
    let output = train(model, &split, &second);
    assert!(!output.status.success(), "the second interrupt stops the run");
    let mut last = common.to_vec();
    last.push("--resume");
    let output = train(model, &split, &last);
    assert!(output.status.success(), "{}", stderr(&output));

    let expected = std::fs::read(whole.join(format!("{model}.bin"))).unwrap();
    let actual = std::fs::read(split.join(format!("{model}.bin"))).unwrap();
    assert!(expected == actual, "the resumed {model} run's weights file differs from the uninterrupted run's");
    let losses = |dir: &Path| std::fs::read_to_string(dir.join("losses.csv")).unwrap();
    assert_eq!(losses(&whole), losses(&split));
}

#[test]
fn interrupt_signal_writes_a_checkpoint() {
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let child = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["train", "autoencoder", "--data-dir", fixture().to_str().unwrap(), "--out", run.to_str().unwrap()])
        .args(["--epochs", "1000", "--batch-size", "16"])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let started = Instant::now();
    while !run.join("checkpoint/state.json").is_file() {
        assert!(started.elapsed() < Duration::from_secs(120), "no epoch finished within 2 minutes");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();

    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("interrupted"), "{message}");
    assert!(message.contains("--resume"), "{message}");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("checkpoint/state.json")).unwrap()).unwrap();
    assert!(state["steps_done"].as_u64().unwrap() > 32, "{state}");
}

#[test]
fn resume_of_another_model_is_rejected() {
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let output = train("autoencoder", &run, &["--epochs", "1", "--limit", "64"]);
    assert!(output.status.success(), "{}", stderr(&output));

    let output = train("vae", &run, &["--epochs", "2", "--limit", "64", "--resume"]);

    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("autoencoder run"), "{message}");
    assert!(message.contains("trainer train autoencoder"), "{message}");
}

#[test]
fn new_run_keeps_an_existing_run() {
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let output = train("autoencoder", &run, &["--epochs", "1", "--limit", "64"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let config = std::fs::read(run.join("config.json")).unwrap();

    let output = train("classifier", &run, &["--epochs", "1", "--limit", "64"]);

    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.contains("already contains a training run"), "{message}");
    assert!(message.contains("--resume"), "{message}");
    assert_eq!(std::fs::read(run.join("config.json")).unwrap(), config, "the first run's config.json changed");
    assert!(!run.join("classifier.bin").exists(), "the refused run exported weights");
}

#[test]
fn failed_start_leaves_no_output_folder() {
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");

    let output = trainer(&["train", "dcgan", "--data-dir", "/nonexistent/mnist", "--out", run.to_str().unwrap()]);

    assert!(!output.status.success());
    assert!(!run.exists(), "{} was created by a run that never started", run.display());
}
