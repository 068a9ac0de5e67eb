//! Messages between the page and its compute workers.
//!
//! Every message is a JavaScript object `{ id, header, data }`. `id` pairs a reply with its
//! request, and `header` is a [`Request`] or [`Reply`] as JSON. `data` carries the numbers
//! without a detour through JSON: the weights bytes as a `Uint8Array`, pixels and latents as a
//! `Float32Array`. Id 0 is the worker's [`Reply::Ready`] or start-up failure.

use serde::{Deserialize, Serialize};
use wasm_bindgen::{JsCast, JsValue};

use crate::engine::{Backend, WeightsFile};

/// Id of the message a worker sends once it can take requests.
pub const READY_ID: u32 = 0;

/// Batch work a loaded model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Work {
    /// Generator input rows to images.
    Generate,
    /// Images through the autoencoder.
    Reconstruct,
    /// VAE latents to images.
    Decode,
    /// Images to VAE posterior means.
    EncodeMeans,
}

/// A request from the page to a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Loads the model of `file` on `backend` from the weights in `data`, replacing any model
    /// of that file loaded before.
    Load {
        /// The weights file.
        file: WeightsFile,
        /// The backend to run the model on.
        backend: Backend,
    },
    /// Runs `work` on `count` rows in `data` with the model of `file`.
    Run {
        /// The weights file whose model does the work.
        file: WeightsFile,
        /// The work.
        work: Work,
        /// Number of rows (images or latents) in `data`.
        count: usize,
    },
}

/// A worker's reply to a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The worker started and takes requests.
    Ready,
    /// The model is loaded and passed its warm-up.
    Loaded {
        /// Size of the latent (GANs, VAEs) or code (autoencoder).
        latent_dim: usize,
        /// Size of a generator input row; 0 for other models.
        input_dim: usize,
    },
    /// The work is done, and `data` contains the output values.
    Done,
    /// The request failed.
    Failed {
        /// Why, in words for the visitor.
        error: String,
    },
}

/// Builds the message object for `header` with an optional `data` array.
pub fn message(id: u32, header: &impl Serialize, data: Option<&JsValue>) -> Result<JsValue, String> {
    let header = serde_json::to_string(header).map_err(|error| format!("encoding a worker message failed: {error}"))?;
    let object = js_sys::Object::new();
    let set = |key: &str, value: &JsValue| js_sys::Reflect::set(&object, &JsValue::from_str(key), value);
    set("id", &JsValue::from(id))
        .and_then(|_| set("header", &JsValue::from_str(&header)))
        .and_then(|_| set("data", data.unwrap_or(&JsValue::UNDEFINED)))
        .map_err(|_| "building a worker message failed".to_string())?;
    Ok(object.into())
}

/// Splits a message object into its id, decoded header and data.
pub fn parse<T: for<'de> Deserialize<'de>>(message: &JsValue) -> Result<(u32, T, JsValue), String> {
    let get = |key: &str| js_sys::Reflect::get(message, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED);
    let id = get("id").as_f64().ok_or("a worker message has no id")? as u32;
    let header = get("header").as_string().ok_or("a worker message has no header")?;
    let header = serde_json::from_str(&header).map_err(|error| format!("a worker message has an invalid header ({error}): {header}"))?;
    Ok((id, header, get("data")))
}

/// Copies `data` into a vector of `f32`, checking that it is a `Float32Array`.
pub fn floats(data: &JsValue) -> Result<Vec<f32>, String> {
    data.dyn_ref::<js_sys::Float32Array>()
        .map(js_sys::Float32Array::to_vec)
        .ok_or_else(|| "a worker message carries no Float32Array".to_string())
}

/// Appends the values of `data` to `output`, checking that it is a `Float32Array`.
pub fn append_floats(data: &JsValue, output: &mut Vec<f32>) -> Result<(), String> {
    let array = data
        .dyn_ref::<js_sys::Float32Array>()
        .ok_or("a worker message carries no Float32Array")?;
    let start = output.len();
    output.resize(start + array.length() as usize, 0.0);
    array.copy_to(&mut output[start..]);
    Ok(())
}

/// Copies `data` into a vector of bytes, checking that it is a `Uint8Array`.
pub fn bytes(data: &JsValue) -> Result<Vec<u8>, String> {
    data.dyn_ref::<js_sys::Uint8Array>()
        .map(js_sys::Uint8Array::to_vec)
        .ok_or_else(|| "a worker message carries no Uint8Array".to_string())
}
