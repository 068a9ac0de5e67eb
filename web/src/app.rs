//! The page's components and the work they start.

use std::collections::HashMap;
use std::rc::Rc;

use leptos::html::Canvas;
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::grid::{GrayImage, PixelRange, tile};
use shared::weights::ModelKind;

use crate::engine::{Backend, Engine};
use crate::fetch::fetch_bytes;
use crate::page::{draw, query, set_body_state, set_query};
use crate::view::{GRID_COLUMNS, View, weights_path};

/// Screen pixels per image pixel.
const ZOOM: u32 = 3;

/// State of the page's work.
#[derive(Debug, Clone, PartialEq)]
enum Status {
    /// Work in progress, with a description.
    Loading(String),
    /// A grid is drawn.
    Ready,
    /// A failure, with a message that names it and the next step.
    Failed(String),
}

impl Status {
    fn id(&self) -> &'static str {
        match self {
            Status::Loading(_) => "loading",
            Status::Ready => "ready",
            Status::Failed(_) => "error",
        }
    }
}

/// A grid to draw: the view, its seed and, where the view uses one, its digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Request {
    view: View,
    seed: u64,
    digit: u32,
    /// Backend to switch to, or `None` to keep the current one (WebGPU first at start).
    backend: Option<Backend>,
}

/// Signals and stored values the asynchronous work writes to. All fields are `Copy` handles.
#[derive(Clone, Copy)]
struct Page {
    set_status: WriteSignal<Status>,
    set_backend: WriteSignal<Option<Backend>>,
    set_notice: WriteSignal<String>,
    set_timing: WriteSignal<Option<(usize, f64)>>,
    set_grid: WriteSignal<Option<GrayImage>>,
    /// The loaded engines, at most one per model, all on the current backend.
    engines: StoredValue<Vec<Rc<Engine>>, LocalStorage>,
    /// Weights files already fetched, by model.
    weights: StoredValue<HashMap<ModelKind, Rc<Vec<u8>>>, LocalStorage>,
}

