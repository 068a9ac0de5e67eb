//! The page: a backend menu, three tabs and the part each tab shows.

use leptos::prelude::*;

use crate::draw::DrawPart;
use crate::engine::Backend;
use crate::generate::GeneratePart;
use crate::latent::LatentPart;
use crate::page::{query, random_seed, set_body_state, set_query};
use crate::registry::{BackendSwitch, Engines};
use crate::status::Status;

/// A tab of the page, each showing one part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    /// Grids of GAN digits.
    Generate,
    /// Drawing a digit for the autoencoder.
    Draw,
    /// The VAE's samples, interpolations and latent map.
    Latent,
}

impl Tab {
    /// All tabs, in page order.
    pub const ALL: [Tab; 3] = [Tab::Generate, Tab::Draw, Tab::Latent];

    /// Identifier used in the URL (`?tab=`) and in element ids.
    pub fn id(self) -> &'static str {
        match self {
            Tab::Generate => "generate",
            Tab::Draw => "draw",
            Tab::Latent => "latent",
        }
    }

    /// Parses an identifier from [`Tab::id`].
    pub fn from_id(id: &str) -> Option<Self> {
        Tab::ALL.into_iter().find(|tab| tab.id() == id)
    }

    /// Label of the tab button.
    pub fn label(self) -> &'static str {
        match self {
            Tab::Generate => "Generate",
            Tab::Draw => "Draw",
            Tab::Latent => "Latent space",
        }
    }
}

/// The digits page. `data-state` on the body is the state of the shown part, so tests can wait
/// on it whatever the tab.
#[component]
pub fn App() -> impl IntoView {
    let engines = Engines::new(query("backend").and_then(|id| Backend::from_id(&id)));
    let initial_tab = query("tab").and_then(|id| Tab::from_id(&id)).unwrap_or(Tab::Generate);
    let (tab, set_tab) = signal(initial_tab);
    let initial_seed = query("seed").and_then(|s| s.parse::<u64>().ok()).unwrap_or_else(random_seed);
    set_query("seed", &initial_seed.to_string());
    let (seed, set_seed) = signal(initial_seed);
    let (switch, set_switch) = signal(None::<BackendSwitch>);
    let (drawing, set_drawing) = signal(None::<Vec<f32>>);
    let (generate_status, set_generate_status) = signal(Status::Idle);
    let (draw_status, set_draw_status) = signal(Status::Idle);
    let (latent_status, set_latent_status) = signal(Status::Idle);

    let shown_status = move || match tab.get() {
        Tab::Generate => generate_status.get(),
        Tab::Draw => draw_status.get(),
        Tab::Latent => latent_status.get(),
    };
    Effect::new(move || set_body_state(shown_status().id()));

    let on_backend = move |event| {
        let Some(choice) = Backend::from_id(&event_target_value(&event)) else { return };
        engines.choose(choice);
        set_query("backend", choice.id());
        let serial = switch.get_untracked().map_or(1, |last| last.serial + 1);
        set_switch.set(Some(BackendSwitch { serial, backend: choice }));
    };
    let visible = move |part: Tab| Signal::derive(move || tab.get() == part);

    view! {
        <main>
            <h1>"Handwritten digits, generated in your browser"</h1>
            <p class="lead">
                "Models trained on MNIST with Burn run on your own machine, on WebGPU or on the CPU."
            </p>
            <div class="controls">
                <label>
                    "Backend "
                    <select
                        id="backend-select"
                        on:change=on_backend
                        disabled=move || shown_status().is_loading()
                        prop:value=move || engines.backend.get().map_or("", Backend::id)
                    >
                        <option value="webgpu">"WebGPU"</option>
                        <option value="cpu">"CPU (burn-flex)"</option>
                    </select>
                </label>
                <span class="status">
                    "Running on "
                    <span id="backend" data-backend=move || engines.backend.get().map_or("", Backend::id)>
                        {move || match engines.backend.get() {
                            Some(backend) => backend.label(),
                            None if shown_status().failure().is_some() => "no model loaded (see the error below)",
                            None => "starting…",
                        }}
                    </span>
                </span>
            </div>
            <p id="notice" class="notice">{move || engines.notice.get()}</p>
            <nav class="tabs" role="tablist">
                {Tab::ALL
                    .into_iter()
                    .map(|choice| {
                        view! {
                            <button
                                id=format!("tab-{}", choice.id())
                                role="tab"
                                aria-selected=move || (tab.get() == choice).to_string()
                                on:click=move |_| {
                                    set_query("tab", choice.id());
                                    set_tab.set(choice);
                                }
                            >
                                {choice.label()}
                            </button>
                        }
                    })
                    .collect_view()}
            </nav>
            <div role="tabpanel" class:hidden=move || tab.get() != Tab::Generate>
                <GeneratePart
                    engines=engines
                    visible=visible(Tab::Generate)
                    seed=seed
                    set_seed=set_seed
                    switch=switch
                    status=generate_status
                    set_status=set_generate_status
                />
            </div>
            <div role="tabpanel" class:hidden=move || tab.get() != Tab::Draw>
                <DrawPart
                    engines=engines
                    visible=visible(Tab::Draw)
                    switch=switch
                    status=draw_status
                    set_status=set_draw_status
                    set_model_input=set_drawing
                />
            </div>
            <div role="tabpanel" class:hidden=move || tab.get() != Tab::Latent>
                <LatentPart
                    engines=engines
                    visible=visible(Tab::Latent)
                    seed=seed
                    set_seed=set_seed
                    switch=switch
                    drawing=drawing
                    status=latent_status
                    set_status=set_latent_status
                />
            </div>
        </main>
    }
}
