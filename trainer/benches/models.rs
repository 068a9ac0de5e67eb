//! Speed of one training step at batch 128 and of one inference batch of 64 for the
//! autoencoder, the VAE (latent 16) and the classifier, on burn-flex and on wgpu (skipped with a
//! message when no wgpu adapter is available).
//!
//! Run with `cargo bench --bench models`; set `XDG_RUNTIME_DIR` for Mesa's lavapipe.

use std::time::Duration;

use burn::module::Module;
use burn::optim::AdamConfig;
use burn::tensor::{Device, Distribution, Tensor};
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime};
use shared::autoencoder::AutoencoderConfig;
use shared::classifier::ClassifierConfig;
use shared::latent::{SeededRng, normal_latents};
use shared::vae::VaeConfig;
use trainer::autoencoding::{AutoencoderRun, AutoencoderTrainingConfig, VaeRun, VaeTrainingConfig};
use trainer::classify::{ClassifierRun, ClassifierTrainingConfig};
use trainer::cli::BackendArg;
use trainer::data::matrix;
use trainer::train::{TrainBatch, Trainee};

fn backends() -> Vec<(&'static str, Device)> {
    let mut list = vec![("cpu", Device::flex())];
    match trainer::device::device(BackendArg::Wgpu) {
        Ok(device) => list.push(("wgpu", device)),
        Err(error) => eprintln!("skipping wgpu: {error:#}"),
    }
    list
}

fn batch(device: &Device) -> TrainBatch {
    TrainBatch {
        images: Tensor::random([128, 1, 28, 28], Distribution::Uniform(0.0, 1.0), device),
        digits: (0..128).map(|i| i % 10).collect(),
    }
}

/// Benchmarks repeated optimisation steps of `trainee` on random batches.
fn bench_steps<T: Trainee>(group: &mut BenchmarkGroup<WallTime>, name: &str, device: &Device, trainee: T) {
    let mut trainee = Some(trainee);
    let mut noise = SeededRng::new(1);
    group.bench_function(name, |b| {
        b.iter(|| {
            let (next, losses) = trainee.take().unwrap().step(batch(device), &mut noise);
            trainee = Some(next);
            losses
        })
    });
}

fn training_steps(c: &mut Criterion) {
    let mut group = c.benchmark_group("train_step_batch_128");
    group.throughput(Throughput::Elements(128));
    group.sample_size(10).measurement_time(Duration::from_secs(8));
    for (name, device) in backends() {
        let device = device.autodiff();
        device.seed(0);

        let config = AutoencoderTrainingConfig::new(AutoencoderConfig::new());
        let run = AutoencoderRun { model: config.model.init(&device), optimizer: AdamConfig::new().init(), config };
        bench_steps(&mut group, &format!("autoencoder_{name}"), &device, run);

        let config = VaeTrainingConfig::new(VaeConfig::new());
        let run = VaeRun { model: config.model.init(&device), optimizer: AdamConfig::new().init(), config, seed: 0 };
        bench_steps(&mut group, &format!("vae_{name}"), &device, run);

        let config = ClassifierTrainingConfig::new(ClassifierConfig::new());
        let run = ClassifierRun { model: config.model.init(&device), optimizer: AdamConfig::new().init(), config };
        bench_steps(&mut group, &format!("classifier_{name}"), &device, run);
    }
    group.finish();
}

fn inference(c: &mut Criterion) {
    let mut group = c.benchmark_group("inference_batch_64");
    group.throughput(Throughput::Elements(64));
    for (name, device) in backends() {
        let images = Tensor::<4>::random([64, 1, 28, 28], Distribution::Uniform(0.0, 1.0), &device);

        let autoencoder = AutoencoderConfig::new().init(&device).valid();
        group.bench_function(format!("autoencoder_reconstruct_{name}"), |b| {
            b.iter(|| autoencoder.forward(images.clone()).into_data())
        });

        let vae = VaeConfig::new().init(&device).valid();
        let latents = matrix(normal_latents(2, 64, 16), 64, 16, &device);
        group.bench_function(format!("vae_decode_{name}"), |b| b.iter(|| vae.decode(latents.clone()).into_data()));

        let classifier = ClassifierConfig::new().init(&device).valid();
        group.bench_function(format!("classifier_{name}"), |b| {
            b.iter(|| classifier.probabilities(images.clone()).into_data())
        });
    }
    group.finish();
}

criterion_group!(benches, training_steps, inference);
criterion_main!(benches);
