//! The Draw part: a canvas to draw a digit on with mouse, touch or pen, the 28×28 input of the
//! autoencoder and its reconstruction, updated while drawing.

use leptos::html::Canvas;
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::grid::{GrayImage, PixelRange, tile};
use shared::preprocess::{ink_from_rgba, mnist_input};
use shared::{IMAGE_PIXELS, IMAGE_SIDE};
use wasm_bindgen::JsCast;
use web_sys::{CanvasRenderingContext2d, ContextAttributes2d, HtmlCanvasElement, PointerEvent};

use crate::digits::{TestDigit, test_digits};
use crate::engine::{Backend, WeightsFile};
use crate::page::{blank, draw, picture_canvas, query, remove_query, set_query};
use crate::facts::ModelFacts;
use crate::registry::{BackendSwitch, Engines};
use crate::status::{ErrorBox, Status};
use crate::throttle::Throttle;

/// Side of the drawing canvas, in canvas pixels (ten per MNIST pixel).
const CANVAS_SIDE: u32 = 280;

/// Width of a stroke, in canvas pixels. The digit is scaled so its longer side fits 20 px, so
/// a digit drawn about 200 px tall shrinks tenfold and a 20 px stroke becomes 2 px, the width
/// of a pen stroke in MNIST.
const STROKE_WIDTH: f64 = 20.0;

/// Screen pixels per image pixel of the input and reconstruction previews.
const PREVIEW_ZOOM: u32 = 6;

/// Shortest time between two reconstructions while drawing, in milliseconds.
const UPDATE_INTERVAL_MS: f64 = 100.0;

/// Name of the URL parameter that picks a bundled test digit by its index.
const TEST_DIGIT_PARAMETER: &str = "test-digit";

/// A point in canvas pixels.
type Point = (f64, f64);

/// The visitor's drawing: an optional bundled test digit underneath and strokes on top.
#[derive(Debug, Clone, Default, PartialEq)]
struct Drawing {
    digit: Option<TestDigit>,
    strokes: Vec<Vec<Point>>,
}

impl Drawing {
    fn is_empty(&self) -> bool {
        self.digit.is_none() && self.strokes.is_empty()
    }
}

/// A reconstruction and its error.
#[derive(Debug, Clone, PartialEq)]
struct Reconstruction {
    /// 784 pixels in `[0, 1]`.
    pixels: Vec<f32>,
    /// Mean squared error per pixel against the input.
    error: f32,
}

