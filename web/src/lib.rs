//! A Leptos page that generates MNIST digits in the visitor's browser with Burn, on WebGPU when
//! the browser offers it and on the CPU (burn-flex) otherwise.

pub mod app;
pub mod engine;
pub mod fetch;
pub mod page;
pub mod view;
