//! Selection of the compute device from the `--backend` option.

use std::sync::OnceLock;

use anyhow::{Result, anyhow};
use burn::tensor::Device;
use tracing::info;

use crate::cli::BackendArg;

/// Returns the inference device of `backend`: burn-flex, or the default wgpu adapter.
///
/// The wgpu runtime is initialized once per process and reused afterwards.
pub fn device(backend: BackendArg) -> Result<Device> {
    match backend {
        BackendArg::Cpu => Ok(Device::flex()),
        BackendArg::Wgpu => {
            static WGPU: OnceLock<Result<Device, String>> = OnceLock::new();
            let device = WGPU.get_or_init(|| {
                let device = Device::wgpu_options().init().map_err(|e| e.to_string())?;
                info!(?device, "wgpu device initialized");
                Ok(device)
            });
            device.clone().map_err(|error| {
                anyhow!("no usable wgpu adapter: {error}; install a Vulkan driver (Mesa's lavapipe runs on the CPU) or use --backend cpu")
            })
        }
    }
}
