//! The inference engine that runs inside a compute worker (see [`crate::worker`]): backend
//! initialization with a WebGPU warm-up, weights loading and the batch work of each model
//! (generating, reconstructing, encoding and decoding).

use std::cell::RefCell;
use std::rc::Rc;

use burn::tensor::{Device, Tensor, TensorData};
use futures::future::{FutureExt, LocalBoxFuture, Shared};
use shared::IMAGE_SIDE;
use shared::autoencoder::{Autoencoder, load_autoencoder};
use shared::dcgan::{Generator, load_generator};
use shared::vae::{Vae, load_vae};
use shared::weights::ModelKind;
use wasm_bindgen::{JsCast, JsValue};

/// The compute backend a model runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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

/// A weights file the page serves from `weights/`. Two files may contain the same kind of model
/// (the two VAEs), so engines are keyed by file, not by [`ModelKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum WeightsFile {
    /// The DCGAN generator.
    Dcgan,
    /// The conditional GAN generator.
    Cgan,
    /// The autoencoder of the Draw part.
    Autoencoder,
    /// The VAE with a 16-dimensional latent space, for samples and interpolations.
    Vae,
    /// The VAE with a 2-dimensional latent space, for the latent map.
    Vae2d,
}

impl WeightsFile {
    /// Id of the file's entry in the weights manifest.
    pub fn id(self) -> &'static str {
        match self {
            WeightsFile::Dcgan => "dcgan",
            WeightsFile::Cgan => "cgan",
            WeightsFile::Autoencoder => "autoencoder",
            WeightsFile::Vae => "vae",
            WeightsFile::Vae2d => "vae-2d",
        }
    }

    /// Path of the file, relative to the page, under its unpublished name.
    pub fn path(self) -> &'static str {
        match self {
            WeightsFile::Dcgan => "weights/dcgan.bin",
            WeightsFile::Cgan => "weights/cgan.bin",
            WeightsFile::Autoencoder => "weights/autoencoder.bin",
            WeightsFile::Vae => "weights/vae.bin",
            WeightsFile::Vae2d => "weights/vae-2d.bin",
        }
    }

    /// The kind of model the file must contain.
    pub fn kind(self) -> ModelKind {
        match self {
            WeightsFile::Dcgan => ModelKind::Dcgan,
            WeightsFile::Cgan => ModelKind::Cgan,
            WeightsFile::Autoencoder => ModelKind::Autoencoder,
            WeightsFile::Vae | WeightsFile::Vae2d => ModelKind::Vae,
        }
    }

    /// Latent size the page's use of the file needs, where it needs a fixed one.
    pub fn required_latent_dim(self) -> Option<usize> {
        match self {
            WeightsFile::Vae2d => Some(2),
            _ => None,
        }
    }
}

/// The WebGPU device, or the reason it is unavailable, shared by every caller. Burn's wgpu
/// runtime cannot be initialized twice, so concurrent callers await the same initialization.
type WebGpuInit = Shared<LocalBoxFuture<'static, Result<Device, String>>>;

thread_local! {
    /// Initialization of the WebGPU device, started at most once per page.
    static WEBGPU: RefCell<Option<WebGpuInit>> = const { RefCell::new(None) };
}

/// Returns the device of `backend`, initializing WebGPU on first use.
pub async fn device(backend: Backend) -> Result<Device, String> {
    match backend {
        Backend::Cpu => Ok(Device::flex()),
        Backend::WebGpu => {
            let init = WEBGPU.with(|cell| cell.borrow_mut().get_or_insert_with(|| init_webgpu().boxed_local().shared()).clone());
            init.await
        }
    }
}

#[cfg(not(feature = "webgpu"))]
async fn init_webgpu() -> Result<Device, String> {
    Err("this build of the page has no WebGPU support (built without the webgpu feature)".to_string())
}

#[cfg(feature = "webgpu")]
async fn init_webgpu() -> Result<Device, String> {
    if !has_webgpu() {
        return Err("this browser has no WebGPU (navigator.gpu is missing)".to_string());
    }
    Device::wgpu_options()
        .init_async()
        .await
        .map_err(|error| format!("no WebGPU adapter or device: {error}"))
}

/// A loaded model.
// Each engine keeps one model for the page's lifetime, so the size of the largest variant costs
// nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub enum Model {
    /// A GAN generator (DCGAN or conditional GAN).
    Generator {
        /// The network.
        generator: Generator,
        /// Size of an input row: the latent and, for the conditional GAN, the one-hot label.
        input_dim: usize,
    },
    /// An autoencoder.
    Autoencoder(Autoencoder),
    /// A variational autoencoder.
    Vae(Vae),
}

/// A model loaded on one backend.
pub struct Engine {
    /// The backend it runs on.
    pub backend: Backend,
    /// The weights file it was loaded from.
    pub file: WeightsFile,
    /// Size of the latent (GANs, VAEs) or code (autoencoder).
    pub latent_dim: usize,
    device: Device,
    model: Model,
}

/// Result of one batch of images.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// `[count, 1, 28, 28]` pixel values, image after image: in `[-1, 1]` from a generator, in
    /// `[0, 1]` from the autoencoders.
    pub pixels: Vec<f32>,
    /// Milliseconds from the start of the forward pass to the data being back on the CPU.
    pub millis: f64,
}

