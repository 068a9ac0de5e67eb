//! The engines of the page: one per weights file, all on one backend, loaded on first use and
//! shared by every part of the page.
//!
//! Without a backend in the URL or the menu, the page starts on the CPU, whose worker build is
//! small, and after its first result loads the WebGPU build in the background when the browser
//! offers a WebGPU adapter. Once a model passes its warm-up there, later work runs on WebGPU.

use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;

use futures::FutureExt;
use futures::future::{LocalBoxFuture, Shared};
use leptos::prelude::*;

use shared::manifest::Manifest;

use crate::engine::{Backend, WeightsFile};
use crate::fetch::fetch_bytes;
use crate::pool::{Pool, RemoteEngine};

/// Path of the weights manifest, relative to the page.
const MANIFEST_PATH: &str = "weights/manifest.json";

/// The manifest fetch, shared by every part of the page that needs the manifest while it runs.
type ManifestFetch = Shared<LocalBoxFuture<'static, Result<Rc<Manifest>, String>>>;

/// The start of a backend's workers, shared by every part of the page that needs them while it
/// runs.
type PoolStart = Shared<LocalBoxFuture<'static, Result<Rc<Pool>, String>>>;

/// A backend the visitor picked in the menu. `serial` counts the picks, so each part can tell a
/// pick it has not handled yet from one it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendSwitch {
    /// Number of picks so far, from 1.
    pub serial: u32,
    /// The picked backend.
    pub backend: Backend,
}

impl BackendSwitch {
    /// Returns the backend of the latest pick in `switch` when `handled` has not seen it yet,
    /// and records it in `handled`. Reading `switch` subscribes the calling effect to it.
    pub fn take_new(switch: ReadSignal<Option<BackendSwitch>>, handled: StoredValue<u32>) -> Option<Backend> {
        let choice = switch.get()?;
        if choice.serial == handled.get_value() {
            return None;
        }
        handled.set_value(choice.serial);
        Some(choice.backend)
    }
}

/// The loaded engines and weights, the backend in use and the fallback notice. All fields are
/// `Copy` handles, so the registry moves freely into closures and tasks.
#[derive(Clone, Copy)]
pub struct Engines {
    /// The backend of the loaded engines, `None` before the first one loads.
    pub backend: ReadSignal<Option<Backend>>,
    set_backend: WriteSignal<Option<Backend>>,
    /// The reason the page runs on another backend than requested, or empty.
    pub notice: ReadSignal<String>,
    set_notice: WriteSignal<String>,
    /// The backend the visitor picked (`?backend=` or the menu), used while no engine is loaded.
    preferred: StoredValue<Option<Backend>>,
    loaded: StoredValue<Vec<Rc<RemoteEngine>>, LocalStorage>,
    pools: StoredValue<HashMap<Backend, PoolStart>, LocalStorage>,
    /// Whether the background move to WebGPU has started.
    upgrade_started: StoredValue<bool>,
    /// Cancels the download of the background move to WebGPU while it runs.
    upgrade_abort: StoredValue<Option<web_sys::AbortController>, LocalStorage>,
    weights: StoredValue<HashMap<WeightsFile, Rc<Vec<u8>>>, LocalStorage>,
    manifest: StoredValue<Option<ManifestFetch>, LocalStorage>,
}

impl Engines {
    /// Creates an empty registry. `preferred` is the backend from the URL, if any.
    pub fn new(preferred: Option<Backend>) -> Self {
        let (backend, set_backend) = signal(None);
        let (notice, set_notice) = signal(String::new());
        Self {
            backend,
            set_backend,
            notice,
            set_notice,
            preferred: StoredValue::new(preferred),
            loaded: StoredValue::new_local(Vec::new()),
            pools: StoredValue::new_local(HashMap::new()),
            upgrade_started: StoredValue::new(false),
            upgrade_abort: StoredValue::new_local(None),
            weights: StoredValue::new_local(HashMap::new()),
            manifest: StoredValue::new_local(None),
        }
    }

    /// Records the visitor's choice of backend and clears the notice. The next
    /// [`Engines::ensure`] with `Some(choice)` loads engines on it. Choosing the CPU cancels the
    /// download of a background move to WebGPU.
    pub fn choose(self, choice: Backend) {
        self.preferred.set_value(Some(choice));
        self.set_notice.set(String::new());
        if choice == Backend::Cpu
            && let Some(controller) = self.upgrade_abort.try_update_value(Option::take).flatten()
        {
            controller.abort();
        }
    }

