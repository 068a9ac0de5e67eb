//! The page's components and the work they start.

use std::rc::Rc;

use leptos::html::Canvas;
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::grid::{GrayImage, PixelRange, tile};

use crate::engine::{Backend, Engine};
use crate::fetch::fetch_bytes;
use crate::page::{draw, query, set_body_state, set_query};

/// Path of the DCGAN weights, relative to the page.
pub const DCGAN_WEIGHTS: &str = "weights/dcgan.bin";

/// Digits per grid side.
const GRID_SIDE: usize = 8;

/// Screen pixels per image pixel.
const ZOOM: u32 = 3;

/// What the page is doing.
#[derive(Debug, Clone, PartialEq)]
enum Status {
    /// Work in progress, with a description.
    Loading(String),
    /// A grid is drawn.
    Ready,
    /// Something failed; the message says what and what to do.
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

/// Signals and stored values the asynchronous work writes to. All fields are `Copy` handles.
#[derive(Clone, Copy)]
struct Page {
    set_status: WriteSignal<Status>,
    set_backend: WriteSignal<Option<Backend>>,
    set_notice: WriteSignal<String>,
    set_timing: WriteSignal<Option<f64>>,
    set_grid: WriteSignal<Option<GrayImage>>,
    engine: StoredValue<Option<Rc<Engine>>, LocalStorage>,
    weights: StoredValue<Option<Rc<Vec<u8>>>, LocalStorage>,
}

/// The digit generator page: a grid of DCGAN digits, the backend in use and the batch time.
#[component]
pub fn App() -> impl IntoView {
    let (status, set_status) = signal(Status::Loading("Loading weights…".to_string()));
    let (backend, set_backend) = signal(None::<Backend>);
    let (notice, set_notice) = signal(String::new());
    let (timing, set_timing) = signal(None::<f64>);
    let initial_seed = query("seed").and_then(|s| s.parse::<u64>().ok()).unwrap_or_else(random_seed);
    let (seed, set_seed) = signal(initial_seed);
    let (grid, set_grid) = signal(None::<GrayImage>);
    let (download_href, set_download_href) = signal(String::new());
    let canvas = NodeRef::<Canvas>::new();
    let page = Page {
        set_status,
        set_backend,
        set_notice,
        set_timing,
        set_grid,
        engine: StoredValue::new_local(None),
        weights: StoredValue::new_local(None),
    };
    let requested = query("backend").and_then(|id| Backend::from_id(&id));
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

    spawn_local(run(page, requested, initial_seed));

    let busy = move || matches!(status.get(), Status::Loading(_));
    let on_generate = move |_| {
        let next = random_seed();
        set_seed.set(next);
        set_query("seed", &next.to_string());
        spawn_local(run(page, None, next));
    };
    let on_backend = move |event| {
        let Some(choice) = Backend::from_id(&event_target_value(&event)) else { return };
        set_notice.set(String::new());
        set_query("backend", choice.id());
        spawn_local(run(page, Some(choice), seed.get_untracked()));
    };
    let on_retry = move |_| spawn_local(run(page, requested, seed.get_untracked()));

    view! {
        <main>
            <h1>"Handwritten digits, generated in your browser"</h1>
            <p class="lead">
                "A DCGAN trained on MNIST with Burn draws these 64 digits on your own machine."
            </p>
            <div class="controls">
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
                    download=move || format!("digits-seed-{}.png", seed.get())
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
                    {move || timing.get().map(|ms| format!("64 digits in {ms:.1} ms")).unwrap_or_default()}
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

/// Makes sure an engine runs on `requested` (or any backend when `None`), then draws the grid of
/// `seed`. Every failure ends in [`Status::Failed`] with a message, never in a frozen page.
async fn run(page: Page, requested: Option<Backend>, seed: u64) {
    let result = async {
        let engine = ensure_engine(page, requested).await?;
        page.set_status.set(Status::Loading("Generating…".to_string()));
        match engine.generate(seed, GRID_SIDE * GRID_SIDE).await {
            Ok(batch) => Ok(batch),
            Err(error) if engine.backend == Backend::WebGpu => {
                page.set_notice.set(format!("WebGPU failed while generating ({error}); switched to the CPU."));
                page.engine.set_value(None);
                let cpu = ensure_engine(page, Some(Backend::Cpu)).await?;
                cpu.generate(seed, GRID_SIDE * GRID_SIDE).await
            }
            Err(error) => Err(error),
        }
    }
    .await;

    match result {
        Ok(batch) => {
            page.set_grid.set(Some(tile(&batch.pixels, PixelRange::Symmetric, GRID_SIDE, 2)));
            page.set_timing.set(Some(batch.millis));
            page.set_status.set(Status::Ready);
        }
        Err(error) => page.set_status.set(Status::Failed(error)),
    }
}

/// Returns the current engine if it runs on `requested`, or loads one. Without a request, or
/// when WebGPU is requested, WebGPU is tried first and the CPU is the fallback.
async fn ensure_engine(page: Page, requested: Option<Backend>) -> Result<Rc<Engine>, String> {
    if let Some(engine) = page.engine.get_value() {
        if requested.is_none_or(|backend| backend == engine.backend) {
            return Ok(engine);
        }
    }

    let weights = match page.weights.get_value() {
        Some(weights) => weights,
        None => {
            page.set_status.set(Status::Loading(format!("Downloading {DCGAN_WEIGHTS}…")));
            let bytes = fetch_bytes(DCGAN_WEIGHTS).await?;
            shared::weights::decode(&bytes).map_err(|error| format!("{DCGAN_WEIGHTS}: {error}"))?;
            let bytes = Rc::new(bytes);
            page.weights.set_value(Some(bytes.clone()));
            bytes
        }
    };

    let candidates: &[Backend] = match requested {
        Some(Backend::Cpu) => &[Backend::Cpu],
        _ => &[Backend::WebGpu, Backend::Cpu],
    };
    let mut failures = Vec::new();
    for &candidate in candidates {
        page.set_status.set(Status::Loading(format!("Starting {}…", candidate.label())));
        match Engine::load(candidate, &weights).await {
            Ok(engine) => {
                if !failures.is_empty() {
                    page.set_notice.set(format!("{}. Running on the CPU instead.", failures.join("; ")));
                }
                page.engine.set_value(Some(engine.clone()));
                page.set_backend.set(Some(candidate));
                return Ok(engine);
            }
            Err(reason) => failures.push(format!("{} is unavailable: {reason}", candidate.label())),
        }
    }
    Err(failures.join("; "))
}

fn random_seed() -> u64 {
    (js_sys::Math::random() * 1e9) as u64
}
