//! The page's side of the compute workers: starting them, sending requests, and the models
//! they hold.
//!
//! Each backend has its own worker build: `cpu-worker` (burn-flex, small) and `gpu-worker`
//! (burn-wgpu, most of the download), so the page fetches the WebGPU code only when it uses
//! WebGPU. The CPU runs one worker per core, up to [`MAX_CPU_WORKERS`], and splits every batch
//! between them; WebGPU runs one worker.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use futures::channel::oneshot;
use futures::future::join_all;
use js_sys::WebAssembly;
use shared::IMAGE_SIDE;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{ErrorEvent, Event, MessageEvent};

use crate::engine::{Backend, Batch, WeightsFile, now};
use crate::fetch::{describe, fetch_buffer};
use crate::protocol::{self, READY_ID, Reply, Request, Work};

/// Most CPU workers the page starts, whatever the number of cores.
pub const MAX_CPU_WORKERS: usize = 4;

/// Milliseconds a worker may take from its creation to its ready message.
const START_TIMEOUT_MS: f64 = 30_000.0;

/// Script that starts a worker with the build the page sends it (`web/worker.js`).
const LOADER: &str = "worker.js";

/// Returns the name of the worker build that runs `backend`.
fn build_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Cpu => "cpu-worker",
        Backend::WebGpu => "gpu-worker",
    }
}

/// Returns the number of workers for `backend`: for the CPU one per core the browser reports,
/// up to [`MAX_CPU_WORKERS`], and for WebGPU one.
fn worker_count(backend: Backend) -> usize {
    match backend {
        Backend::WebGpu => 1,
        Backend::Cpu => {
            let cores = web_sys::window().map_or(1.0, |window| window.navigator().hardware_concurrency());
            (cores as usize).clamp(1, MAX_CPU_WORKERS)
        }
    }
}

type Answer = Result<(Reply, JsValue), String>;

/// Requests waiting for a reply, and why the worker stopped, once it has.
#[derive(Default)]
struct Waiting {
    replies: HashMap<u32, oneshot::Sender<Answer>>,
    stopped: Option<String>,
}

impl Waiting {
    /// Records that the worker stopped and fails every waiting request with `reason`.
    fn stop(&mut self, reason: String) {
        for (_, reply) in self.replies.drain() {
            let _ = reply.send(Err(reason.clone()));
        }
        self.stopped = Some(reason);
    }
}

/// One running worker.
struct WorkerHandle {
    worker: web_sys::Worker,
    waiting: Rc<RefCell<Waiting>>,
    next_id: Cell<u32>,
    label: String,
    // The event handlers, kept alive as long as the worker.
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(Event)>,
}

