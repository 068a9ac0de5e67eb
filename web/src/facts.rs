//! The quality metrics of a part's models, from the weights manifest, with links to the model
//! cards.

use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::manifest::ModelEntry;

use crate::registry::Engines;

/// Lists one line per model: its headline metrics as `trainer eval` measured them and a link to
/// its card. The list stays empty until the manifest is loaded, and skips models without metrics.
#[component]
pub fn ModelFacts(
    /// The page's engines, whose manifest lists the metrics.
    engines: Engines,
    /// Manifest ids of the models to describe, such as `dcgan`.
    ids: &'static [&'static str],
    /// Element id of the list.
    id: &'static str,
) -> impl IntoView {
    let (lines, set_lines) = signal(Vec::<(String, Option<String>)>::new());
    spawn_local(async move {
        let Ok(manifest) = engines.manifest(&|_| {}).await else {
            return;
        };
        let found = ids
            .iter()
            .filter_map(|id| manifest.model(id).ok())
            .filter_map(|entry| summary(entry).map(|text| (text, entry.card.clone())))
            .collect();
        set_lines.set(found);
    });

    view! {
        <ul class="facts" id=id>
            {move || {
                lines
                    .get()
                    .into_iter()
                    .map(|(text, card)| {
                        view! {
                            <li>
                                {text}
                                {card.map(|card| view! { " · " <a href=format!("weights/{card}")>"model card"</a> })}
                            </li>
                        }
                    })
                    .collect_view()
            }}
        </ul>
    }
}

/// Returns the headline metrics of a manifest entry as one sentence, or `None` without metrics.
fn summary(entry: &ModelEntry) -> Option<String> {
    let metric = |name: &str| entry.metrics.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    let text = match entry.id.as_str() {
        "dcgan" | "cgan" => {
            let distance = metric("frechet_distance")?;
            let floor = metric("frechet_floor")?;
            let mut text = format!(
                "{}: Fréchet distance {distance:.1} to the test digits (training digits: {floor:.1})",
                entry.id
            );
            if let Some(accuracy) = metric("requested_digit_accuracy") {
                text.push_str(&format!(", {:.1} % read as the requested digit", 100.0 * accuracy));
            }
            text
        }
        "autoencoder" => format!("autoencoder: test MSE {:.4} per pixel", metric("test_mse")?),
        "vae" | "vae-2d" => format!(
            "{}: test negative ELBO {:.1} nats, importance-weighted bound {:.1} nats",
            entry.id,
            metric("test_negative_elbo_nats")?,
            metric("test_iw_bound_nats")?
        ),
        _ => return None,
    };
    Some(text)
}
