//! `trainer eval`: quality metrics of an exported model on the MNIST test set.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use burn::tensor::{Device, Tensor};
use serde::Serialize;
use shared::autoencoder::load_autoencoder;
use shared::cgan::conditional_inputs;
use shared::classifier::{Classifier, argmax_rows, load_classifier};
use shared::dcgan::{Generator, load_generator};
use shared::grid::PixelRange;
use shared::latent::{SeededRng, normal_latents};
use shared::mnist::{Mnist, Split};
use shared::vae::{DiagonalGaussian, Vae, bernoulli_nll, load_vae};
use shared::weights::ModelKind;
use shared::NUM_CLASSES;

use crate::atomic;
use crate::autoencoding::{EVAL_BATCH, EVAL_STREAM, autoencoder_metrics, eval_batches, vae_metrics};
use crate::classify::{accuracy, predict};
use crate::cli::{EvalArgs, ModelArg};
use crate::data::{images_tensor, load_mnist, matrix};
use crate::device;
use crate::input::read_weights_file;
use crate::metrics::{Gaussian, frechet_distance, log_sum_exp};

/// The metrics of one model, by name, in the order they were computed.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Model kind.
    pub model: ModelKind,
    /// The weights file evaluated.
    pub weights: PathBuf,
    /// Number of test digits the metrics were measured on.
    pub test_digits: usize,
    /// Metric name and value pairs.
    pub metrics: Vec<Metric>,
}

/// One measured number.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    /// Short name, as in the JSON output.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Description of the measured quantity, for the table.
    pub description: String,
}

impl Evaluation {
    fn push(&mut self, name: &str, value: f64, description: impl Into<String>) {
        self.metrics.push(Metric {
            name: name.to_string(),
            value,
            description: description.into(),
        });
    }

    /// Renders the metrics as a Markdown table.
    pub fn to_table(&self) -> String {
        let mut text = String::from("| metric | value | meaning |\n| --- | --- | --- |\n");
        for metric in &self.metrics {
            text.push_str(&format!("| {} | {} | {} |\n", metric.name, format_value(metric.value), metric.description));
        }
        text
    }
}

fn format_value(value: f64) -> String {
    if value.abs() >= 100.0 { format!("{value:.2}") } else { format!("{value:.4}") }
}

/// Runs `trainer eval`.
pub fn eval(args: &EvalArgs) -> Result<()> {
    let evaluation = evaluate(args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&evaluation)?);
    } else {
        println!("{} ({}), on {} test digits\n", evaluation.model, args.weights.display(), evaluation.test_digits);
        print!("{}", evaluation.to_table());
    }
    if args.update_card {
        update_card(&args.weights, &evaluation)?;
    }
    Ok(())
}

/// Computes the metrics of the model in `args.weights`.
pub fn evaluate(args: &EvalArgs) -> Result<Evaluation> {
    let file = read_weights_file(&args.weights, "the weights file")?;
    let device = device::device(args.backend)?;
    let test = load_mnist(&args.data_dir, Split::Test)?;
    let kind = args.model.kind();
    let mut evaluation = Evaluation {
        model: kind,
        weights: args.weights.clone(),
        test_digits: test.len(),
        metrics: Vec::new(),
    };
    let context = || format!("failed to load {}", args.weights.display());

    match args.model {
        ModelArg::Dcgan | ModelArg::Cgan => {
            let (_, generator) = load_generator(&file, kind, &device).with_context(context)?;
            let classifier = load_reference(args, &device)?;
            evaluate_gan(args, &generator, &classifier, &test, &device, &mut evaluation)?;
        }
        ModelArg::Autoencoder => {
            let (_, model) = load_autoencoder(&file, &device).with_context(context)?;
            let metrics = autoencoder_metrics(&model, &test, &device)?;
            evaluation.push("test_mse", metrics.mse, "mean squared error per pixel, pixels in [0, 1]");
            evaluation.push("test_bce_nats", metrics.bce, "binary cross-entropy summed over each image, in nats");
        }
        ModelArg::Vae => {
            let (_, model) = load_vae(&file, &device).with_context(context)?;
            let metrics = vae_metrics(&model, &test, args.seed ^ EVAL_STREAM, &device)?;
            evaluation.push("test_negative_elbo_nats", metrics.negative_elbo, "negative ELBO per image (one posterior sample)");
            evaluation.push("test_reconstruction_nats", metrics.reconstruction, "its binary cross-entropy term");
            evaluation.push("test_kl_nats", metrics.kl, "its KL term");
            let bound = importance_weighted_bound(&model, &test, args.k as usize, args.seed, &device)?;
            evaluation.push(
                "test_iw_bound_nats",
                bound,
                format!("importance-weighted bound on −ln p(x) with K = {}", args.k),
            );
        }
        ModelArg::Classifier => {
            let (_, model) = load_classifier(&file, &device).with_context(context)?;
            let predictions = predict(&model, &test, &device)?;
            evaluation.push("test_accuracy", accuracy(&predictions, &test.labels), "share of test digits read correctly");
        }
    }
    Ok(evaluation)
}