/// The digit generator page: a grid of generated digits, the backend in use and the batch time.
#[component]
pub fn App() -> impl IntoView {
    let (status, set_status) = signal(Status::Loading("Loading weights…".to_string()));
    let (backend, set_backend) = signal(None::<Backend>);
    let (notice, set_notice) = signal(String::new());
    let (timing, set_timing) = signal(None::<(usize, f64)>);
    let initial_seed = query("seed").and_then(|s| s.parse::<u64>().ok()).unwrap_or_else(random_seed);
    let (seed, set_seed) = signal(initial_seed);
    let initial_view = query("view").and_then(|id| View::from_id(&id)).unwrap_or(View::Random);
    let (view, set_view) = signal(initial_view);
    let initial_digit = query("digit").and_then(|d| d.parse::<u32>().ok()).filter(|&d| d < 10).unwrap_or(7);
    let (digit, set_digit) = signal(initial_digit);
    let (grid, set_grid) = signal(None::<GrayImage>);
    let (download_href, set_download_href) = signal(String::new());
    let canvas = NodeRef::<Canvas>::new();
    let page = Page {
        set_status,
        set_backend,
        set_notice,
        set_timing,
        set_grid,
        engines: StoredValue::new_local(Vec::new()),
        weights: StoredValue::new_local(HashMap::new()),
    };
    let requested_backend = query("backend").and_then(|id| Backend::from_id(&id));
    set_query("seed", &initial_seed.to_string());

    Effect::new(move || {
        let status = status.get();
        if let (Some(picture), Some(canvas)) = (grid.get(), canvas.get()) {
            if let Err(error) = draw(&canvas, &picture, ZOOM) {
                set_status.set(Status::Failed(error));
                return;
            }
            set_download_href.set(canvas.to_data_url().unwrap_or_default());
        }
        set_body_state(status.id());
    });

    let current = move |backend: Option<Backend>| Request {
        view: view.get_untracked(),
        seed: seed.get_untracked(),
        digit: digit.get_untracked(),
        backend,
    };
    spawn_local(run(page, current(requested_backend)));

    let busy = move || matches!(status.get(), Status::Loading(_));
    let on_generate = move |_| {
        let next = random_seed();
        set_seed.set(next);
        set_query("seed", &next.to_string());
        spawn_local(run(page, current(None)));
    };
    let on_backend = move |event| {
        let Some(choice) = Backend::from_id(&event_target_value(&event)) else { return };
        set_notice.set(String::new());
        set_query("backend", choice.id());
        spawn_local(run(page, current(Some(choice))));
    };
    let on_view = move |event| {
        let Some(choice) = View::from_id(&event_target_value(&event)) else { return };
        set_view.set(choice);
        set_query("view", choice.id());
        spawn_local(run(page, current(None)));
    };
    let on_digit = move |event| {
        let Ok(choice) = event_target_value(&event).parse::<u32>() else { return };
        set_digit.set(choice);
        set_query("digit", &choice.to_string());
        spawn_local(run(page, current(None)));
    };
    let on_retry = move |_| spawn_local(run(page, current(requested_backend)));

    view! {
        <main>
            <h1>"Handwritten digits, generated in your browser"</h1>
            <p class="lead">
                "GANs trained on MNIST with Burn draw these digits on your own machine."
            </p>
            <div class="controls">
                <label>
                    "Show "
                    <select id="view" on:change=on_view disabled=busy prop:value=move || view.get().id()>
                        {View::ALL
                            .into_iter()
                            .map(|v| view! { <option value=v.id()>{v.label()}</option> })
                            .collect_view()}
                    </select>
                </label>
                <label class:hidden=move || !view.get().uses_digit()>
                    "Digit "
                    <select
                        id="digit"
                        on:change=on_digit
                        disabled=busy
                        prop:value=move || digit.get().to_string()
                    >
                        {(0..10u32)
                            .map(|d| view! { <option value=d.to_string()>{d.to_string()}</option> })
                            .collect_view()}
                    </select>
                </label>
                <button id="generate" on:click=on_generate disabled=busy>"Generate"</button>
                <label>
                    "Backend "
                    <select
                        id="backend-select"
                        on:change=on_backend
                        disabled=busy
                        prop:value=move || backend.get().map_or("", Backend::id)
                    >
                        <option value="webgpu">"WebGPU"</option>
                        <option value="cpu">"CPU (burn-flex)"</option>
                    </select>
                </label>
                <a
                    id="download"
                    href=move || download_href.get()
                    download=move || format!("digits-{}-seed-{}.png", view.get().id(), seed.get())
                >
                    "Download PNG"
                </a>
            </div>
            <p class="status">
                <span id="backend" data-backend=move || backend.get().map_or("", Backend::id)>
                    {move || backend.get().map_or("starting…", Backend::label)}
                </span>
                " · "
                <span id="timing">
                    {move || {
                        timing
                            .get()
                            .map(|(count, ms)| format!("{count} digits in {ms:.1} ms"))
                            .unwrap_or_default()
                    }}
                </span>
                " · "
                <span id="seed">{move || format!("seed {}", seed.get())}</span>
                <span id="progress">
                    {move || match status.get() {
                        Status::Loading(what) => format!(" · {what}"),
                        _ => String::new(),
                    }}
                </span>
            </p>
            <p id="notice" class="notice">{move || notice.get()}</p>
            <Show when=move || matches!(status.get(), Status::Failed(_))>
                <div id="error" role="alert">
                    <p>
                        {move || match status.get() {
                            Status::Failed(message) => message,
                            _ => String::new(),
                        }}
                    </p>
                    <button id="retry" on:click=on_retry>"Retry"</button>
                </div>
            </Show>
            <canvas id="grid" node_ref=canvas aria-label="Grid of generated digits"></canvas>
        </main>
    }
}

