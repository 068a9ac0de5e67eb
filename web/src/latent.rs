//! The Latent space part: samples of a VAE with a 16-dimensional latent space, an animated
//! interpolation, and the map of a 2-D VAE.

use std::time::Duration;

use leptos::html::Canvas;
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::IMAGE_PIXELS;
use shared::grid::{GrayImage, PixelRange, tile};
use shared::latent::{SeededRng, interpolate, normal_latents};

use crate::digits::test_digits;
use crate::engine::{Backend, WeightsFile};
use crate::latent_map::{LatentMap, map_latents, map_picture};
use crate::page::{draw, random_seed, set_query};
use crate::facts::ModelFacts;
use crate::registry::{BackendSwitch, Engines};
use crate::status::{ErrorBox, Status};
use crate::view::GRID_COLUMNS;

/// Screen pixels per image pixel of the sample grid.
const GRID_ZOOM: u32 = 2;

/// Screen pixels per image pixel of the animated interpolation.
const FRAME_ZOOM: u32 = 6;

/// Steps of an interpolation, both ends included.
const FRAMES: usize = 24;

/// Frames of the interpolation strip per row.
const STRIP_COLUMNS: usize = 12;

/// Time each interpolation frame is shown, in milliseconds.
const FRAME_MS: u64 = 100;

/// The two ends of the animated interpolation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ends {
    /// The first two samples of the grid.
    Latents,
    /// The posterior means of two bundled test digits, picked by the seed.
    TestDigits,
}

impl Ends {
    /// Both choices, in menu order.
    pub const ALL: [Ends; 2] = [Ends::Latents, Ends::TestDigits];

    /// Identifier used in the menu and `?between=`.
    pub fn id(self) -> &'static str {
        match self {
            Ends::Latents => "samples",
            Ends::TestDigits => "test-digits",
        }
    }

    /// Parses an identifier from [`Ends::id`].
    pub fn from_id(id: &str) -> Option<Self> {
        Ends::ALL.into_iter().find(|ends| ends.id() == id)
    }

    /// Label shown in the menu.
    pub fn label(self) -> &'static str {
        match self {
            Ends::Latents => "the first two samples",
            Ends::TestDigits => "two real test digits",
        }
    }
}

/// The seed of the samples and the ends of the interpolation, which together fix what the part
/// shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Request {
    seed: u64,
    ends: Ends,
}

/// Decoded interpolation frames and a caption naming the ends.
#[derive(Debug, Clone, PartialEq)]
struct Interpolation {
    /// [`FRAMES`] images of 784 pixels in `[0, 1]`.
    pixels: Vec<f32>,
    caption: String,
}

