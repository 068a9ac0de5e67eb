//! The page's views: which model runs and which inputs make up the grid.

use shared::cgan::{conditional_inputs, digit_rows};
use shared::latent::{interpolate, normal_latents};

use crate::engine::WeightsFile;

/// Digits per grid row.
pub const GRID_COLUMNS: usize = 8;

/// Content of the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// 64 random digits from the DCGAN.
    Random,
    /// 64 digits of the chosen class from the conditional GAN.
    Digit,
    /// One row per digit 0-9 from the conditional GAN; each column keeps one latent (style).
    Rows,
    /// 64 steps between two latents, for the chosen digit, from the conditional GAN.
    Interpolate,
}

impl View {
    /// All views, in menu order.
    pub const ALL: [View; 4] = [View::Random, View::Digit, View::Rows, View::Interpolate];

    /// Identifier used in the URL (`?view=`) and the view menu.
    pub fn id(self) -> &'static str {
        match self {
            View::Random => "dcgan",
            View::Digit => "digit",
            View::Rows => "rows",
            View::Interpolate => "interpolate",
        }
    }

    /// Parses an identifier from [`View::id`].
    pub fn from_id(id: &str) -> Option<Self> {
        View::ALL.into_iter().find(|view| view.id() == id)
    }

    /// Label shown in the view menu.
    pub fn label(self) -> &'static str {
        match self {
            View::Random => "Random digits (DCGAN)",
            View::Digit => "A chosen digit (conditional GAN)",
            View::Rows => "One row per digit, same styles (conditional GAN)",
            View::Interpolate => "Interpolation for a chosen digit (conditional GAN)",
        }
    }

    /// Returns the weights file of the model this view runs.
    pub fn file(self) -> WeightsFile {
        match self {
            View::Random => WeightsFile::Dcgan,
            _ => WeightsFile::Cgan,
        }
    }

    /// Returns whether the view uses the chosen digit.
    pub fn uses_digit(self) -> bool {
        matches!(self, View::Digit | View::Interpolate)
    }

    /// Returns the generator input rows of this view and their count.
    ///
    /// `seed` fixes the latents, so the same seed, view and digit give the same grid on every
    /// backend.
    pub fn inputs(self, seed: u64, digit: u32, latent_dim: usize) -> Result<(Vec<f32>, usize), String> {
        let count = GRID_COLUMNS * GRID_COLUMNS;
        match self {
            View::Random => Ok((normal_latents(seed, count, latent_dim), count)),
            View::Digit => {
                let rows = conditional_inputs(&normal_latents(seed, count, latent_dim), latent_dim, &vec![digit; count])
                    .map_err(|error| error.to_string())?;
                Ok((rows, count))
            }
            View::Rows => {
                let styles = normal_latents(seed, GRID_COLUMNS, latent_dim);
                Ok((digit_rows(&styles, latent_dim), GRID_COLUMNS * shared::NUM_CLASSES))
            }
            View::Interpolate => {
                let ends = normal_latents(seed, 2, latent_dim);
                let path = interpolate(&ends[..latent_dim], &ends[latent_dim..], count);
                let rows = conditional_inputs(&path, latent_dim, &vec![digit; count]).map_err(|error| error.to_string())?;
                Ok((rows, count))
            }
        }
    }
}