    /// Returns the engine of `file` on `requested` (the current backend when `None`), loading it
    /// when needed. A new backend drops the engines of the old one. When WebGPU is requested,
    /// the CPU is the fallback; without any backend chosen, the page starts on the CPU.
    /// `progress` receives a description of each slow step.
    pub async fn ensure(
        self,
        file: WeightsFile,
        requested: Option<Backend>,
        progress: impl Fn(String),
    ) -> Result<Rc<RemoteEngine>, String> {
        self.loaded.update_value(|engines| engines.retain(|engine| engine.is_alive()));
        let engines = self.loaded.get_value();
        let current = engines.first().map(|engine| engine.backend);
        let target = requested.or(current).or_else(|| self.preferred.get_value());
        if let Some(engine) = engines.iter().find(|e| Some(e.backend) == target && e.file == file) {
            return Ok(engine.clone());
        }

        let weights = self.fetch_weights(file, &progress).await?;
        let candidates: &[Backend] = match target {
            Some(Backend::WebGpu) => &[Backend::WebGpu, Backend::Cpu],
            _ => &[Backend::Cpu],
        };
        let mut failures = Vec::new();
        for &candidate in candidates {
            match self.load(file, &weights, candidate, None, &progress).await {
                Ok(engine) => {
                    if !failures.is_empty() {
                        self.set_notice.set(format!(
                            "{}. Running on the CPU instead; pick WebGPU in the menu to try again.",
                            failures.join("; ")
                        ));
                    }
                    self.adopt(engine.clone());
                    return Ok(engine);
                }
                Err(reason) => failures.push(format!("{} is unavailable: {reason}", candidate.label())),
            }
        }
        Err(failures.join("; "))
    }

    /// Loads the model of `file` from `weights` on `backend`, starting the backend's workers
    /// when needed. Aborting `abort` cancels the download of a worker build that this call
    /// starts.
    async fn load(
        self,
        file: WeightsFile,
        weights: &[u8],
        backend: Backend,
        abort: Option<web_sys::AbortSignal>,
        progress: &impl Fn(String),
    ) -> Result<Rc<RemoteEngine>, String> {
        let pool = self.pool(backend, abort, progress).await?;
        progress(format!("Loading {} on {}…", file.path(), backend.label()));
        RemoteEngine::load(pool, file, weights).await
    }

    /// Makes `engine` one of the page's engines and its backend the current one, dropping the
    /// engines of any other backend and the older engine of its file.
    fn adopt(self, engine: Rc<RemoteEngine>) {
        self.loaded.update_value(|engines| {
            engines.retain(|e| e.backend == engine.backend && e.file != engine.file);
            engines.push(engine.clone());
        });
        self.set_backend.set(Some(engine.backend));
    }

    /// Returns the workers of `backend`, starting them on first use. Callers that arrive while
    /// they start await the same start; a failed or stopped pool starts anew on the next call.
    /// Aborting `abort` cancels the download of a start that this call begins.
    async fn pool(
        self,
        backend: Backend,
        abort: Option<web_sys::AbortSignal>,
        progress: &impl Fn(String),
    ) -> Result<Rc<Pool>, String> {
        let existing = self.pools.with_value(|pools| pools.get(&backend).cloned());
        // A start still running is joined; a failed start or a pool with a stopped worker is not.
        let usable = |start: &PoolStart| match start.peek() {
            None => true,
            Some(Ok(pool)) => pool.is_alive(),
            Some(Err(_)) => false,
        };
        let start = match existing.filter(usable) {
            Some(start) => start,
            None => {
                progress(format!("Downloading and starting the {} workers…", backend.label()));
                let start = Pool::start(backend, abort).boxed_local().shared();
                self.pools.update_value(|pools| {
                    pools.insert(backend, start.clone());
                });
                start
            }
        };

        let result = start.await;
        if result.is_err() {
            self.pools.update_value(|pools| {
                pools.remove(&backend);
            });
        }
        result
    }

