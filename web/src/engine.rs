//! The inference engine: backend selection with a WebGPU warm-up, weights loading and batch
//! generation.

use std::cell::RefCell;
use std::rc::Rc;

use burn::tensor::{Device, Tensor, TensorData};
use shared::dcgan::{Generator, load_generator};
use shared::weights::ModelKind;

/// The compute backend a generator runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The browser's WebGPU.
    WebGpu,
    /// burn-flex on the CPU, in wasm.
    Cpu,
}

impl Backend {
    /// Identifier used in the URL, the backend menu and `data-backend`.
    pub fn id(self) -> &'static str {
        match self {
            Backend::WebGpu => "webgpu",
            Backend::Cpu => "cpu",
        }
    }

    /// Parses an identifier from [`Backend::id`].
    pub fn from_id(id: &str) -> Option<Self> {
        match id {
            "webgpu" => Some(Backend::WebGpu),
            "cpu" => Some(Backend::Cpu),
            _ => None,
        }
    }

    /// Label shown to the visitor.
    pub fn label(self) -> &'static str {
        match self {
            Backend::WebGpu => "WebGPU",
            Backend::Cpu => "CPU (burn-flex)",
        }
    }
}

thread_local! {
    /// The WebGPU device, initialized at most once per page because Burn's wgpu runtime cannot
    /// be initialized twice. `Some(Err)` records why WebGPU is unavailable.
    static WEBGPU: RefCell<Option<Result<Device, String>>> = const { RefCell::new(None) };
}

/// Returns the device of `backend`, initializing WebGPU on first use.
pub async fn device(backend: Backend) -> Result<Device, String> {
    match backend {
        Backend::Cpu => Ok(Device::flex()),
        Backend::WebGpu => {
            if let Some(known) = WEBGPU.with(|cell| cell.borrow().clone()) {
                return known;
            }
            let result = init_webgpu().await;
            WEBGPU.with(|cell| *cell.borrow_mut() = Some(result.clone()));
            result
        }
    }
}

async fn init_webgpu() -> Result<Device, String> {
    let navigator = web_sys::window().ok_or("no window object")?.navigator();
    let has_gpu = js_sys::Reflect::has(&navigator, &"gpu".into()).unwrap_or(false);
    if !has_gpu {
        return Err("this browser has no WebGPU (navigator.gpu is missing)".to_string());
    }
    Device::wgpu_options()
        .init_async()
        .await
        .map_err(|error| format!("no WebGPU adapter or device: {error}"))
}

/// A generator loaded on one backend.
pub struct Engine {
    /// The backend it runs on.
    pub backend: Backend,
    /// The model it runs.
    pub kind: ModelKind,
    device: Device,
    generator: Generator,
    /// Size of the latent part of an input row.
    pub latent_dim: usize,
    /// Size of an input row: the latent and, for the conditional GAN, the one-hot label.
    pub input_dim: usize,
}

/// Result of one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// `[count, 1, 28, 28]` pixel values in `[-1, 1]`, image after image.
    pub pixels: Vec<f32>,
    /// Milliseconds from the start of the forward pass to the data being back on the CPU.
    pub millis: f64,
}

impl Engine {
    /// Loads the generator of `kind` from `weights` on `backend` and runs a one-digit warm-up, so
    /// a backend that fails on its first real work (a shader or read error) fails here instead.
    pub async fn load(backend: Backend, kind: ModelKind, weights: &[u8], file: &str) -> Result<Rc<Self>, String> {
        let device = device(backend).await?;
        let (config, generator) = load_generator(weights, kind, &device).map_err(|error| format!("{file}: {error}"))?;
        let engine = Self {
            backend,
            kind,
            device,
            generator,
            latent_dim: config.latent_dim,
            input_dim: config.latent_dim + config.condition_dim,
        };

        let warm_up = engine.generate(vec![0.0; engine.input_dim], 1).await?;
        if warm_up.pixels.iter().any(|v| !v.is_finite()) {
            return Err(format!("{} produced invalid values in the warm-up", backend.label()));
        }
        Ok(Rc::new(engine))
    }

    /// Generates one image per input row. `rows` contains `count` rows of `input_dim` values.
    pub async fn generate(&self, rows: Vec<f32>, count: usize) -> Result<Batch, String> {
        let started = now();

        let input = Tensor::<2>::from_data(TensorData::new(rows, [count, self.input_dim]), &self.device);
        let data = self
            .generator
            .forward(input)
            .into_data_async()
            .await
            .map_err(|error| format!("reading the generated digits from {} failed: {error:?}", self.backend.label()))?;
        let pixels = data
            .try_to_vec::<f32>()
            .map_err(|error| format!("unexpected output type: {error:?}"))?;

        Ok(Batch {
            pixels,
            millis: now() - started,
        })
    }
}

/// Milliseconds since page load, from `performance.now()`.
pub fn now() -> f64 {
    web_sys::window()
        .and_then(|window| window.performance())
        .map_or(0.0, |performance| performance.now())
}