impl WorkerHandle {
    /// Starts a worker of `build` and waits until it runs `module` and takes requests.
    async fn start(build: &'static str, module: &WebAssembly::Module, label: String) -> Result<Self, String> {
        let worker = web_sys::Worker::new(&format!("{LOADER}?build={build}"))
            .map_err(|error| format!("{label}: starting {LOADER} failed ({})", describe(&error)))?;
        let waiting = Rc::new(RefCell::new(Waiting::default()));

        let on_message = {
            let waiting = waiting.clone();
            let label = label.clone();
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                let answer = protocol::parse::<Reply>(&event.data()).map_err(|error| format!("{label}: {error}"));
                let mut waiting = waiting.borrow_mut();
                match answer {
                    Ok((id, reply, data)) => {
                        if let Some(sender) = waiting.replies.remove(&id) {
                            let _ = sender.send(Ok((reply, data)));
                        }
                    }
                    Err(error) => waiting.stop(error),
                }
            })
        };
        let on_error = {
            let waiting = waiting.clone();
            let label = label.clone();
            // A script that fails to load fires a plain Event; an exception in the worker fires
            // an ErrorEvent with a message.
            Closure::<dyn FnMut(Event)>::new(move |event: Event| {
                event.prevent_default();
                let detail = event.dyn_ref::<ErrorEvent>().map(ErrorEvent::message).unwrap_or_default();
                let reason = if detail.is_empty() {
                    format!(
                        "{label} could not start: check that {LOADER}, {build}.js and {build}_bg.wasm are published next to the page, then retry"
                    )
                } else {
                    format!("{label} stopped: {detail}; retry to restart it")
                };
                waiting.borrow_mut().stop(reason);
            })
        };
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));

        let handle = Self {
            worker,
            waiting,
            next_id: Cell::new(READY_ID + 1),
            label,
            _on_message: on_message,
            _on_error: on_error,
        };
        let ready = handle.expect_reply(READY_ID);
        let start = js_sys::Object::new();
        js_sys::Reflect::set(&start, &JsValue::from_str("module"), module)
            .map_err(|_| format!("{}: building the start message failed", handle.label))?;
        handle
            .worker
            .post_message(&start)
            .map_err(|error| format!("{}: sending the program failed ({})", handle.label, describe(&error)))?;

        let timeout = async {
            crate::page::sleep(START_TIMEOUT_MS).await;
            Err::<(Reply, JsValue), String>(format!(
                "{}: the worker did not start within {} s; check that {LOADER} and {build}.js are published next to the page, then retry",
                handle.label,
                START_TIMEOUT_MS / 1000.0
            ))
        };
        let started = futures::future::select(Box::pin(ready), Box::pin(timeout)).await.factor_first().0;
        match started? {
            (Reply::Ready, _) => Ok(handle),
            (Reply::Failed { error }, _) => Err(format!("{}: {error}", handle.label)),
            (other, _) => Err(format!("{}: unexpected first message {other:?}", handle.label)),
        }
    }

    /// Registers a wait for the reply with `id`.
    fn expect_reply(&self, id: u32) -> impl Future<Output = Answer> + use<> {
        let (sender, receiver) = oneshot::channel();
        let stopped = {
            let mut waiting = self.waiting.borrow_mut();
            match &waiting.stopped {
                Some(reason) => Some(reason.clone()),
                None => {
                    waiting.replies.insert(id, sender);
                    None
                }
            }
        };
        let label = self.label.clone();
        async move {
            if let Some(reason) = stopped {
                return Err(reason);
            }
            receiver.await.unwrap_or_else(|_| Err(format!("{label} dropped a request")))
        }
    }

    /// Sends `request` with `data` and waits for the reply. A [`Reply::Failed`] becomes an error.
    async fn request(&self, request: &Request, data: &JsValue, transfer: bool) -> Result<(Reply, JsValue), String> {
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1).max(READY_ID + 1));
        let reply = self.expect_reply(id);

        let message = protocol::message(id, request, Some(data))?;
        let sent = if transfer && let Some(array) = data.dyn_ref::<js_sys::Float32Array>() {
            self.worker.post_message_with_transfer(&message, &js_sys::Array::of1(&array.buffer()))
        } else {
            self.worker.post_message(&message)
        };
        sent.map_err(|error| format!("{}: sending a request failed ({})", self.label, describe(&error)))?;

        match reply.await? {
            (Reply::Failed { error }, _) => Err(error),
            answer => Ok(answer),
        }
    }

    fn is_alive(&self) -> bool {
        self.waiting.borrow().stopped.is_none()
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.worker.terminate();
    }
}

/// The workers of one backend.
pub struct Pool {
    /// The backend the workers run.
    pub backend: Backend,
    workers: Vec<WorkerHandle>,
}

impl Pool {
    /// Downloads and compiles the worker build of `backend` once, then starts its workers.
    ///
    /// For WebGPU, it first requests an adapter from the browser, so a browser without one never
    /// downloads the WebGPU build. Each worker loads the build's JavaScript glue itself; the wasm module is fetched and
    /// compiled once here and sent to every worker. Aborting `abort` cancels the download.
    pub async fn start(backend: Backend, abort: Option<web_sys::AbortSignal>) -> Result<Rc<Self>, String> {
        if backend == Backend::WebGpu {
            probe_webgpu().await?;
        }
        let build = build_name(backend);
        let path = format!("{build}_bg.wasm");
        let buffer = fetch_buffer(&path, abort.as_ref()).await?;
        let module: WebAssembly::Module = JsFuture::from(WebAssembly::compile(&buffer))
            .await
            .map_err(|error| {
                format!("{path}: compiling failed ({}); publish the page again from one build and retry", describe(&error))
            })?
            .unchecked_into();

        let count = worker_count(backend);
        let starts = (0..count).map(|index| WorkerHandle::start(build, &module, format!("{} worker {}", backend.label(), index + 1)));
        let workers = join_all(starts).await.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok(Rc::new(Self { backend, workers }))
    }

    /// Returns whether every worker still runs.
    pub fn is_alive(&self) -> bool {
        self.workers.iter().all(WorkerHandle::is_alive)
    }
}

/// A model loaded in every worker of a pool.
pub struct RemoteEngine {
    /// The backend it runs on.
    pub backend: Backend,
    /// The weights file it was loaded from.
    pub file: WeightsFile,
    /// Size of the latent (GANs, VAEs) or code (autoencoder).
    pub latent_dim: usize,
    input_dim: usize,
    pool: Rc<Pool>,
}

