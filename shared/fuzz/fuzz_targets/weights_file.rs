//! Whole weights files: prefix, header and checksum, then every model loader.

#![no_main]

use burn::tensor::Device;
use libfuzzer_sys::fuzz_target;
use shared::autoencoder::load_autoencoder;
use shared::classifier::load_classifier;
use shared::dcgan::load_generator;
use shared::vae::load_vae;
use shared::weights::{ModelKind, decode};

fuzz_target!(|file: &[u8]| {
    let device = Device::flex();
    let _ = decode(file);
    let _ = load_generator(file, ModelKind::Dcgan, &device);
    let _ = load_generator(file, ModelKind::Cgan, &device);
    let _ = load_autoencoder(file, &device);
    let _ = load_vae(file, &device);
    let _ = load_classifier(file, &device);
});