/// Renders the autoencoder part: a drawing canvas with Clear, Undo and Random test digit, the
/// model input and its reconstruction with the reconstruction error.
///
/// It loads the autoencoder when first shown. `?test-digit=N` starts with bundled test digit N.
#[component]
pub fn DrawPart(
    /// The page's engines and backend.
    engines: Engines,
    /// Whether the part is shown.
    #[prop(into)]
    visible: Signal<bool>,
    /// The visitor's latest backend choice, if any.
    switch: ReadSignal<Option<BackendSwitch>>,
    /// The part's status.
    status: ReadSignal<Status>,
    /// Sets the part's status.
    set_status: WriteSignal<Status>,
    /// Receives the model input of the drawing (784 values in `[0, 1]`), or `None` when the
    /// canvas is empty. The Latent space part marks it on its map.
    set_model_input: WriteSignal<Option<Vec<f32>>>,
) -> impl IntoView {
    let (drawing, set_drawing) = signal(Drawing::default());
    let (input, set_input) = signal(None::<Vec<f32>>);
    let (reconstruction, set_reconstruction) = signal(None::<Reconstruction>);
    let (notice, set_notice) = signal(String::new());
    let canvas = NodeRef::<Canvas>::new();
    let input_canvas = NodeRef::<Canvas>::new();
    let reconstruction_canvas = NodeRef::<Canvas>::new();

    // The pointer that draws the current stroke, whether the part has been shown, a backend
    // switch for the next update, the last switch handled, and a test digit load to repeat on
    // Retry (`Some(None)` for a random one).
    let active_pointer = StoredValue::new(None::<i32>);
    let started = StoredValue::new(false);
    let pending_backend = StoredValue::new(None::<Backend>);
    let handled_switch = StoredValue::new(0u32);
    let failed_digit_load = StoredValue::new(None::<Option<usize>>);

    // One update: read the model input from the drawing, then reconstruct it.
    let updates = Throttle::new(UPDATE_INTERVAL_MS, move || async move {
        let Some(canvas) = canvas.get_untracked() else { return };
        let model_input = match drawing.with_untracked(|drawing| model_input(&canvas, drawing)) {
            Ok(model_input) => model_input,
            Err(error) => {
                set_status.set(Status::Failed(error));
                return;
            }
        };
        set_input.set(model_input.clone());
        set_model_input.set(model_input.clone());
        if status.with_untracked(|status| status.failure().is_some()) {
            return;
        }

        let backend = pending_backend.try_update_value(Option::take).flatten();
        // A failure that arrives while the model loads, such as a missing test digits file, stays
        // shown.
        let progress = move |what: String| {
            if status.with_untracked(|status| status.failure().is_none()) {
                set_status.set(Status::Loading(what));
            }
        };
        let result = engines
            .run(WeightsFile::Autoencoder, backend, progress, |engine| {
                let model_input = model_input.clone();
                async move {
                    match model_input {
                        Some(pixels) => engine.reconstruct(pixels, 1).await.map(|batch| Some(batch.pixels)),
                        None => Ok(None),
                    }
                }
            })
            .await;
        match (result, model_input) {
            (Ok(Some(pixels)), Some(target)) => {
                let error = mean_squared_error(&pixels, &target);
                set_reconstruction.set(Some(Reconstruction { pixels, error }));
            }
            (Ok(_), _) => set_reconstruction.set(None),
            (Err(error), _) => set_status.set(Status::Failed(error)),
        }
    });

    let request_update = move || {
        if !started.get_value() {
            return;
        }
        if status.with_untracked(|status| matches!(status, Status::Idle | Status::Ready)) {
            set_status.set(Status::Busy);
        }
        updates.request();
    };

    // The part is ready once the last update has finished without a failure.
    Effect::new(move || {
        if !updates.busy.get() && status.with_untracked(|status| matches!(status, Status::Busy | Status::Loading(_))) {
            set_status.set(Status::Ready);
        }
    });

    let load_test_digit = move |index: Option<usize>| {
        spawn_local(async move {
            let digits = match test_digits().await {
                Ok(digits) => digits,
                Err(error) => {
                    failed_digit_load.set_value(Some(index));
                    set_status.set(Status::Failed(error));
                    return;
                }
            };
            let index = index.unwrap_or_else(|| (js_sys::Math::random() * digits.len() as f64) as usize);
            match digits.get(index) {
                Some(digit) => {
                    set_notice.set(String::new());
                    set_query(TEST_DIGIT_PARAMETER, &index.to_string());
                    set_drawing.set(Drawing {
                        digit: Some(digit),
                        strokes: Vec::new(),
                    });
                }
                None => set_notice.set(format!(
                    "There is no test digit {index}: the bundled sample holds digits 0 to {}. Press Random test digit for one of them.",
                    digits.len().saturating_sub(1)
                )),
            }
        });
    };

    // First show: load the autoencoder and the test digit the URL names. Later: follow backend
    // switches.
    Effect::new(move || {
        if !visible.get() {
            return;
        }
        if let Some(backend) = BackendSwitch::take_new(switch, handled_switch) {
            pending_backend.set_value(Some(backend));
            if started.get_value() {
                request_update();
            }
        }
        if started.get_value() {
            return;
        }
        started.set_value(true);
        request_update();
        if let Some(text) = query(TEST_DIGIT_PARAMETER) {
            match text.parse::<usize>() {
                Ok(index) => load_test_digit(Some(index)),
                Err(_) => set_notice.set(format!(
                    "?{TEST_DIGIT_PARAMETER}={text} is not a digit index; use a whole number such as ?{TEST_DIGIT_PARAMETER}=0."
                )),
            }
        }
    });

    // Paint the drawing, then update the input and reconstruction from it.
    Effect::new(move || {
        let Some(canvas) = canvas.get() else { return };
        let painted = drawing.with(|drawing| paint(&canvas, drawing));
        if let Err(error) = painted {
            set_status.set(Status::Failed(error));
            return;
        }
        request_update();
    });

    Effect::new(move || {
        let Some(canvas) = input_canvas.get() else { return };
        let shown = input.with(|input| show_image(&canvas, input.as_deref()));
        if let Err(error) = shown {
            set_status.set(Status::Failed(error));
        }
    });

    Effect::new(move || {
        let Some(canvas) = reconstruction_canvas.get() else { return };
        let shown = reconstruction.with(|result| show_image(&canvas, result.as_ref().map(|r| r.pixels.as_slice())));
        if let Err(error) = shown {
            set_status.set(Status::Failed(error));
        }
    });

    let on_pointer_down = move |event: PointerEvent| {
        if event.button() != 0 || active_pointer.get_value().is_some() {
            return;
        }
        let Some(canvas) = canvas.get_untracked() else { return };
        event.prevent_default();
        let _ = canvas.set_pointer_capture(event.pointer_id());
        active_pointer.set_value(Some(event.pointer_id()));
        let point = canvas_point(&canvas, &event);
        set_drawing.update(|drawing| drawing.strokes.push(vec![point]));
    };
    let on_pointer_move = move |event: PointerEvent| {
        if active_pointer.get_value() != Some(event.pointer_id()) {
            return;
        }
        let Some(canvas) = canvas.get_untracked() else { return };
        let point = canvas_point(&canvas, &event);
        set_drawing.update(|drawing| {
            if let Some(stroke) = drawing.strokes.last_mut() {
                stroke.push(point);
            }
        });
    };
    let end_stroke = move |event: PointerEvent| {
        if active_pointer.get_value() == Some(event.pointer_id()) {
            active_pointer.set_value(None);
        }
    };

    let on_clear = move |_| {
        remove_query(TEST_DIGIT_PARAMETER);
        set_drawing.set(Drawing::default());
    };
    let on_undo = move |_| set_drawing.update(|drawing| drawing.strokes.truncate(drawing.strokes.len().saturating_sub(1)));
    let on_random = move |_| load_test_digit(None);
    let on_retry = Callback::new(move |()| {
        set_status.set(Status::Busy);
        if let Some(index) = failed_digit_load.try_update_value(Option::take).flatten() {
            load_test_digit(index);
        }
        request_update();
    });

    view! {
        <section id="draw" class="part" data-state=move || status.with(Status::id)>
            <p class="lead">
                "Draw a digit. An autoencoder squeezes it into a few numbers and draws it back from them."
            </p>
            <div class="controls">
                <button id="draw-clear" on:click=on_clear disabled=move || drawing.with(Drawing::is_empty)>
                    "Clear"
                </button>
                <button id="draw-undo" on:click=on_undo disabled=move || drawing.with(|d| d.strokes.is_empty())>
                    "Undo"
                </button>
                <button id="draw-random" on:click=on_random>
                    "Random test digit"
                </button>
                <span id="test-digit" data-index=move || drawing.with(|d| d.digit.as_ref().map(|digit| digit.index.to_string()))>
                    {move || {
                        drawing
                            .with(|d| {
                                d.digit
                                    .as_ref()
                                    .map(|digit| format!("MNIST test digit #{} (a {})", digit.index, digit.label))
                            })
                            .unwrap_or_default()
                    }}
                </span>
            </div>
            <p id="draw-notice" class="notice">{move || notice.get()}</p>
            <p class="status">
                <span id="draw-progress">{move || status.with(Status::progress).unwrap_or_default()}</span>
            </p>
            <ErrorBox status=status id="draw-error" retry_id="draw-retry" on_retry=on_retry />
            <div class="draw-row">
                <figure>
                    <canvas
                        id="draw-canvas"
                        class="drawing"
                        node_ref=canvas
                        width=CANVAS_SIDE
                        height=CANVAS_SIDE
                        aria-label="Drawing canvas: draw a digit with the mouse, a finger or a pen"
                        data-strokes=move || drawing.with(|d| d.strokes.len()).to_string()
                        on:pointerdown=on_pointer_down
                        on:pointermove=on_pointer_move
                        on:pointerup=end_stroke
                        on:pointercancel=end_stroke
                        on:lostpointercapture=end_stroke
                    ></canvas>
                    <figcaption>"Your drawing"</figcaption>
                </figure>
                <figure>
                    <canvas id="draw-input" class="preview" node_ref=input_canvas aria-label="The 28×28 model input"></canvas>
                    <figcaption>"What the model sees (28×28)"</figcaption>
                </figure>
                <figure>
                    <canvas
                        id="draw-reconstruction"
                        class="preview"
                        node_ref=reconstruction_canvas
                        aria-label="The autoencoder's reconstruction"
                    ></canvas>
                    <figcaption>
                        "Reconstruction · error "
                        <span
                            id="reconstruction-error"
                            data-value=move || reconstruction.with(|r| r.as_ref().map(|r| r.error.to_string()))
                        >
                            {move || reconstruction.with(|r| r.as_ref().map(|r| format!("{:.4}", r.error))).unwrap_or_default()}
                        </span>
                    </figcaption>
                </figure>
            </div>
            <ModelFacts engines=engines ids=&["autoencoder"] id="draw-facts" />
        </section>
    }
}