    /// After the first result on the CPU, when the visitor chose no backend: moves the page to
    /// WebGPU in the background if the browser offers an adapter and the model of `file` passes
    /// its warm-up there. Runs once per page.
    fn upgrade_in_background(self, file: WeightsFile) {
        if self.upgrade_started.get_value() || self.preferred.get_value().is_some() {
            return;
        }
        self.upgrade_started.set_value(true);
        let controller = web_sys::AbortController::new().ok();
        let abort = controller.as_ref().map(web_sys::AbortController::signal);
        self.upgrade_abort.set_value(controller);

        leptos::task::spawn_local(async move {
            let loaded = match self.fetch_weights(file, &|_| {}).await {
                Ok(weights) => self.load(file, &weights, Backend::WebGpu, abort, &|_| {}).await,
                Err(reason) => Err(reason),
            };
            self.upgrade_abort.set_value(None);
            // The visitor may have picked a backend while WebGPU loaded. That pick wins, and the
            // cancelled download it caused is no failure to report.
            let picked = self.preferred.get_value().is_some();
            match loaded {
                Ok(engine) if !picked => self.adopt(engine),
                Err(reason) if !picked => {
                    self.set_notice.set(format!(
                        "{} is unavailable: {reason}. Running on the CPU; pick WebGPU in the menu to try again.",
                        Backend::WebGpu.label()
                    ))
                }
                _ => {}
            }
        });
    }

    /// Runs `work` on the engine of `file`. When the work fails on WebGPU, the notice reports it and
    /// the work runs again on the CPU, so a GPU that breaks after its warm-up does not leave the
    /// page without results. After the first success on the CPU, the move to WebGPU may start
    /// (see [`Engines::upgrade_in_background`]).
    pub async fn run<T, F, Fut>(
        self,
        file: WeightsFile,
        requested: Option<Backend>,
        progress: impl Fn(String),
        work: F,
    ) -> Result<T, String>
    where
        F: Fn(Rc<RemoteEngine>) -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        let engine = self.ensure(file, requested, &progress).await?;
        match work(engine.clone()).await {
            Err(error) if engine.backend == Backend::WebGpu => {
                self.set_notice.set(format!("WebGPU failed ({error}); switched to the CPU."));
                let cpu = self.ensure(file, Some(Backend::Cpu), &progress).await?;
                work(cpu).await
            }
            Ok(result) => {
                if engine.backend == Backend::Cpu {
                    self.upgrade_in_background(file);
                }
                Ok(result)
            }
            result => result,
        }
    }

    /// Returns the weights manifest, fetching and checking it on first use. Callers that arrive
    /// while the fetch runs await the same fetch, so the page downloads the manifest once.
    pub async fn manifest(self, progress: &impl Fn(String)) -> Result<Rc<Manifest>, String> {
        let fetch = match self.manifest.get_value() {
            Some(fetch) => fetch,
            None => {
                progress(format!("Downloading {MANIFEST_PATH}…"));
                let fetch = fetch_manifest().boxed_local().shared();
                self.manifest.set_value(Some(fetch.clone()));
                fetch
            }
        };

        let result = fetch.await;
        if result.is_err() {
            // Forget the failure, so that Retry fetches again.
            self.manifest.set_value(None);
        }
        result
    }

    /// Returns the weights file, fetching it under the name the manifest gives and checking its
    /// size and SHA-256 against the manifest on first use.
    async fn fetch_weights(self, file: WeightsFile, progress: &impl Fn(String)) -> Result<Rc<Vec<u8>>, String> {
        if let Some(weights) = self.weights.with_value(|cache| cache.get(&file).cloned()) {
            return Ok(weights);
        }
        let manifest = self.manifest(progress).await?;
        let entry = manifest.model(file.id()).map_err(|error| format!("{MANIFEST_PATH}: {error}"))?;
        let path = format!("weights/{}", entry.file);
        progress(format!("Downloading {path}…"));
        let bytes = fetch_bytes(&path).await?;
        entry.verify(&bytes).map_err(|error| format!("weights/{error}"))?;
        shared::weights::decode(&bytes).map_err(|error| format!("{path}: {error}"))?;
        let bytes = Rc::new(bytes);
        self.weights.update_value(|cache| {
            cache.insert(file, bytes.clone());
        });
        Ok(bytes)
    }
}

async fn fetch_manifest() -> Result<Rc<Manifest>, String> {
    let bytes = fetch_bytes(MANIFEST_PATH).await?;
    let manifest = Manifest::parse(&bytes).map_err(|error| format!("{MANIFEST_PATH}: {error}"))?;
    Ok(Rc::new(manifest))
}
