//! A Leptos page that runs MNIST models in the visitor's browser with Burn, on WebGPU when the
//! browser offers it and on the CPU (burn-flex) otherwise: GAN digit grids, a drawing canvas
//! with an autoencoder, and a VAE's latent space.

pub mod app;
pub mod digits;
pub mod draw;
pub mod engine;
pub mod facts;
pub mod fetch;
pub mod generate;
pub mod latent;
pub mod latent_map;
pub mod page;
pub mod pool;
pub mod protocol;
pub mod registry;
pub mod status;
pub mod throttle;
pub mod view;
pub mod worker;
