//! Models, data and file formats shared by the native trainer and the browser app.
//!
//! Every model here is plain Burn code without a backend type parameter: the backend is the
//! [`burn::tensor::Device`] the caller passes, so the same code trains natively on burn-flex or
//! wgpu and runs in the browser on WebGPU or burn-flex.

pub mod autoencoder;
pub mod cgan;
pub mod channels_last;
pub mod classifier;
pub mod dcgan;
pub mod fold;
pub mod grid;
pub mod latent;
pub mod manifest;
pub mod mnist;
pub mod preprocess;
pub mod quantize;
pub mod vae;
pub mod weights;

/// Side length of an MNIST image, in pixels.
pub const IMAGE_SIDE: usize = 28;

/// Number of pixels in one MNIST image.
pub const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;

/// Number of digit classes.
pub const NUM_CLASSES: usize = 10;
