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
                log_default_adapter();
                info!(?device, "wgpu device initialized");
                Ok(device)
            });
            device.clone().map_err(|error| {
                anyhow!("no usable wgpu adapter: {error}; install a Vulkan driver (Mesa's lavapipe runs on the CPU) or use --backend cpu")
            })
        }
    }
}

/// Logs the adapter that wgpu picks for a default high-performance request, the request Burn
/// makes for its default wgpu device.
fn log_default_adapter() {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let request = wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        ..wgpu::RequestAdapterOptions::default()
    };
    match pollster::block_on(instance.request_adapter(&request)) {
        Ok(adapter) => {
            let adapter = adapter.get_info();
            info!(
                name = %adapter.name,
                backend = ?adapter.backend,
                device_type = ?adapter.device_type,
                driver = %adapter.driver,
                driver_info = %adapter.driver_info,
                "wgpu adapter"
            );
        }
        Err(error) => tracing::warn!(%error, "could not query the wgpu adapter for the log"),
    }
}