/// Loads the reference classifier: `--classifier`, or `classifier.bin` beside the weights.
fn load_reference(args: &EvalArgs, device: &Device) -> Result<Classifier> {
    let path = args.classifier.clone().unwrap_or_else(|| {
        args.weights.parent().unwrap_or(Path::new(".")).join("classifier.bin")
    });
    if !path.exists() {
        bail!(
            "the reference classifier {} does not exist; pass the bundled one with --classifier web/weights/classifier.bin, \
             or train one with `trainer train classifier`",
            path.display()
        );
    }
    let file = read_weights_file(&path, "the reference classifier")?;
    let (_, classifier) = load_classifier(&file, device).with_context(|| format!("failed to load {}", path.display()))?;
    Ok(classifier)
}

fn evaluate_gan(
    args: &EvalArgs,
    generator: &Generator,
    classifier: &Classifier,
    test: &Mnist,
    device: &Device,
    evaluation: &mut Evaluation,
) -> Result<()> {
    let samples = args.samples as usize;
    let conditional = generator.condition_dim() > 0;
    let (generated_features, predictions) = generated_features(generator, classifier, samples, args.seed, device)?;

    let test_features = features_of(classifier, test, test.len(), device)?;
    let train = load_mnist(&args.data_dir, Split::Train)?;
    let train_features = features_of(classifier, &train, test.len().min(train.len()), device)?;
    let dim = test_features.len() / test.len();
    let test_gaussian = Gaussian::fit(&test_features, dim);
    let distance = frechet_distance(&Gaussian::fit(&generated_features, dim), &test_gaussian);
    let floor = frechet_distance(&Gaussian::fit(&train_features, dim), &test_gaussian);

    evaluation.push(
        "frechet_distance",
        distance,
        format!("Fréchet distance of {samples} generated digits to the test set, in the classifier's hidden features"),
    );
    evaluation.push("frechet_floor", floor, "the same distance from training digits to the test set");
    evaluation.push("frechet_ratio", distance / floor.max(f64::MIN_POSITIVE), "distance divided by the floor");

    if conditional {
        let digits = requested_digits(samples);
        let mut correct = [0usize; NUM_CLASSES];
        let mut total = [0usize; NUM_CLASSES];
        for (&digit, &predicted) in digits.iter().zip(&predictions) {
            total[digit as usize] += 1;
            correct[digit as usize] += usize::from(predicted == digit as usize);
        }
        let overall = correct.iter().sum::<usize>() as f64 / samples.max(1) as f64;
        evaluation.push("requested_digit_accuracy", overall, "share of generated digits the classifier reads as requested");
        for digit in 0..NUM_CLASSES {
            let share = correct[digit] as f64 / total[digit].max(1) as f64;
            evaluation.push(&format!("requested_digit_accuracy_{digit}"), share, format!("the same for digit {digit}"));
        }
    }
    Ok(())
}

/// Generates `samples` digits from the latents of `seed`, the digits 0-9 in turn for a
/// conditional generator, and returns the classifier's hidden features of them and its
/// predicted digits.
pub fn generated_features(
    generator: &Generator,
    classifier: &Classifier,
    samples: usize,
    seed: u64,
    device: &Device,
) -> Result<(Vec<f32>, Vec<usize>)> {
    let conditional = generator.condition_dim() > 0;
    let latent_dim = generator.latent_dim();
    let input_dim = latent_dim + generator.condition_dim();
    let digits = requested_digits(samples);
    let mut features = Vec::new();
    let mut predictions = Vec::new();

    for start in (0..samples).step_by(EVAL_BATCH) {
        let count = EVAL_BATCH.min(samples - start);
        let latents = normal_latents(seed.wrapping_add(start as u64), count, latent_dim);
        let rows = if conditional {
            conditional_inputs(&latents, latent_dim, &digits[start..start + count]).map_err(|e| anyhow!("{e}"))?
        } else {
            latents
        };
        // The generator draws in [-1, 1]; the classifier reads [0, 1].
        let images = generator.forward(matrix(rows, count, input_dim, device)).add_scalar(1.0).mul_scalar(0.5);
        features.extend(read(classifier.features(images.clone()))?);
        predictions.extend(argmax_rows(&read(classifier.forward(images))?, NUM_CLASSES));
    }
    Ok((features, predictions))
}

