//! Helpers shared by the cross-crate tests in `tests/tests/`.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use shared::dcgan::Generator;
use shared::latent::normal_latents;

/// Returns the repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Reads a file of the weights bundled with the page.
pub fn bundled(name: &str) -> Vec<u8> {
    let path = root().join("web/weights").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("failed to read {}: {e}", path.display()))
}

/// Generates `count` digits from the latents of `seed` and returns their pixels.
pub fn generate(generator: &Generator, seed: u64, count: usize, device: &Device) -> Vec<f32> {
    let dim = generator.latent_dim() + generator.condition_dim();
    let latents = normal_latents(seed, count, dim);
    let input = Tensor::<2>::from_data(TensorData::new(latents, [count, dim]), device);
    generator.forward(input).into_data().try_to_vec::<f32>().unwrap()
}

/// Returns the wgpu device, or `None` with a message when no adapter exists outside CI. In CI
/// (`CI` set) a missing adapter fails the test, since CI installs Mesa's lavapipe.
pub fn wgpu_device() -> Option<Device> {
    match trainer::device::device(trainer::cli::BackendArg::Wgpu) {
        Ok(device) => Some(device),
        Err(error) if std::env::var_os("CI").is_none() => {
            eprintln!("skipping the wgpu comparison: {error:#}");
            None
        }
        Err(error) => panic!("CI needs a wgpu adapter (Mesa lavapipe): {error:#}"),
    }
}
