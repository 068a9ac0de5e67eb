//! Page-level helpers: URL parameters, the body state, timers and drawing on a canvas.

use shared::grid::GrayImage;
use wasm_bindgen::{Clamped, JsCast};
use wasm_bindgen_futures::JsFuture;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, ImageData, UrlSearchParams};

/// Returns the value of the query parameter `name` in the page URL.
pub fn query(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    UrlSearchParams::new_with_str(&search).ok()?.get(name)
}

/// Sets the query parameter `name` in the page URL without reloading or adding history.
pub fn set_query(name: &str, value: &str) {
    update_query(|params| params.set(name, value));
}

/// Removes the query parameter `name` from the page URL without reloading or adding history.
pub fn remove_query(name: &str) {
    update_query(|params| params.delete(name));
}

fn update_query(change: impl FnOnce(&UrlSearchParams)) {
    let Some(window) = web_sys::window() else { return };
    let Ok(href) = window.location().href() else { return };
    let Ok(url) = web_sys::Url::new(&href) else { return };
    change(&url.search_params());
    if let Ok(history) = window.history() {
        let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url.href()));
    }
}

/// Sets `data-state` on the body, which the browser tests wait on.
pub fn set_body_state(state: &str) {
    if let Some(body) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.body()) {
        let _ = body.set_attribute("data-state", state);
    }
}

/// Returns a random seed for the latents.
pub fn random_seed() -> u64 {
    (js_sys::Math::random() * 1e9) as u64
}

/// Waits `millis` milliseconds on a browser timer without blocking the page.
pub async fn sleep(millis: f64) {
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, millis.max(0.0) as i32);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// Returns the 2D context of a canvas.
pub fn context_2d(canvas: &HtmlCanvasElement) -> Result<CanvasRenderingContext2d, String> {
    canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|context| context.dyn_into().ok())
        .ok_or_else(|| "the canvas has no 2D context".to_string())
}

/// Returns a new off-screen canvas with `picture` drawn on it at 1:1.
pub fn picture_canvas(picture: &GrayImage) -> Result<HtmlCanvasElement, String> {
    let width = picture.width as u32;
    let height = picture.height as u32;
    let rgba = picture.to_rgba();
    let image = ImageData::new_with_u8_clamped_array_and_sh(Clamped(&rgba), width, height)
        .map_err(|_| "failed to create the image data")?;

    let document = web_sys::window().and_then(|w| w.document()).ok_or("no document")?;
    let scratch: HtmlCanvasElement = document
        .create_element("canvas")
        .map_err(|_| "failed to create a canvas")?
        .dyn_into()
        .map_err(|_| "failed to create a canvas")?;
    scratch.set_width(width);
    scratch.set_height(height);
    context_2d(&scratch)?
        .put_image_data(&image, 0.0, 0.0)
        .map_err(|_| "failed to draw the image data")?;
    Ok(scratch)
}

/// Draws a grayscale picture on a canvas, scaled up by `zoom` with crisp pixels.
pub fn draw(canvas: &HtmlCanvasElement, picture: &GrayImage, zoom: u32) -> Result<(), String> {
    let width = picture.width as u32;
    let height = picture.height as u32;
    canvas.set_width(width * zoom);
    canvas.set_height(height * zoom);

    let context = context_2d(canvas)?;
    let scratch = picture_canvas(picture)?;
    context.set_image_smoothing_enabled(false);
    context
        .draw_image_with_html_canvas_element_and_dw_and_dh(
            &scratch,
            0.0,
            0.0,
            f64::from(width * zoom),
            f64::from(height * zoom),
        )
        .map_err(|_| "failed to scale the picture".to_string())
}

/// Sizes a canvas to `width × height` and fills it with black, the background of every picture.
pub fn blank(canvas: &HtmlCanvasElement, width: u32, height: u32) -> Result<(), String> {
    canvas.set_width(width);
    canvas.set_height(height);
    let context = context_2d(canvas)?;
    context.set_fill_style_str("#000");
    context.fill_rect(0.0, 0.0, f64::from(width), f64::from(height));
    Ok(())
}