/// Renders the VAE part: a grid of samples, an animated interpolation and the 2-D latent map.
///
/// It loads `weights/vae.bin` and `weights/vae-2d.bin` when first shown, and decodes again when
/// the seed changed while it was hidden or the visitor switched the backend.
#[component]
pub fn LatentPart(
    /// The page's engines and backend.
    engines: Engines,
    /// Whether the part is shown.
    #[prop(into)]
    visible: Signal<bool>,
    /// The seed of the latents, shared with the Generate part and kept in `?seed=`.
    seed: ReadSignal<u64>,
    /// Sets the seed.
    set_seed: WriteSignal<u64>,
    /// The visitor's latest backend choice, if any.
    switch: ReadSignal<Option<BackendSwitch>>,
    /// The model input of the visitor's drawing, from the Draw part.
    drawing: ReadSignal<Option<Vec<f32>>>,
    /// The part's status.
    status: ReadSignal<Status>,
    /// Sets the part's status.
    set_status: WriteSignal<Status>,
) -> impl IntoView {
    let initial_ends = crate::page::query("between").and_then(|id| Ends::from_id(&id)).unwrap_or(Ends::Latents);
    let (ends, set_ends) = signal(initial_ends);
    let (samples, set_samples) = signal(None::<GrayImage>);
    let (interpolation, set_interpolation) = signal(None::<Interpolation>);
    let (map, set_map) = signal(None::<GrayImage>);
    let (frame, set_frame) = signal(0usize);
    let (playing, set_playing) = signal(true);
    let samples_canvas = NodeRef::<Canvas>::new();
    let frame_canvas = NodeRef::<Canvas>::new();
    let strip_canvas = NodeRef::<Canvas>::new();

    let started = StoredValue::new(None::<Request>);
    let handled_switch = StoredValue::new(0u32);
    let latest_run = StoredValue::new(0u64);

    let start = move |backend: Option<Backend>| {
        let request = Request {
            seed: seed.get_untracked(),
            ends: ends.get_untracked(),
        };
        started.set_value(Some(request));
        let run = latest_run.get_value() + 1;
        latest_run.set_value(run);
        let with_map = backend.is_some() || map.with_untracked(Option::is_none);
        set_status.set(Status::Loading("Decoding…".to_string()));

        spawn_local(async move {
            let is_latest = move || latest_run.get_value() == run;
            let progress = move |what: String| {
                if is_latest() {
                    set_status.set(Status::Loading(what));
                }
            };
            let result = async {
                let grid = engines
                    .run(WeightsFile::Vae, backend, progress, |engine| async move {
                        let latents = normal_latents(request.seed, GRID_COLUMNS * GRID_COLUMNS, engine.latent_dim);
                        engine.decode(latents, GRID_COLUMNS * GRID_COLUMNS).await
                    })
                    .await?;
                if is_latest() {
                    set_samples.set(Some(tile(&grid.pixels, PixelRange::Unit, GRID_COLUMNS, 2)));
                }

                let path = interpolate_ends(engines, request, progress).await?;
                if is_latest() {
                    set_frame.set(0);
                    set_interpolation.set(Some(path));
                }

                if with_map {
                    let decoded = engines
                        .run(WeightsFile::Vae2d, None, progress, |engine| async move {
                            engine.decode(map_latents(), crate::latent_map::MAP_SIDE.pow(2)).await
                        })
                        .await?;
                    if is_latest() {
                        set_map.set(Some(map_picture(&decoded.pixels)));
                    }
                }
                Ok::<(), String>(())
            }
            .await;

            if !is_latest() {
                return;
            }
            match result {
                Ok(()) => set_status.set(Status::Ready),
                Err(error) => set_status.set(Status::Failed(error)),
            }
        });
    };

    Effect::new(move || {
        if !visible.get() {
            return;
        }
        let request = Request {
            seed: seed.get(),
            ends: ends.get(),
        };
        let backend = BackendSwitch::take_new(switch, handled_switch);
        if backend.is_some() || started.get_value() != Some(request) {
            start(backend);
        }
    });

    // Advance the animation while the part is shown, back and forth between the ends.
    if let Ok(timer) = set_interval_with_handle(
        move || {
            if playing.get_untracked() && visible.get_untracked() && interpolation.with_untracked(Option::is_some) {
                set_frame.update(|step| *step = (*step + 1) % (2 * FRAMES - 2));
            }
        },
        Duration::from_millis(FRAME_MS),
    ) {
        on_cleanup(move || timer.clear());
    }

    Effect::new(move || {
        let Some(canvas) = samples_canvas.get() else { return };
        if let Some(picture) = samples.get()
            && let Err(error) = draw(&canvas, &picture, GRID_ZOOM)
        {
            set_status.set(Status::Failed(error));
        }
    });

    Effect::new(move || {
        let Some(canvas) = strip_canvas.get() else { return };
        if let Some(path) = interpolation.get()
            && let Err(error) = draw(&canvas, &tile(&path.pixels, PixelRange::Unit, STRIP_COLUMNS, 2), 1)
        {
            set_status.set(Status::Failed(error));
        }
    });

    let shown_frame = move || frame_index(frame.get());
    Effect::new(move || {
        let Some(canvas) = frame_canvas.get() else { return };
        let index = shown_frame();
        interpolation.with(|path| {
            let Some(pixels) = path.as_ref().and_then(|path| path.pixels.get(index * IMAGE_PIXELS..(index + 1) * IMAGE_PIXELS))
            else {
                return;
            };
            if let Err(error) = draw(&canvas, &tile(pixels, PixelRange::Unit, 1, 0), FRAME_ZOOM) {
                set_status.set(Status::Failed(error));
            }
        });
    });

    let busy = move || status.with(Status::is_loading);
    let on_generate = move |_| {
        let next = random_seed();
        set_query("seed", &next.to_string());
        set_seed.set(next);
    };
    let on_ends = move |event| {
        let Some(choice) = Ends::from_id(&event_target_value(&event)) else { return };
        set_query("between", choice.id());
        set_ends.set(choice);
    };
    let on_play = move |_| set_playing.update(|playing| *playing = !*playing);
    let on_retry = Callback::new(move |()| start(None));

    view! {
        <section id="latent" class="part" data-state=move || status.with(Status::id)>
            <p class="lead">
                "A variational autoencoder (VAE) learns a smooth space of digits: every point in it decodes to a digit."
            </p>
            <div class="controls">
                <button id="latent-generate" on:click=on_generate disabled=busy>
                    "New samples"
                </button>
                <span id="latent-seed">{move || format!("seed {}", seed.get())}</span>
                <span id="latent-progress">{move || status.with(Status::progress).unwrap_or_default()}</span>
            </div>
            <ErrorBox status=status id="latent-error" retry_id="latent-retry" on_retry=on_retry />
            <h2>"Samples"</h2>
            <canvas id="vae-samples" node_ref=samples_canvas aria-label="Digits decoded from random latents"></canvas>
            <h2>"Interpolation"</h2>
            <div class="controls">
                <label>
                    "Between "
                    <select
                        id="interpolation-ends"
                        on:change=on_ends
                        disabled=busy
                        prop:value=move || ends.get().id()
                    >
                        {Ends::ALL
                            .into_iter()
                            .map(|e| view! { <option value=e.id()>{e.label()}</option> })
                            .collect_view()}
                    </select>
                </label>
                <button id="interpolation-play" on:click=on_play aria-pressed=move || playing.get().to_string()>
                    {move || if playing.get() { "Stop" } else { "Play" }}
                </button>
                <span id="interpolation-caption">{move || interpolation.with(|p| p.as_ref().map(|p| p.caption.clone()))}</span>
            </div>
            <div class="interpolation-row">
                <canvas
                    id="interpolation"
                    class="preview"
                    node_ref=frame_canvas
                    data-frame=move || shown_frame().to_string()
                    aria-label="Animated interpolation"
                ></canvas>
                <canvas id="interpolation-strip" node_ref=strip_canvas aria-label="Every step of the interpolation"></canvas>
            </div>
            <h2>"Latent map"</h2>
            <LatentMap engines=engines map=map drawing=drawing visible=visible set_status=set_status />
            <ModelFacts engines=engines ids=&["vae", "vae-2d"] id="latent-facts" />
        </section>
    }
}

