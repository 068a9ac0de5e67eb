//! The engines of the page: one per weights file, all on one backend, loaded on first use and
//! shared by every part of the page.

use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;

use futures::FutureExt;
use futures::future::{LocalBoxFuture, Shared};
use leptos::prelude::*;

use shared::manifest::Manifest;

use crate::engine::{Backend, Engine, WeightsFile};
use crate::fetch::fetch_bytes;

/// Path of the weights manifest, relative to the page.
const MANIFEST_PATH: &str = "weights/manifest.json";

/// The manifest fetch, shared by every part of the page that needs the manifest while it runs.
type ManifestFetch = Shared<LocalBoxFuture<'static, Result<Rc<Manifest>, String>>>;

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
    loaded: StoredValue<Vec<Rc<Engine>>, LocalStorage>,
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
            weights: StoredValue::new_local(HashMap::new()),
            manifest: StoredValue::new_local(None),
        }
    }

    /// Records the visitor's choice of backend and clears the notice. The next
    /// [`Engines::ensure`] with `Some(choice)` loads engines on it.
    pub fn choose(self, choice: Backend) {
        self.preferred.set_value(Some(choice));
        self.set_notice.set(String::new());
    }

    /// Returns the engine of `file` on `requested` (the current backend when `None`), loading it
    /// when needed. A new backend drops the engines of the old one. Without a current backend,
    /// or when WebGPU is requested, WebGPU is tried first and the CPU is the fallback.
    /// `progress` receives a description of each slow step.
    pub async fn ensure(
        self,
        file: WeightsFile,
        requested: Option<Backend>,
        progress: impl Fn(String),
    ) -> Result<Rc<Engine>, String> {
        let engines = self.loaded.get_value();
        let current = engines.first().map(|engine| engine.backend);
        let target = requested.or(current).or_else(|| self.preferred.get_value());
        if let Some(engine) = engines.iter().find(|e| Some(e.backend) == target && e.file == file) {
            return Ok(engine.clone());
        }

        let weights = self.fetch_weights(file, &progress).await?;
        let candidates: &[Backend] = match target {
            Some(Backend::Cpu) => &[Backend::Cpu],
            _ => &[Backend::WebGpu, Backend::Cpu],
        };
        let mut failures = Vec::new();
        for &candidate in candidates {
            progress(format!("Starting {}…", candidate.label()));
            match Engine::load(candidate, file, &weights).await {
                Ok(engine) => {
                    if !failures.is_empty() {
                        self.set_notice.set(format!("{}. Running on the CPU instead.", failures.join("; ")));
                    }
                    self.loaded.update_value(|engines| {
                        engines.retain(|e| e.backend == candidate && e.file != file);
                        engines.push(engine.clone());
                    });
                    self.set_backend.set(Some(candidate));
                    return Ok(engine);
                }
                Err(reason) => failures.push(format!("{} is unavailable: {reason}", candidate.label())),
            }
        }
        Err(failures.join("; "))
    }

    /// Runs `work` on the engine of `file`. When the work fails on WebGPU, the notice reports it and
    /// the work runs again on the CPU, so a GPU that breaks after its warm-up does not leave the
    /// page without results.
    pub async fn run<T, F, Fut>(
        self,
        file: WeightsFile,
        requested: Option<Backend>,
        progress: impl Fn(String),
        work: F,
    ) -> Result<T, String>
    where
        F: Fn(Rc<Engine>) -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        let engine = self.ensure(file, requested, &progress).await?;
        match work(engine.clone()).await {
            Err(error) if engine.backend == Backend::WebGpu => {
                self.set_notice.set(format!("WebGPU failed ({error}); switched to the CPU."));
                let cpu = self.ensure(file, Some(Backend::Cpu), &progress).await?;
                work(cpu).await
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