/// Returns the digit requested for each of `samples` generated digits: 0-9 in turn.
fn requested_digits(samples: usize) -> Vec<u32> {
    (0..samples).map(|i| (i % NUM_CLASSES) as u32).collect()
}

/// Returns the classifier's hidden features of the first `count` images of `set`.
pub fn features_of(classifier: &Classifier, set: &Mnist, count: usize, device: &Device) -> Result<Vec<f32>> {
    let mut features = Vec::new();
    for indices in eval_batches(count) {
        let images = images_tensor(set, &indices, PixelRange::Unit, device);
        features.extend(read(classifier.features(images))?);
    }
    Ok(features)
}

/// Returns the mean over `test` of the importance-weighted bound on `−ln p(x)` with `k` samples
/// from the posterior: `−ln (1/K Σ p(x|z) p(z) / q(z|x))`, which is at most the negative ELBO
/// and tightens as `k` grows.
pub fn importance_weighted_bound(model: &Vae, test: &Mnist, k: usize, seed: u64, device: &Device) -> Result<f64> {
    let latent_dim = model.latent_dim();
    let mut noise = SeededRng::new(seed ^ 0x1B0D);
    let mut total = 0.0f64;

    for indices in eval_batches(test.len()) {
        let count = indices.len();
        let images = images_tensor(test, &indices, PixelRange::Unit, device);
        let posterior = model.encode(images.clone());
        let prior = DiagonalGaussian {
            mean: Tensor::zeros([count, latent_dim], device),
            log_variance: Tensor::zeros([count, latent_dim], device),
        };
        let mut log_weights = vec![Vec::with_capacity(k); count];

        for _ in 0..k {
            let values: Vec<f32> = (0..count * latent_dim).map(|_| noise.next_normal() as f32).collect();
            let latents = posterior.sample_with(matrix(values, count, latent_dim, device));
            let log_likelihood = bernoulli_nll(model.decode_logits(latents.clone()), images.clone()).neg();
            let log_weight = log_likelihood + prior.log_prob(latents.clone()) - posterior.log_prob(latents);
            for (row, value) in log_weights.iter_mut().zip(read(log_weight)?) {
                row.push(f64::from(value));
            }
        }
        total += log_weights.iter().map(|row| -(log_sum_exp(row) - (k as f64).ln())).sum::<f64>();
    }
    Ok(total / test.len().max(1) as f64)
}

fn read<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>> {
    tensor
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow!("{e:?}"))
        .context("failed to read values from the device")
}

/// Writes the evaluation into the model card beside the weights (`NAME.md` for `NAME.bin`),
/// replacing an earlier evaluation section, and as `NAME.metrics.json`.
fn update_card(weights: &Path, evaluation: &Evaluation) -> Result<()> {
    let card = weights.with_extension("md");
    let text = std::fs::read_to_string(&card).unwrap_or_default();
    let card_without_evaluation = text.split("\n## Evaluation\n").next().unwrap_or_default().trim_end();
    let updated = format!(
        "{card_without_evaluation}\n\n## Evaluation\n\nMeasured with `trainer eval` on {} MNIST test digits.\n\n{}",
        evaluation.test_digits,
        evaluation.to_table()
    );
    atomic::write(&card, updated.as_bytes())?;
    atomic::write(&weights.with_extension("metrics.json"), serde_json::to_string_pretty(evaluation)?.as_bytes())?;
    tracing::info!(card = %card.display(), "card updated");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::vae::VaeConfig;

    #[test]
    fn importance_bound_is_below_the_elbo_and_tightens() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/mnist");
        let mut test = Mnist::load(&dir, Split::Test).unwrap();
        test.truncate(64);
        let device = Device::flex();
        device.seed(3);
        let model = VaeConfig::new().with_latent_dim(4).init(&device);

        let elbo = vae_metrics(&model, &test, 1, &device).unwrap().negative_elbo;
        let one = importance_weighted_bound(&model, &test, 1, 2, &device).unwrap();
        let many = importance_weighted_bound(&model, &test, 32, 2, &device).unwrap();

        // With K = 1 the bound is the negative ELBO itself, up to the noise draw.
        assert!((one - elbo).abs() / elbo < 0.01, "K=1 bound {one} vs negative ELBO {elbo}");
        assert!(many <= one + 1e-6, "K=32 bound {many} is above the K=1 bound {one}");
    }
}
