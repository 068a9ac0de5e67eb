//! Speed of one DCGAN training step at batch 128 and of generating 64 digits, on burn-flex and
//! on wgpu (skipped with a message when no wgpu adapter is available).
//!
//! Run with `cargo bench -p trainer --bench gan`; set `XDG_RUNTIME_DIR` for Mesa's lavapipe.

use std::time::Duration;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shared::dcgan::{DiscriminatorConfig, GeneratorConfig};
use shared::latent::normal_latents;
use trainer::cli::BackendArg;
use trainer::data::matrix;
use trainer::gan::{CriticConfig, Gan, GanTrainingConfig};

fn backends() -> Vec<(&'static str, Device)> {
    let mut list = vec![("cpu", Device::flex())];
    match trainer::device::device(BackendArg::Wgpu) {
        Ok(device) => list.push(("wgpu", device)),
        Err(error) => eprintln!("skipping wgpu: {error:#}"),
    }
    list
}

fn training_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("dcgan_train_step");
    group.throughput(Throughput::Elements(128));
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    for (name, device) in backends() {
        let device = device.autodiff();
        device.seed(0);
        let config = GanTrainingConfig::new(GeneratorConfig::new(), CriticConfig::Plain(DiscriminatorConfig::new()));
        let mut gan = Some(Gan::new(&config, &device));
        let real = Tensor::<4>::random([128, 1, 28, 28], Distribution::Uniform(-1.0, 1.0), &device);
        let latent = matrix(normal_latents(1, 128, 64), 128, 64, &device);
        group.bench_function(format!("batch_128_{name}"), |b| {
            b.iter(|| {
                let (next, losses) = gan.take().unwrap().step(&config, real.clone(), None, [latent.clone(), latent.clone()]);
                gan = Some(next);
                losses
            })
        });
    }
    group.finish();
}

fn generation(c: &mut Criterion) {
    let mut group = c.benchmark_group("dcgan_generate");
    group.throughput(Throughput::Elements(64));
    for (name, device) in backends() {
        let generator = GeneratorConfig::new().init(&device).valid().fold_batch_norm();
        let latent = matrix(normal_latents(2, 64, 64), 64, 64, &device);
        group.bench_function(format!("64_digits_{name}"), |b| {
            b.iter(|| generator.forward(latent.clone()).into_data())
        });
    }
    group.finish();
}

criterion_group!(benches, training_step, generation);
criterion_main!(benches);
