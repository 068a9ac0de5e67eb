//! The Generate part: grids of GAN digits in four views, with seeds, digit choice and a PNG
//! download.

use leptos::html::Canvas;
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::grid::{GrayImage, PixelRange, tile};

use crate::engine::Backend;
use crate::page::{draw, query, random_seed, set_query};
use crate::facts::ModelFacts;
use crate::registry::{BackendSwitch, Engines};
use crate::status::{ErrorBox, Status};
use crate::view::{GRID_COLUMNS, View};

/// Screen pixels per image pixel.
const ZOOM: u32 = 3;

/// A grid to draw: the view, its seed and, where the view uses one, its digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Request {
    view: View,
    seed: u64,
    digit: u32,
}

/// Renders the GAN part: a grid of generated digits, the batch time, and controls for the view, the
/// digit and the seed.
///
/// It starts work only while `visible`, and draws again when the seed, view or digit changed
/// while it was hidden, or when the visitor switched the backend.
#[component]
pub fn GeneratePart(
    /// The page's engines and backend.
    engines: Engines,
    /// Whether the part is shown.
    #[prop(into)]
    visible: Signal<bool>,
    /// The seed of the latents, shared with the Latent space part and kept in `?seed=`.
    seed: ReadSignal<u64>,
    /// Sets the seed.
    set_seed: WriteSignal<u64>,
    /// The visitor's latest backend choice, if any.
    switch: ReadSignal<Option<BackendSwitch>>,
    /// The part's status.
    status: ReadSignal<Status>,
    /// Sets the part's status.
    set_status: WriteSignal<Status>,
) -> impl IntoView {
    let (timing, set_timing) = signal(None::<(usize, f64)>);
    let initial_view = query("view").and_then(|id| View::from_id(&id)).unwrap_or(View::Random);
    let (view, set_view) = signal(initial_view);
    let initial_digit = query("digit").and_then(|d| d.parse::<u32>().ok()).filter(|&d| d < 10).unwrap_or(7);
    let (digit, set_digit) = signal(initial_digit);
    let (grid, set_grid) = signal(None::<GrayImage>);
    let (download_href, set_download_href) = signal(String::new());
    let canvas = NodeRef::<Canvas>::new();

    // The last request started, the last backend switch handled, and a counter that lets only
    // the latest run write its result.
    let started = StoredValue::new(None::<Request>);
    let handled_switch = StoredValue::new(0u32);
    let latest_run = StoredValue::new(0u64);

    let start = move |backend: Option<Backend>| {
        let request = Request {
            view: view.get_untracked(),
            seed: seed.get_untracked(),
            digit: digit.get_untracked(),
        };
        started.set_value(Some(request));
        let run = latest_run.get_value() + 1;
        latest_run.set_value(run);
        set_status.set(Status::Loading("Generating…".to_string()));

        spawn_local(async move {
            let progress = move |what: String| {
                if latest_run.get_value() == run {
                    set_status.set(Status::Loading(what));
                }
            };
            let result = engines
                .run(request.view.file(), backend, progress, |engine| async move {
                    let (rows, count) = request.view.inputs(request.seed, request.digit, engine.latent_dim)?;
                    engine.generate(rows, count).await.map(|batch| (batch, count))
                })
                .await;
            if latest_run.get_value() != run {
                return;
            }
            match result {
                Ok((batch, count)) => {
                    set_grid.set(Some(tile(&batch.pixels, PixelRange::Symmetric, GRID_COLUMNS, 2)));
                    set_timing.set(Some((count, batch.millis)));
                    set_status.set(Status::Ready);
                }
                Err(error) => set_status.set(Status::Failed(error)),
            }
        });
    };

    // Draws when shown for the first time, when the request changed while hidden, and after a
    // backend switch.
    Effect::new(move || {
        if !visible.get() {
            return;
        }
        let request = Request {
            view: view.get(),
            seed: seed.get(),
            digit: digit.get(),
        };
        let backend = BackendSwitch::take_new(switch, handled_switch);
        if backend.is_some() || started.get_value() != Some(request) {
            start(backend);
        }
    });

    Effect::new(move || {
        if let (Some(picture), Some(canvas)) = (grid.get(), canvas.get()) {
            if let Err(error) = draw(&canvas, &picture, ZOOM) {
                set_status.set(Status::Failed(error));
                return;
            }
            set_download_href.set(canvas.to_data_url().unwrap_or_default());
        }
    });

    let busy = move || status.with(Status::is_loading);
    let on_generate = move |_| {
        let next = random_seed();
        set_query("seed", &next.to_string());
        set_seed.set(next);
    };
    let on_view = move |event| {
        let Some(choice) = View::from_id(&event_target_value(&event)) else { return };
        set_query("view", choice.id());
        set_view.set(choice);
    };
    let on_digit = move |event| {
        let Ok(choice) = event_target_value(&event).parse::<u32>() else { return };
        set_query("digit", &choice.to_string());
        set_digit.set(choice);
    };
    let on_retry = Callback::new(move |()| start(None));

    view! {
        <section id="generate-part" class="part" data-state=move || status.with(Status::id)>
            <p class="lead">"GANs trained on MNIST draw these digits on your own machine."</p>
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
                <button id="generate" on:click=on_generate disabled=busy>
                    "Generate"
                </button>
                <a
                    id="download"
                    href=move || download_href.get()
                    download=move || format!("digits-{}-seed-{}.png", view.get().id(), seed.get())
                >
                    "Download PNG"
                </a>
            </div>
            <p class="status">
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
                    {move || status.with(Status::progress).map(|what| format!(" · {what}")).unwrap_or_default()}
                </span>
            </p>
            <ErrorBox status=status id="error" retry_id="retry" on_retry=on_retry />
            <canvas id="grid" node_ref=canvas aria-label="Grid of generated digits"></canvas>
            <ModelFacts engines=engines ids=&["dcgan", "cgan"] id="generate-facts" />
        </section>
    }
}
