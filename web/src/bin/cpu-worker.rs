//! Entry point of the CPU compute worker: the models on burn-flex, without the WebGPU code.

fn main() {
    console_error_panic_hook::set_once();
    web::worker::serve();
}
