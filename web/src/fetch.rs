//! Fetching of static files next to the page.

use js_sys::Uint8Array;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, RequestInit, Response};

/// Fetches `path`, relative to the page, and returns its bytes.
///
/// The error names the path and the HTTP status or network failure, so the page can show it.
pub async fn fetch_bytes(path: &str) -> Result<Vec<u8>, String> {
    Ok(Uint8Array::new(&fetch_buffer(path, None).await?).to_vec())
}

/// Fetches `path`, relative to the page, and returns its body as an `ArrayBuffer`, which stays
/// outside the wasm memory. Aborting `abort` cancels the download.
pub async fn fetch_buffer(path: &str, abort: Option<&AbortSignal>) -> Result<JsValue, String> {
    let response = fetch_response(path, abort).await?;
    let buffer = response
        .array_buffer()
        .map_err(|error| format!("{path}: reading the body failed ({})", describe(&error)))?;
    JsFuture::from(buffer)
        .await
        .map_err(|error| format!("{path}: reading the body failed ({})", describe(&error)))
}

async fn fetch_response(path: &str, abort: Option<&AbortSignal>) -> Result<Response, String> {
    let window = web_sys::window().ok_or("no window object")?;
    let init = RequestInit::new();
    init.set_signal(abort);
    let response = JsFuture::from(window.fetch_with_str_and_init(path, &init))
        .await
        .map_err(|error| format!("{path}: the request failed ({}); check the network and retry", describe(&error)))?;
    let response: Response = response
        .dyn_into()
        .map_err(|_| format!("{path}: the fetch did not return a response"))?;

    if !response.ok() {
        return Err(format!(
            "{path}: HTTP {} {}; check that the file is published next to the page (see the README) and retry",
            response.status(),
            response.status_text()
        ));
    }
    Ok(response)
}

/// Returns a short text for a JavaScript error value.
pub fn describe(error: &JsValue) -> String {
    if let Some(error) = error.dyn_ref::<js_sys::Error>() {
        return String::from(error.message());
    }
    error.as_string().unwrap_or_else(|| format!("{error:?}"))
}