/// Returns the model input of a drawing, or `None` when nothing is drawn. A bundled test digit
/// alone goes to the model exactly as stored. A drawing with strokes is read back from the
/// canvas and preprocessed like MNIST.
fn model_input(canvas: &HtmlCanvasElement, drawing: &Drawing) -> Result<Option<Vec<f32>>, String> {
    if drawing.strokes.is_empty() {
        return Ok(drawing.digit.as_ref().map(TestDigit::model_input));
    }

    let (width, height) = (canvas.width(), canvas.height());
    let image = drawing_context(canvas)?
        .get_image_data(0.0, 0.0, f64::from(width), f64::from(height))
        .map_err(|_| "reading the drawing canvas failed".to_string())?;
    let rgba = image.data();
    let preprocess = |error| format!("preprocessing the drawing failed: {error}");
    let ink = ink_from_rgba(&rgba, width as usize, height as usize).map_err(preprocess)?;
    mnist_input(&ink, width as usize, height as usize).map_err(preprocess)
}

/// Returns the 2D context of the drawing canvas. The page reads the canvas back after every
/// change, so the context requests that the browser keep it in CPU memory (`willReadFrequently`). The
/// options take effect only on the first call for a canvas, which is the first paint.
fn drawing_context(canvas: &HtmlCanvasElement) -> Result<CanvasRenderingContext2d, String> {
    let options = ContextAttributes2d::new();
    options.set_will_read_frequently(true);
    canvas
        .get_context_with_context_options("2d", &options)
        .ok()
        .flatten()
        .and_then(|context| context.dyn_into().ok())
        .ok_or_else(|| "the drawing canvas has no 2D context".to_string())
}