impl RemoteEngine {
    /// Loads the model in `file` from `weights` in every worker of `pool`; each worker checks
    /// the file and runs a warm-up (see [`crate::engine::Engine::load`]).
    pub async fn load(pool: Rc<Pool>, file: WeightsFile, weights: &[u8]) -> Result<Rc<Self>, String> {
        let request = Request::Load {
            file,
            backend: pool.backend,
        };
        // One copy out of the wasm memory; posting it clones it for each worker.
        let data: JsValue = js_sys::Uint8Array::from(weights).into();
        let loads = pool.workers.iter().map(|worker| worker.request(&request, &data, false));
        let replies = join_all(loads).await.into_iter().collect::<Result<Vec<_>, _>>()?;

        let Some((Reply::Loaded { latent_dim, input_dim }, _)) = replies.first().cloned() else {
            return Err(format!("{}: the worker did not report the model's sizes", file.path()));
        };
        Ok(Rc::new(Self {
            backend: pool.backend,
            file,
            latent_dim,
            input_dim,
            pool,
        }))
    }

    /// Returns whether the workers that contain the model still run.
    pub fn is_alive(&self) -> bool {
        self.pool.is_alive()
    }

    /// Generates one image per input row with a generator: `rows` contains `count` rows of
    /// [`RemoteEngine::input_dim`] values.
    pub async fn generate(&self, rows: Vec<f32>, count: usize) -> Result<Batch, String> {
        self.split(Work::Generate, rows, count, self.input_dim).await
    }

    /// Encodes and decodes `count` 28×28 images with values in `[0, 1]` with the autoencoder.
    pub async fn reconstruct(&self, images: Vec<f32>, count: usize) -> Result<Batch, String> {
        self.split(Work::Reconstruct, images, count, IMAGE_SIDE * IMAGE_SIDE).await
    }

    /// Decodes `count` rows of [`RemoteEngine::latent_dim`] latents to images with a VAE.
    pub async fn decode(&self, latents: Vec<f32>, count: usize) -> Result<Batch, String> {
        self.split(Work::Decode, latents, count, self.latent_dim).await
    }

    /// Encodes `count` 28×28 images with a VAE and returns the posterior means,
    /// [`RemoteEngine::latent_dim`] values per image.
    pub async fn encode_means(&self, images: Vec<f32>, count: usize) -> Result<Vec<f32>, String> {
        Ok(self.split(Work::EncodeMeans, images, count, IMAGE_SIDE * IMAGE_SIDE).await?.pixels)
    }

    /// Runs `work` on `count` rows of `row_len` values, split into one contiguous share per
    /// worker, and joins the outputs in row order. `millis` is the time the page waited, from
    /// sending the first share to the last reply.
    async fn split(&self, work: Work, values: Vec<f32>, count: usize, row_len: usize) -> Result<Batch, String> {
        if row_len == 0 || values.len() != count * row_len {
            return Err(format!(
                "{}: {} input values are not {count} rows of {row_len}",
                self.file.path(),
                values.len()
            ));
        }
        if count == 0 {
            return Ok(Batch { pixels: Vec::new(), millis: 0.0 });
        }

        let started = now();
        let rows_per_worker = count.div_ceil(self.pool.workers.len());
        let shares = values.chunks(rows_per_worker * row_len).zip(&self.pool.workers).map(|(share, worker)| {
            let request = Request::Run {
                file: self.file,
                work,
                count: share.len() / row_len,
            };
            let data: JsValue = js_sys::Float32Array::from(share).into();
            async move { worker.request(&request, &data, true).await }
        });
        let replies = join_all(shares).await;

        let mut pixels = Vec::with_capacity(values.len() / row_len * IMAGE_SIDE * IMAGE_SIDE);
        for reply in replies {
            let (_, data) = reply?;
            protocol::append_floats(&data, &mut pixels)?;
        }
        Ok(Batch {
            pixels,
            millis: now() - started,
        })
    }
}

/// Asks the browser for a WebGPU adapter without starting the WebGPU worker, so a browser
/// without one never downloads that build. Returns why WebGPU is unusable, if it is.
pub async fn probe_webgpu() -> Result<(), String> {
    if !crate::engine::has_webgpu() {
        return Err("this browser has no WebGPU (navigator.gpu is missing)".to_string());
    }
    let gpu = js_sys::Reflect::get(&web_sys::window().ok_or("no window object")?.navigator(), &JsValue::from_str("gpu"))
        .map_err(|_| "this browser has no WebGPU (navigator.gpu is missing)")?;
    let request = js_sys::Reflect::get(&gpu, &JsValue::from_str("requestAdapter"))
        .ok()
        .and_then(|function| function.dyn_into::<js_sys::Function>().ok())
        .ok_or("navigator.gpu has no requestAdapter")?;
    let promise: js_sys::Promise = request
        .call0(&gpu)
        .map_err(|error| format!("requesting a WebGPU adapter failed ({})", describe(&error)))?
        .unchecked_into();
    let adapter = JsFuture::from(promise)
        .await
        .map_err(|error| format!("requesting a WebGPU adapter failed ({})", describe(&error)))?;
    if adapter.is_null() || adapter.is_undefined() {
        return Err("the browser offers no WebGPU adapter".to_string());
    }
    Ok(())
}