impl Engine {
    /// Loads the model in `file` from `weights` on `backend` and runs a one-image warm-up of
    /// every pass the page uses, so a backend that fails on its first real work (a shader or read
    /// error) fails here instead.
    pub async fn load(backend: Backend, file: WeightsFile, weights: &[u8]) -> Result<Rc<Self>, String> {
        let device = device(backend).await?;
        let invalid = |error: shared::weights::WeightsError| format!("{}: {error}", file.path());

        let (model, latent_dim) = match file.kind() {
            ModelKind::Autoencoder => {
                let (config, model) = load_autoencoder(weights, &device).map_err(invalid)?;
                (Model::Autoencoder(model), config.code_dim)
            }
            ModelKind::Vae => {
                let (config, model) = load_vae(weights, &device).map_err(invalid)?;
                (Model::Vae(model), config.latent_dim)
            }
            kind => {
                let (config, generator) = load_generator(weights, kind, &device).map_err(invalid)?;
                let input_dim = config.latent_dim + config.condition_dim;
                (Model::Generator { generator, input_dim }, config.latent_dim)
            }
        };
        if let Some(required) = file.required_latent_dim()
            && latent_dim != required
        {
            return Err(format!(
                "{}: the model has {latent_dim} latent dimensions, the page needs {required}; publish a VAE trained with --latent-dim {required}",
                file.path()
            ));
        }

        let engine = Self {
            backend,
            file,
            latent_dim,
            device,
            model,
        };
        engine.warm_up().await?;
        Ok(Rc::new(engine))
    }

    async fn warm_up(&self) -> Result<(), String> {
        let image = vec![0.0; IMAGE_SIDE * IMAGE_SIDE];
        let outputs = match &self.model {
            Model::Generator { input_dim, .. } => vec![self.generate(vec![0.0; *input_dim], 1).await?.pixels],
            Model::Autoencoder(_) => vec![self.reconstruct(image, 1).await?.pixels],
            Model::Vae(_) => vec![
                self.decode(vec![0.0; self.latent_dim], 1).await?.pixels,
                self.encode_means(image, 1).await?,
            ],
        };
        if outputs.iter().flatten().any(|v| !v.is_finite()) {
            return Err(format!("{} produced invalid values in the warm-up", self.backend.label()));
        }
        Ok(())
    }

    /// Size of a generator input row; 0 for other models.
    pub fn input_dim(&self) -> usize {
        match &self.model {
            Model::Generator { input_dim, .. } => *input_dim,
            _ => 0,
        }
    }

    /// Generates one image per input row with a generator. `rows` contains `count` rows of
    /// [`Engine::input_dim`] values.
    pub async fn generate(&self, rows: Vec<f32>, count: usize) -> Result<Batch, String> {
        let Model::Generator { generator, input_dim } = &self.model else {
            return Err(self.wrong_model("generating digits"));
        };
        let started = now();
        let input = Tensor::<2>::from_data(TensorData::new(rows, [count, *input_dim]), &self.device);
        let pixels = self.read(generator.forward(input), "the generated digits").await?;
        Ok(Batch {
            pixels,
            millis: now() - started,
        })
    }

    /// Encodes and decodes `count` 28×28 images with values in `[0, 1]` with the autoencoder.
    pub async fn reconstruct(&self, images: Vec<f32>, count: usize) -> Result<Batch, String> {
        let Model::Autoencoder(model) = &self.model else {
            return Err(self.wrong_model("reconstructing digits"));
        };
        let started = now();
        let pixels = self.read(model.forward(self.images(images, count)), "the reconstruction").await?;
        Ok(Batch {
            pixels,
            millis: now() - started,
        })
    }

    /// Decodes `count` rows of [`Engine::latent_dim`] latents to images with a VAE.
    pub async fn decode(&self, latents: Vec<f32>, count: usize) -> Result<Batch, String> {
        let Model::Vae(model) = &self.model else {
            return Err(self.wrong_model("decoding latents"));
        };
        let started = now();
        let input = Tensor::<2>::from_data(TensorData::new(latents, [count, self.latent_dim]), &self.device);
        let pixels = self.read(model.decode(input), "the decoded digits").await?;
        Ok(Batch {
            pixels,
            millis: now() - started,
        })
    }

    /// Encodes `count` 28×28 images with values in `[0, 1]` with a VAE and returns the posterior
    /// means, [`Engine::latent_dim`] values per image.
    pub async fn encode_means(&self, images: Vec<f32>, count: usize) -> Result<Vec<f32>, String> {
        let Model::Vae(model) = &self.model else {
            return Err(self.wrong_model("encoding digits"));
        };
        let posterior = model.encode(self.images(images, count));
        self.read(posterior.mean, "the latent means").await
    }

    fn images(&self, images: Vec<f32>, count: usize) -> Tensor<4> {
        Tensor::<4>::from_data(TensorData::new(images, [count, 1, IMAGE_SIDE, IMAGE_SIDE]), &self.device)
    }

    async fn read<const D: usize>(&self, tensor: Tensor<D>, what: &str) -> Result<Vec<f32>, String> {
        let data = tensor
            .into_data_async()
            .await
            .map_err(|error| format!("reading {what} from {} failed: {error:?}", self.backend.label()))?;
        data.try_to_vec::<f32>()
            .map_err(|error| format!("{what} have an unexpected element type: {error:?}"))
    }

    fn wrong_model(&self, work: &str) -> String {
        format!("{} contains a model of kind {}, which cannot do {work}", self.file.path(), self.file.kind())
    }
}

/// Returns whether the global object, a window or a worker, offers `navigator.gpu`.
pub fn has_webgpu() -> bool {
    js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("navigator"))
        .ok()
        .filter(|navigator| navigator.is_object())
        .is_some_and(|navigator| js_sys::Reflect::has(&navigator, &JsValue::from_str("gpu")).unwrap_or(false))
}

/// Milliseconds since the page or worker started, from `performance.now()`.
pub fn now() -> f64 {
    js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("performance"))
        .ok()
        .and_then(|performance| performance.dyn_into::<web_sys::Performance>().ok())
        .map_or(0.0, |performance| performance.now())
}
