//! Payloads behind a valid header and checksum, as a crafted file would carry them: the burnpack
//! container, 8-bit tensors and their scales, and loading into the model.
//!
//! The first input byte picks the model and the storage type; the rest is the payload. The
//! header's config is each model's default, so payloads taken from files exported with default
//! configs are meaningful seeds.

#![no_main]

use burn::tensor::Device;
use libfuzzer_sys::fuzz_target;
use shared::autoencoder::{AutoencoderConfig, load_autoencoder};
use shared::classifier::{ClassifierConfig, load_classifier};
use shared::dcgan::{GeneratorConfig, load_generator};
use shared::vae::{VaeConfig, load_vae};
use shared::weights::{ModelKind, StorageType, assemble};

fuzz_target!(|input: &[u8]| {
    let Some((&selector, payload)) = input.split_first() else {
        return;
    };
    let kind = [ModelKind::Dcgan, ModelKind::Autoencoder, ModelKind::Vae, ModelKind::Classifier][usize::from(selector % 4)];
    let storage = [StorageType::Int8, StorageType::F16, StorageType::F32][usize::from(selector / 4 % 3)];
    let config = match kind {
        ModelKind::Dcgan | ModelKind::Cgan => serde_json::to_value(GeneratorConfig::new().with_batch_norm(false)),
        ModelKind::Autoencoder => serde_json::to_value(AutoencoderConfig::new()),
        ModelKind::Vae => serde_json::to_value(VaeConfig::new()),
        ModelKind::Classifier => serde_json::to_value(ClassifierConfig::new()),
    }
    .expect("default configs serialize");
    let file = assemble(kind, config, storage, payload).expect("default headers fit the header limit");

    let device = Device::flex();
    let _ = match kind {
        ModelKind::Dcgan | ModelKind::Cgan => load_generator(&file, kind, &device).map(|_| ()),
        ModelKind::Autoencoder => load_autoencoder(&file, &device).map(|_| ()),
        ModelKind::Vae => load_vae(&file, &device).map(|_| ()),
        ModelKind::Classifier => load_classifier(&file, &device).map(|_| ()),
    };
});