/// Makes sure an engine for the request's model runs on the requested backend, then draws the
/// request's grid. Every failure ends in [`Status::Failed`] with a message, never in a frozen
/// page.
async fn run(page: Page, request: Request) {
    let result = async {
        let engine = ensure_engine(page, request.backend, request.view.kind()).await?;
        let (rows, count) = request.view.inputs(request.seed, request.digit, engine.latent_dim)?;
        page.set_status.set(Status::Loading("Generating…".to_string()));
        match engine.generate(rows.clone(), count).await {
            Ok(batch) => Ok((batch, count)),
            Err(error) if engine.backend == Backend::WebGpu => {
                page.set_notice.set(format!("WebGPU failed while generating ({error}); switched to the CPU."));
                let cpu = ensure_engine(page, Some(Backend::Cpu), request.view.kind()).await?;
                cpu.generate(rows, count).await.map(|batch| (batch, count))
            }
            Err(error) => Err(error),
        }
    }
    .await;

    match result {
        Ok((batch, count)) => {
            page.set_grid.set(Some(tile(&batch.pixels, PixelRange::Symmetric, GRID_COLUMNS, 2)));
            page.set_timing.set(Some((count, batch.millis)));
            page.set_status.set(Status::Ready);
        }
        Err(error) => page.set_status.set(Status::Failed(error)),
    }
}

/// Returns the engine of `kind` on `requested` (the current backend when `None`), loading it
/// when needed. A new backend drops the engines of the old one. Without a current backend, or
/// when WebGPU is requested, WebGPU is tried first and the CPU is the fallback.
async fn ensure_engine(page: Page, requested: Option<Backend>, kind: ModelKind) -> Result<Rc<Engine>, String> {
    let engines = page.engines.get_value();
    let current = engines.first().map(|engine| engine.backend);
    let target = requested.or(current);
    if let Some(engine) = engines.iter().find(|e| Some(e.backend) == target && e.kind == kind) {
        return Ok(engine.clone());
    }

    let weights = fetch_weights(page, kind).await?;
    let file = weights_path(kind);
    let candidates: &[Backend] = match target {
        Some(Backend::Cpu) => &[Backend::Cpu],
        _ => &[Backend::WebGpu, Backend::Cpu],
    };
    let mut failures = Vec::new();
    for &candidate in candidates {
        page.set_status.set(Status::Loading(format!("Starting {}…", candidate.label())));
        match Engine::load(candidate, kind, &weights, &file).await {
            Ok(engine) => {
                if !failures.is_empty() {
                    page.set_notice.set(format!("{}. Running on the CPU instead.", failures.join("; ")));
                }
                page.engines.update_value(|engines| {
                    engines.retain(|e| e.backend == candidate);
                    engines.push(engine.clone());
                });
                page.set_backend.set(Some(candidate));
                return Ok(engine);
            }
            Err(reason) => failures.push(format!("{} is unavailable: {reason}", candidate.label())),
        }
    }
    Err(failures.join("; "))
}

/// Returns the weights file of `kind`, fetching and checking it on first use.
async fn fetch_weights(page: Page, kind: ModelKind) -> Result<Rc<Vec<u8>>, String> {
    if let Some(weights) = page.weights.with_value(|cache| cache.get(&kind).cloned()) {
        return Ok(weights);
    }
    let path = weights_path(kind);
    page.set_status.set(Status::Loading(format!("Downloading {path}…")));
    let bytes = fetch_bytes(&path).await?;
    shared::weights::decode(&bytes).map_err(|error| format!("{path}: {error}"))?;
    let bytes = Rc::new(bytes);
    page.weights.update_value(|cache| {
        cache.insert(kind, bytes.clone());
    });
    Ok(bytes)
}

fn random_seed() -> u64 {
    (js_sys::Math::random() * 1e9) as u64
}
