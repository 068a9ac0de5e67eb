//! Page-level helpers: URL parameters, the body state and drawing on a canvas.

use shared::grid::GrayImage;
use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, ImageData, UrlSearchParams};

/// Returns the value of the query parameter `name` in the page URL.
pub fn query(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    UrlSearchParams::new_with_str(&search).ok()?.get(name)
}

/// Sets the query parameter `name` in the page URL without reloading or adding history.
pub fn set_query(name: &str, value: &str) {
    let Some(window) = web_sys::window() else { return };
    let Ok(href) = window.location().href() else { return };
    let Ok(url) = web_sys::Url::new(&href) else { return };
    url.search_params().set(name, value);
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

/// Draws a grayscale picture on a canvas, scaled up by `zoom` with crisp pixels.
pub fn draw(canvas: &HtmlCanvasElement, picture: &GrayImage, zoom: u32) -> Result<(), String> {
    let width = picture.width as u32;
    let height = picture.height as u32;
    canvas.set_width(width * zoom);
    canvas.set_height(height * zoom);

    let context: CanvasRenderingContext2d = canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|context| context.dyn_into().ok())
        .ok_or("the canvas has no 2D context")?;
    let rgba = picture.to_rgba();
    let image = ImageData::new_with_u8_clamped_array_and_sh(Clamped(&rgba), width, height)
        .map_err(|_| "failed to create the image data")?;

    // Draw at 1:1 on a scratch canvas, then scale without smoothing.
    let document = web_sys::window().and_then(|w| w.document()).ok_or("no document")?;
    let scratch: HtmlCanvasElement = document
        .create_element("canvas")
        .map_err(|_| "failed to create a canvas")?
        .dyn_into()
        .map_err(|_| "failed to create a canvas")?;
    scratch.set_width(width);
    scratch.set_height(height);
    let scratch_context: CanvasRenderingContext2d = scratch
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|context| context.dyn_into().ok())
        .ok_or("the canvas has no 2D context")?;
    scratch_context
        .put_image_data(&image, 0.0, 0.0)
        .map_err(|_| "failed to draw the image data")?;

    context.set_image_smoothing_enabled(false);
    context
        .draw_image_with_html_canvas_element_and_dw_and_dh(
            &scratch,
            0.0,
            0.0,
            f64::from(width * zoom),
            f64::from(height * zoom),
        )
        .map_err(|_| "failed to scale the grid".to_string())
}
