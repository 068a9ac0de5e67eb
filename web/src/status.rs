//! The state of each part of the page, its `data-state` value and the error box with Retry.

use leptos::prelude::*;

/// State of one part's work.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Nothing started yet, because the part has not been shown.
    Idle,
    /// Models or data are loading, with a description.
    Loading(String),
    /// The part is updating its pictures after the visitor's input.
    Busy,
    /// The part shows up-to-date pictures.
    Ready,
    /// A failure, with a message that names it and the next step.
    Failed(String),
}

impl Status {
    /// Value of `data-state`: `idle`, `loading`, `busy`, `ready` or `error`.
    pub fn id(&self) -> &'static str {
        match self {
            Status::Idle => "idle",
            Status::Loading(_) => "loading",
            Status::Busy => "busy",
            Status::Ready => "ready",
            Status::Failed(_) => "error",
        }
    }

    /// Returns whether models or data are loading.
    pub fn is_loading(&self) -> bool {
        matches!(self, Status::Loading(_))
    }

    /// Returns the failure message, if any.
    pub fn failure(&self) -> Option<String> {
        match self {
            Status::Failed(message) => Some(message.clone()),
            _ => None,
        }
    }

    /// Returns the description of the loading step, if any.
    pub fn progress(&self) -> Option<String> {
        match self {
            Status::Loading(what) => Some(what.clone()),
            _ => None,
        }
    }
}

/// Renders an alert with the failure message of `status` and a Retry button, only on failure.
#[component]
pub fn ErrorBox(
    /// The part's status; the box shows while it is [`Status::Failed`].
    status: ReadSignal<Status>,
    /// `id` of the alert element.
    id: &'static str,
    /// `id` of the Retry button.
    retry_id: &'static str,
    /// Runs when the visitor presses Retry.
    on_retry: Callback<()>,
) -> impl IntoView {
    view! {
        <Show when=move || status.with(|status| status.failure().is_some())>
            <div id=id class="error" role="alert">
                <p>{move || status.with(Status::failure).unwrap_or_default()}</p>
                <button id=retry_id on:click=move |_| on_retry.run(())>
                    "Retry"
                </button>
            </div>
        </Show>
    }
}
