//! The compute worker: a dedicated web worker that loads models and runs their batches off the
//! page's thread. The page sends it the messages of [`crate::protocol`], and `web/worker.js`
//! starts it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::engine::{Engine, WeightsFile};
use crate::protocol::{self, READY_ID, Reply, Request, Work};

thread_local! {
    /// The loaded models, one per weights file.
    static ENGINES: RefCell<HashMap<WeightsFile, Rc<Engine>>> = RefCell::new(HashMap::new());
}

/// Takes requests from the page until the worker ends. Call it from the worker binary's `main`.
pub fn serve() {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        wasm_bindgen_futures::spawn_local(handle(event.data()));
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The handler lives as long as the worker.
    on_message.forget();

    post(READY_ID, &Reply::Ready, None);
}

async fn handle(message: JsValue) {
    let (id, reply, data) = match protocol::parse::<Request>(&message) {
        Ok((id, request, data)) => match answer(request, &data).await {
            Ok((reply, output)) => (id, reply, output),
            Err(error) => (id, Reply::Failed { error }, None),
        },
        // No request waits for a reply without a readable id, so the console is the only place
        // this error shows.
        Err(error) => {
            web_sys::console::error_1(&JsValue::from_str(&format!("worker: unreadable request: {error}")));
            return;
        }
    };
    post(id, &reply, data.as_ref());
}

async fn answer(request: Request, data: &JsValue) -> Result<(Reply, Option<JsValue>), String> {
    match request {
        Request::Load { file, backend } => {
            let weights = protocol::bytes(data)?;
            let engine = Engine::load(backend, file, &weights).await?;
            let reply = Reply::Loaded {
                latent_dim: engine.latent_dim,
                input_dim: engine.input_dim(),
            };
            ENGINES.with(|engines| engines.borrow_mut().insert(file, engine));
            Ok((reply, None))
        }
        Request::Run { file, work, count } => {
            let engine = ENGINES
                .with(|engines| engines.borrow().get(&file).cloned())
                .ok_or_else(|| format!("{} is not loaded in this worker; retry to load it again", file.path()))?;
            let input = protocol::floats(data)?;
            let output = match work {
                Work::Generate => engine.generate(input, count).await?.pixels,
                Work::Reconstruct => engine.reconstruct(input, count).await?.pixels,
                Work::Decode => engine.decode(input, count).await?.pixels,
                Work::EncodeMeans => engine.encode_means(input, count).await?,
            };
            Ok((Reply::Done, Some(js_sys::Float32Array::from(output.as_slice()).into())))
        }
    }
}

/// Sends `reply` to the page, moving the buffer of `data` instead of copying it.
fn post(id: u32, reply: &Reply, data: Option<&JsValue>) {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let message = match protocol::message(id, reply, data) {
        Ok(message) => message,
        Err(error) => {
            web_sys::console::error_1(&JsValue::from_str(&error));
            return;
        }
    };
    let transfer = js_sys::Array::new();
    if let Some(array) = data.and_then(|data| data.dyn_ref::<js_sys::Float32Array>()) {
        transfer.push(&array.buffer());
    }
    if let Err(error) = scope.post_message_with_transfer(&message, &transfer) {
        web_sys::console::error_2(&JsValue::from_str("posting a reply to the page failed:"), &error);
    }
}