/// Paints a drawing: black, the test digit scaled up smoothly, then the strokes in white.
fn paint(canvas: &HtmlCanvasElement, drawing: &Drawing) -> Result<(), String> {
    let context = drawing_context(canvas)?;
    let side = f64::from(CANVAS_SIDE);
    context.set_fill_style_str("#000");
    context.fill_rect(0.0, 0.0, side, side);

    if let Some(digit) = &drawing.digit {
        let picture = GrayImage {
            width: IMAGE_SIDE,
            height: IMAGE_SIDE,
            pixels: digit.pixels.clone(),
        };
        context.set_image_smoothing_enabled(true);
        context
            .draw_image_with_html_canvas_element_and_dw_and_dh(&picture_canvas(&picture)?, 0.0, 0.0, side, side)
            .map_err(|_| "drawing the test digit failed".to_string())?;
    }

    context.set_fill_style_str("#fff");
    context.set_stroke_style_str("#fff");
    context.set_line_width(STROKE_WIDTH);
    context.set_line_cap("round");
    context.set_line_join("round");
    for stroke in &drawing.strokes {
        let Some(&(x, y)) = stroke.first() else { continue };
        context.begin_path();
        if stroke.len() == 1 {
            // A tap: a round dot as wide as a stroke.
            let _ = context.arc(x, y, STROKE_WIDTH / 2.0, 0.0, std::f64::consts::TAU);
            context.fill();
        } else {
            context.move_to(x, y);
            for &(x, y) in &stroke[1..] {
                context.line_to(x, y);
            }
            context.stroke();
        }
    }
    Ok(())
}

/// Shows one 28×28 image with values in `[0, 1]` zoomed, or a black square for `None`.
fn show_image(canvas: &HtmlCanvasElement, pixels: Option<&[f32]>) -> Result<(), String> {
    match pixels {
        Some(pixels) if pixels.len() == IMAGE_PIXELS => draw(canvas, &tile(pixels, PixelRange::Unit, 1, 0), PREVIEW_ZOOM),
        Some(pixels) => Err(format!("the model returned {} pixels, expected {IMAGE_PIXELS}", pixels.len())),
        None => {
            let side = IMAGE_SIDE as u32 * PREVIEW_ZOOM;
            blank(canvas, side, side)
        }
    }
}

/// Maps a pointer position to canvas pixels, whatever size the canvas is shown at.
fn canvas_point(canvas: &HtmlCanvasElement, event: &PointerEvent) -> Point {
    let rect = canvas.get_bounding_client_rect();
    let scale_x = f64::from(canvas.width()) / rect.width().max(1.0);
    let scale_y = f64::from(canvas.height()) / rect.height().max(1.0);
    (
        (f64::from(event.client_x()) - rect.left()) * scale_x,
        (f64::from(event.client_y()) - rect.top()) * scale_y,
    )
}

/// Mean squared error per pixel between two images of equal size.
fn mean_squared_error(reconstruction: &[f32], target: &[f32]) -> f32 {
    let total: f32 = reconstruction.iter().zip(target).map(|(a, b)| (a - b) * (a - b)).sum();
    total / target.len().max(1) as f32
}
