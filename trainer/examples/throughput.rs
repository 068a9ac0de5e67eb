//! Training throughput of every model at batch 128 on burn-flex, printed as JSON, for
//! `bench/pytorch/compare.py`, which runs the same architectures in PyTorch.
//!
//! Usage: `cargo run --release -p trainer --example throughput -- [STEPS] [MODEL...]` (default 20
//! timed steps after 3 warm-up steps, every model). MODEL is one of dcgan, cgan, autoencoder,
//! vae and classifier, to measure (or profile) only some. Each step uses a fresh random batch,
//! as training does.

use std::time::Instant;

use burn::optim::AdamConfig;
use burn::tensor::{Device, Distribution, Tensor};
use shared::autoencoder::AutoencoderConfig;
use shared::cgan::ConditionalDiscriminatorConfig;
use shared::classifier::ClassifierConfig;
use shared::dcgan::{DiscriminatorConfig, GeneratorConfig};
use shared::latent::{SeededRng, normal_latents};
use shared::vae::VaeConfig;
use trainer::autoencoding::{AutoencoderRun, AutoencoderTrainingConfig, VaeRun, VaeTrainingConfig};
use trainer::classify::{ClassifierRun, ClassifierTrainingConfig};
use trainer::gan::{CriticConfig, Gan, GanRun, GanTrainingConfig};
use trainer::train::{TrainBatch, Trainee};
use shared::weights::ModelKind;

const BATCH: usize = 128;
const WARM_UP: usize = 3;

/// Returns images per second over `steps` steps of `trainee`, after a warm-up.
fn measure<T: Trainee>(mut trainee: T, steps: usize, device: &Device, symmetric: bool) -> f64 {
    let mut noise = SeededRng::new(1);
    let (low, high) = if symmetric { (-1.0, 1.0) } else { (0.0, 1.0) };
    let mut elapsed = 0.0;
    for step in 0..WARM_UP + steps {
        let batch = TrainBatch {
            images: Tensor::random([BATCH, 1, 28, 28], Distribution::Uniform(low, high), device),
            digits: (0..BATCH as u32).map(|i| i % 10).collect(),
        };
        let started = Instant::now();
        let (next, losses) = trainee.step(batch, &mut noise);
        // The losses are read back to the host inside `step`, so the work is finished here.
        assert!(losses.iter().all(|l| l.is_finite()));
        if step >= WARM_UP {
            elapsed += started.elapsed().as_secs_f64();
        }
        trainee = next;
    }
    (steps * BATCH) as f64 / elapsed
}

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let steps = arguments.first().and_then(|s| s.parse().ok()).unwrap_or(20);
    let chosen: Vec<&str> = arguments.iter().skip(1).map(String::as_str).collect();
    let selected = |name: &str| chosen.is_empty() || chosen.contains(&name);
    let device = Device::flex().autodiff();
    device.seed(0);
    let mut results = Vec::new();

    for kind in [ModelKind::Dcgan, ModelKind::Cgan] {
        if !selected(kind.name()) {
            continue;
        }
        let conditional = kind == ModelKind::Cgan;
        let (generator, critic) = if conditional {
            (GeneratorConfig::new().with_condition_dim(10), CriticConfig::Conditional(ConditionalDiscriminatorConfig::new()))
        } else {
            (GeneratorConfig::new(), CriticConfig::Plain(DiscriminatorConfig::new()))
        };
        let config = GanTrainingConfig::new(generator, critic);
        let run = GanRun {
            gan: Gan::new(&config, &device),
            config,
            kind,
            sample_inputs: normal_latents(0, 1, 64),
        };
        results.push((kind.name(), measure(run, steps, &device, true)));
    }

    if selected("autoencoder") {
        let config = AutoencoderTrainingConfig::new(AutoencoderConfig::new());
        let run = AutoencoderRun { model: config.model.init(&device), optimizer: AdamConfig::new().init(), config };
        results.push(("autoencoder", measure(run, steps, &device, false)));
    }

    if selected("vae") {
        let config = VaeTrainingConfig::new(VaeConfig::new());
        let run = VaeRun { model: config.model.init(&device), optimizer: AdamConfig::new().init(), config, seed: 0 };
        results.push(("vae", measure(run, steps, &device, false)));
    }

    if selected("classifier") {
        let config = ClassifierTrainingConfig::new(ClassifierConfig::new());
        let run = ClassifierRun { model: config.model.init(&device), optimizer: AdamConfig::new().init(), config };
        results.push(("classifier", measure(run, steps, &device, false)));
    }

    let json: Vec<String> = results.iter().map(|(name, rate)| format!("\"{name}\": {rate:.1}")).collect();
    println!("{{{}}}", json.join(", "));
}
