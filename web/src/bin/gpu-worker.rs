//! Entry point of the WebGPU compute worker: the models on burn-wgpu. Built with the `webgpu`
//! feature, it is most of the page's download, so the page fetches it only to use WebGPU.

fn main() {
    console_error_panic_hook::set_once();
    web::worker::serve();
}
