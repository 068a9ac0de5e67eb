//! The map of a 2-D VAE's latent space: decoded digits laid out on equal-probability steps, the
//! digit under the pointer enlarged, and the visitor's drawing marked where it encodes.

use leptos::html::Canvas;
use leptos::prelude::*;
use shared::grid::{GrayImage, PixelRange, tile};
use shared::vae::{latent_map, normal_quantile};
use web_sys::{HtmlCanvasElement, PointerEvent};

use crate::engine::WeightsFile;
use crate::page::{blank, context_2d, draw};
use crate::registry::Engines;
use crate::status::Status;
use crate::throttle::Throttle;

/// Cells per side of the map.
pub const MAP_SIDE: usize = 16;

/// Screen pixels per image pixel of the enlarged digit under the pointer.
const PROBE_ZOOM: u32 = 6;

/// Shortest time between two decodes while the pointer moves, in milliseconds.
const PROBE_INTERVAL_MS: f64 = 100.0;

/// Smallest and largest fraction of the map a pointer position maps to, so the map edge
/// decodes the latent at about ±3.1 standard deviations instead of ±∞.
const EDGE_FRACTION: f64 = 1e-3;

/// Returns the latents of the map cells, [`MAP_SIDE`]² rows of 2, as [`latent_map`] lays them
/// out: row by row from the top, the first coordinate growing to the right and the second
/// upwards.
pub fn map_latents() -> Vec<f32> {
    latent_map(MAP_SIDE)
}

/// Tiles the decoded map cells without gaps.
pub fn map_picture(pixels: &[f32]) -> GrayImage {
    tile(pixels, PixelRange::Unit, MAP_SIDE, 0)
}

/// Returns the latent at a map position given as fractions of the map's width and height from
/// its top-left corner. The inverse of [`map_position`], and consistent with [`latent_map`]:
/// the centre of cell (column c, row r) maps to that cell's latent.
pub fn latent_at(x_fraction: f64, y_fraction: f64) -> [f32; 2] {
    let clamp = |fraction: f64| fraction.clamp(EDGE_FRACTION, 1.0 - EDGE_FRACTION);
    [
        normal_quantile(clamp(x_fraction)) as f32,
        normal_quantile(clamp(1.0 - y_fraction)) as f32,
    ]
}

/// Returns the map position of a latent as fractions of the map's width and height from its
/// top-left corner: the standard normal CDF of each coordinate, with the second one flipped
/// because it grows upwards.
pub fn map_position(latent: [f32; 2]) -> (f64, f64) {
    (normal_cdf(f64::from(latent[0])), 1.0 - normal_cdf(f64::from(latent[1])))
}

/// Standard normal cumulative distribution function, from `libm::erfc`.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// A decoded latent under the pointer.
#[derive(Debug, Clone, PartialEq)]
struct Probe {
    latent: [f32; 2],
    /// 784 pixels in `[0, 1]`.
    pixels: Vec<f32>,
}

