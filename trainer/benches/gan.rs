//! Speed of one DCGAN training step at batch 128 and of generating 64 and 32 digits (the share
//! of one of two browser workers), on burn-flex and on wgpu (skipped with a message when no wgpu
//! adapter is available). Generation uses the generator with BatchNorm folded, as exported.
//!
//! Run with `cargo bench --bench gan`; set `XDG_RUNTIME_DIR` for Mesa's lavapipe.
//! Filter with a name, as in `cargo bench --bench gan -- generate`.

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
    for (name, device) in backends() {
        let generator = GeneratorConfig::new().init(&device).valid().fold_batch_norm();
        for count in [64, 32] {
            group.throughput(Throughput::Elements(count as u64));
            let latent = matrix(normal_latents(2, count, 64), count, 64, &device);
            group.bench_function(format!("{count}_digits_{name}"), |b| {
                b.iter(|| generator.forward(latent.clone()).into_data())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, training_step, generation);
criterion_main!(benches);