/// Returns the frame shown at animation step `step`, going from the first frame to the last and
/// back.
fn frame_index(step: usize) -> usize {
    if step < FRAMES { step } else { 2 * FRAMES - 2 - step }
}

/// Decodes the interpolation between the request's two ends with the 16-dimensional VAE.
async fn interpolate_ends(
    engines: Engines,
    request: Request,
    progress: impl Fn(String),
) -> Result<Interpolation, String> {
    match request.ends {
        Ends::Latents => {
            let batch = engines
                .run(WeightsFile::Vae, None, &progress, |engine| async move {
                    let ends = normal_latents(request.seed, 2, engine.latent_dim);
                    let path = interpolate(&ends[..engine.latent_dim], &ends[engine.latent_dim..], FRAMES);
                    engine.decode(path, FRAMES).await
                })
                .await?;
            Ok(Interpolation {
                pixels: batch.pixels,
                caption: "From the first sample of the grid to the second.".to_string(),
            })
        }
        Ends::TestDigits => {
            progress("Downloading the test digits…".to_string());
            let digits = test_digits().await?;
            let mut rng = SeededRng::new(request.seed);
            let count = digits.len() as u64;
            let first = rng.next_below(count);
            // A second, different digit where the sample has more than one.
            let second = (first + 1 + rng.next_below(count.saturating_sub(1).max(1))) % count;
            let (Some(first), Some(second)) = (digits.get(first as usize), digits.get(second as usize)) else {
                return Err("the bundled test digits are empty; publish web/assets (see its README)".to_string());
            };
            let images = [first.model_input(), second.model_input()].concat();

            let batch = engines
                .run(WeightsFile::Vae, None, &progress, |engine| {
                    let images = images.clone();
                    async move {
                        let means = engine.encode_means(images, 2).await?;
                        let dim = engine.latent_dim;
                        if means.len() != 2 * dim {
                            return Err(format!("the encoder returned {} values, expected {}", means.len(), 2 * dim));
                        }
                        let path = interpolate(&means[..dim], &means[dim..], FRAMES);
                        engine.decode(path, FRAMES).await
                    }
                })
                .await?;
            Ok(Interpolation {
                pixels: batch.pixels,
                caption: format!(
                    "From test digit #{} (a {}) to test digit #{} (a {}), through their latent codes.",
                    first.index, first.label, second.index, second.label
                ),
            })
        }
    }
}