/// Renders the latent map with the enlarged digit under the pointer and the marker of the
/// drawing.
#[component]
pub fn LatentMap(
    /// The page's engines; the map decodes with `weights/vae-2d.bin`.
    engines: Engines,
    /// The decoded map, once loaded.
    map: ReadSignal<Option<GrayImage>>,
    /// The model input of the visitor's drawing, from the Draw part.
    drawing: ReadSignal<Option<Vec<f32>>>,
    /// Whether the part is shown; the drawing is encoded only then.
    #[prop(into)]
    visible: Signal<bool>,
    /// Sets the part's status, on a failure.
    set_status: WriteSignal<Status>,
) -> impl IntoView {
    let (probe, set_probe) = signal(None::<Probe>);
    let (marker, set_marker) = signal(None::<[f32; 2]>);
    let map_canvas = NodeRef::<Canvas>::new();
    let probe_canvas = NodeRef::<Canvas>::new();
    let pointer_latent = StoredValue::new(None::<[f32; 2]>);

    let probes = Throttle::new(PROBE_INTERVAL_MS, move || async move {
        let Some(latent) = pointer_latent.get_value() else { return };
        let progress = |_: String| {};
        let result = engines
            .run(WeightsFile::Vae2d, None, progress, |engine| async move { engine.decode(latent.to_vec(), 1).await })
            .await;
        match result {
            Ok(batch) => set_probe.set(Some(Probe {
                latent,
                pixels: batch.pixels,
            })),
            Err(error) => set_status.set(Status::Failed(error)),
        }
    });

    let markers = Throttle::new(PROBE_INTERVAL_MS, move || async move {
        let Some(pixels) = drawing.get_untracked() else {
            set_marker.set(None);
            return;
        };
        let progress = |_: String| {};
        let result = engines
            .run(WeightsFile::Vae2d, None, progress, |engine| {
                let pixels = pixels.clone();
                async move { engine.encode_means(pixels, 1).await }
            })
            .await;
        match result {
            Ok(means) if means.len() == 2 => set_marker.set(Some([means[0], means[1]])),
            Ok(means) => set_status.set(Status::Failed(format!(
                "weights/vae-2d.bin: the encoder returned {} values, expected 2",
                means.len()
            ))),
            Err(error) => set_status.set(Status::Failed(error)),
        }
    });

    // Encode the drawing once the map is loaded and shown, and again whenever it changes.
    Effect::new(move || {
        drawing.track();
        if visible.get() && map.with(Option::is_some) {
            markers.request();
        }
    });

    Effect::new(move || {
        let Some(canvas) = map_canvas.get() else { return };
        let drawn = map.with(|picture| match picture {
            Some(picture) => draw(&canvas, picture, 1).and_then(|()| match marker.get() {
                Some(latent) => draw_marker(&canvas, map_position(latent)),
                None => Ok(()),
            }),
            None => {
                let side = (MAP_SIDE * shared::IMAGE_SIDE) as u32;
                blank(&canvas, side, side)
            }
        });
        if let Err(error) = drawn {
            set_status.set(Status::Failed(error));
        }
    });

    Effect::new(move || {
        let Some(canvas) = probe_canvas.get() else { return };
        let shown = probe.with(|probe| match probe {
            Some(probe) => draw(&canvas, &tile(&probe.pixels, PixelRange::Unit, 1, 0), PROBE_ZOOM),
            None => {
                let side = shared::IMAGE_SIDE as u32 * PROBE_ZOOM;
                blank(&canvas, side, side)
            }
        });
        if let Err(error) = shown {
            set_status.set(Status::Failed(error));
        }
    });

    let on_pointer = move |event: PointerEvent| {
        if map.with_untracked(Option::is_none) {
            return;
        }
        let Some(canvas) = map_canvas.get_untracked() else { return };
        pointer_latent.set_value(Some(pointer_latent_of(&canvas, &event)));
        probes.request();
    };

    let format_latent = |latent: [f32; 2]| format!("{:.4},{:.4}", latent[0], latent[1]);

    view! {
        <div class="map-row">
            <figure>
                <canvas
                    id="latent-map"
                    class="map"
                    node_ref=map_canvas
                    aria-label="Digits decoded across the 2-D latent space; move the pointer over it"
                    on:pointermove=on_pointer
                    on:pointerdown=on_pointer
                ></canvas>
                <figcaption>
                    "2-D latent space: left to right and bottom to top, each cell holds the same prior probability"
                </figcaption>
            </figure>
            <figure class="probe">
                <canvas
                    id="latent-probe"
                    class="preview"
                    node_ref=probe_canvas
                    aria-label="The digit decoded under the pointer"
                    data-state=move || if probes.busy.get() { "busy" } else { "ready" }
                    data-latent=move || probe.with(|p| p.as_ref().map(|p| format_latent(p.latent)))
                ></canvas>
                <figcaption>
                    {move || {
                        probe
                            .with(|p| p.as_ref().map(|p| format!("z = ({:.2}, {:.2})", p.latent[0], p.latent[1])))
                            .unwrap_or_else(|| "Move the pointer over the map".to_string())
                    }}
                </figcaption>
                <p
                    id="latent-marker"
                    data-latent=move || marker.get().map(format_latent)
                    data-position=move || {
                        marker
                            .get()
                            .map(|latent| {
                                let (x, y) = map_position(latent);
                                format!("{x:.4},{y:.4}")
                            })
                    }
                >
                    {move || match marker.get() {
                        Some(latent) => {
                            format!("Your drawing (red cross) encodes to z = ({:.2}, {:.2}).", latent[0], latent[1])
                        }
                        None => "Draw a digit in the Draw tab to see where it lands on the map.".to_string(),
                    }}
                </p>
            </figure>
        </div>
    }
}

/// Returns the latent under the pointer on the map canvas.
fn pointer_latent_of(canvas: &HtmlCanvasElement, event: &PointerEvent) -> [f32; 2] {
    let rect = canvas.get_bounding_client_rect();
    let x = (f64::from(event.client_x()) - rect.left()) / rect.width().max(1.0);
    let y = (f64::from(event.client_y()) - rect.top()) / rect.height().max(1.0);
    latent_at(x, y)
}

/// Draws a red cross in a circle at a map position given as fractions of the canvas size.
fn draw_marker(canvas: &HtmlCanvasElement, (x, y): (f64, f64)) -> Result<(), String> {
    let context = context_2d(canvas)?;
    let x = x * f64::from(canvas.width());
    let y = y * f64::from(canvas.height());
    let radius = 9.0;

    context.set_stroke_style_str("#ff3b30");
    context.set_line_width(2.5);
    context.begin_path();
    context
        .arc(x, y, radius, 0.0, std::f64::consts::TAU)
        .map_err(|_| "drawing the marker failed".to_string())?;
    context.move_to(x - 2.0 * radius, y);
    context.line_to(x + 2.0 * radius, y);
    context.move_to(x, y - 2.0 * radius);
    context.line_to(x, y + 2.0 * radius);
    context.stroke();
    Ok(())
}
