//! Conversion of a drawing on a canvas into the 28×28 input of the MNIST models.
//!
//! The steps repeat how the MNIST digits were made, as the database's description states
//! (quoted at <https://labelbox.com/datasets/mnist-database/>). The drawing is cropped to the
//! bounding box of its ink and scaled so that its longer side is 20 px, keeping the aspect
//! ratio, with anti-aliasing. It is then placed in a 28×28 image so that its intensity-weighted
//! centre of mass lands at the image centre.
//!
//! Scaling uses area averaging (a box filter): each output pixel is the mean of the source over
//! the square it covers, with source pixels that straddle its edge counted by the fraction that
//! lies inside. Thin strokes therefore become grey instead of vanishing or turning jagged, as
//! they would with nearest-neighbour sampling.

use crate::{IMAGE_PIXELS, IMAGE_SIDE};

/// Ink below this value counts as background when finding the bounding box.
///
/// At 0.05 (about 13 of 255 grey levels) the faint halo that a canvas brush's anti-aliasing
/// leaves around a stroke, and near-black noise, do not widen the box, while any stroke a
/// visitor draws on purpose (close to 1) does. Values below the threshold inside the box are
/// kept, so the edges of strokes stay smooth.
pub const INK_THRESHOLD: f32 = 0.05;

/// Side of the square that the cropped drawing is scaled to fit, in pixels, as in MNIST.
const FIT_SIDE: usize = 20;

/// Target of the centre of mass in pixel coordinates, where pixel `x` spans `[x, x + 1)`: the
/// middle of pixel 14, where MNIST put it. The mean over the 768 digits in
/// `tests/fixtures/mnist` is (14.52, 14.49) in these coordinates.
const IMAGE_CENTRE: f64 = IMAGE_SIDE as f64 / 2.0 + 0.5;

/// Error for inputs whose size disagrees with the stated width and height.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreprocessError {
    /// The input slice does not contain `width × height × values_per_pixel` values.
    #[error(
        "input has {actual} values, but a {width}x{height} image with {values_per_pixel} values per pixel needs {expected}"
    )]
    SizeMismatch {
        /// Image width in pixels.
        width: usize,
        /// Image height in pixels.
        height: usize,
        /// Values per pixel: 1 for ink, 4 for RGBA bytes.
        values_per_pixel: usize,
        /// Length the width and height imply.
        expected: usize,
        /// Length of the slice passed.
        actual: usize,
    },
    /// The width or the height is zero.
    #[error("image is {width}x{height}, but width and height must both be at least 1")]
    EmptyImage {
        /// Image width in pixels.
        width: usize,
        /// Image height in pixels.
        height: usize,
    },
    /// The width and height multiply to more values than a slice can address.
    #[error("image of {width}x{height} pixels is too large to address")]
    TooLarge {
        /// Image width in pixels.
        width: usize,
        /// Image height in pixels.
        height: usize,
    },
}

/// Smallest axis-aligned rectangle that contains every pixel with ink above [`INK_THRESHOLD`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundingBox {
    /// Column of the leftmost ink pixel.
    pub left: usize,
    /// Row of the topmost ink pixel.
    pub top: usize,
    /// Number of columns from the leftmost to the rightmost ink pixel, inclusive.
    pub width: usize,
    /// Number of rows from the topmost to the bottommost ink pixel, inclusive.
    pub height: usize,
}

/// Converts canvas RGBA bytes (row-major, 4 bytes per pixel) to ink values in [0, 1].
///
/// The ink is the luminance (0.299 R + 0.587 G + 0.114 B) / 255 times alpha / 255, so white
/// strokes on a black or transparent canvas are ink. The colour bytes are taken as they are,
/// not as premultiplied by alpha.
///
/// # Errors
///
/// Returns [`PreprocessError`] when `width` or `height` is zero, or when `rgba` does not
/// contain exactly `width × height × 4` bytes.
pub fn ink_from_rgba(
    rgba: &[u8],
    width: usize,
    height: usize,
) -> Result<Vec<f32>, PreprocessError> {
    check_size(rgba.len(), width, height, 4)?;

    let ink = rgba
        .chunks_exact(4)
        .map(|pixel| {
            let [red, green, blue, alpha] = [pixel[0], pixel[1], pixel[2], pixel[3]].map(f32::from);
            let luminance = (0.299 * red + 0.587 * green + 0.114 * blue) / 255.0;
            (luminance * alpha / 255.0).clamp(0.0, 1.0)
        })
        .collect();
    Ok(ink)
}

/// Returns the 28×28 model input (784 values in [0, 1], row-major) for a drawing of
/// `width × height` ink values in [0, 1], or `None` when nothing is drawn (no value above
/// [`INK_THRESHOLD`]).
///
/// The drawing is cropped to its [`bounding_box`], scaled by area averaging so that its longer
/// side is 20 px, and shifted by whole pixels so that its [`centre_of_mass`] lies within half a
/// pixel of (14, 14). The shift is clamped so that no ink falls off the image, which for a
/// drawing whose mass sits far to one side of its box can leave the centre of mass further
/// away. Contrast is not renormalised, so a drawing in pale ink stays pale.
///
/// Values above 1 count as 1, and NaN and values below 0 count as 0.
///
/// # Errors
///
/// Returns [`PreprocessError`] when `width` or `height` is zero, or when `ink` does not
/// contain exactly `width × height` values.
pub fn mnist_input(
    ink: &[f32],
    width: usize,
    height: usize,
) -> Result<Option<Vec<f32>>, PreprocessError> {
    let Some(bounds) = bounding_box(ink, width, height)? else {
        return Ok(None);
    };

    let (fitted, fitted_width, fitted_height) = resample_to_fit(ink, width, bounds);

    Ok(Some(place_centred(&fitted, fitted_width, fitted_height)))
}

/// Finds the [`BoundingBox`] of the values above [`INK_THRESHOLD`], or `None` when there are
/// none. NaN counts as background.
///
/// # Errors
///
/// Returns [`PreprocessError`] when `width` or `height` is zero, or when `ink` does not
/// contain exactly `width × height` values.
pub fn bounding_box(
    ink: &[f32],
    width: usize,
    height: usize,
) -> Result<Option<BoundingBox>, PreprocessError> {
    check_size(ink.len(), width, height, 1)?;

    let mut left = usize::MAX;
    let mut right = 0;
    let mut top = usize::MAX;
    let mut bottom = 0;
    for (y, row) in ink.chunks_exact(width).enumerate() {
        for (x, &value) in row.iter().enumerate() {
            if value > INK_THRESHOLD {
                left = left.min(x);
                right = right.max(x);
                top = top.min(y);
                bottom = bottom.max(y);
            }
        }
    }

    if left == usize::MAX {
        return Ok(None);
    }
    Ok(Some(BoundingBox {
        left,
        top,
        width: right - left + 1,
        height: bottom - top + 1,
    }))
}

/// Computes the intensity-weighted centre of mass `(x, y)` of an image, where pixel `x` spans
/// `[x, x + 1)`, so a single lit pixel at column 3 has its centre at 3.5. Returns `None` when
/// the total ink is zero.
///
/// Values are clamped to [0, 1] and NaN counts as 0, as in [`mnist_input`].
///
/// # Errors
///
/// Returns [`PreprocessError`] when `width` or `height` is zero, or when `ink` does not
/// contain exactly `width × height` values.
pub fn centre_of_mass(
    ink: &[f32],
    width: usize,
    height: usize,
) -> Result<Option<(f64, f64)>, PreprocessError> {
    check_size(ink.len(), width, height, 1)?;

    let mut mass = 0.0;
    let mut moment_x = 0.0;
    let mut moment_y = 0.0;
    for (y, row) in ink.chunks_exact(width).enumerate() {
        for (x, &value) in row.iter().enumerate() {
            let value = f64::from(sanitize(value));
            mass += value;
            moment_x += value * (x as f64 + 0.5);
            moment_y += value * (y as f64 + 0.5);
        }
    }

    if mass <= 0.0 {
        return Ok(None);
    }
    Ok(Some((moment_x / mass, moment_y / mass)))
}

/// Checks that a slice of `len` values describes a `width × height` image with
/// `values_per_pixel` values per pixel.
fn check_size(
    len: usize,
    width: usize,
    height: usize,
    values_per_pixel: usize,
) -> Result<(), PreprocessError> {
    if width == 0 || height == 0 {
        return Err(PreprocessError::EmptyImage { width, height });
    }

    let expected = width
        .checked_mul(height)
        .and_then(|pixels| pixels.checked_mul(values_per_pixel))
        .ok_or(PreprocessError::TooLarge { width, height })?;
    if len != expected {
        return Err(PreprocessError::SizeMismatch {
            width,
            height,
            values_per_pixel,
            expected,
            actual: len,
        });
    }
    Ok(())
}

/// Clamps an ink value to [0, 1], mapping NaN to 0.
fn sanitize(value: f32) -> f32 {
    if value.is_nan() {
        0.0
    } else {
        value.clamp(0.0, 1.0)
    }
}

/// Scales the part of `ink` inside `bounds` so that its longer side is [`FIT_SIDE`] pixels,
/// by area averaging, and returns the result with its width and height (each 1 to 20).
///
/// The two axes are scaled one after the other, which gives the same result as averaging over
/// squares because a box filter is separable.
fn resample_to_fit(ink: &[f32], width: usize, bounds: BoundingBox) -> (Vec<f32>, usize, usize) {
    let scale = FIT_SIDE as f64 / bounds.width.max(bounds.height) as f64;
    let columns = CoverageWeights::new(bounds.width, scale);
    let rows = CoverageWeights::new(bounds.height, scale);
    let fitted_width = columns.output_len;
    let fitted_height = rows.output_len;

    // Horizontal pass: each source row becomes `fitted_width` values.
    let mut narrowed = vec![0.0f64; bounds.height * fitted_width];
    for source_y in 0..bounds.height {
        let row_start = (bounds.top + source_y) * width + bounds.left;
        let source_row = &ink[row_start..row_start + bounds.width];
        let output_row = &mut narrowed[source_y * fitted_width..(source_y + 1) * fitted_width];
        for (source_x, &value) in source_row.iter().enumerate() {
            let value = f64::from(sanitize(value));
            if value == 0.0 {
                continue;
            }
            for &(output_x, weight) in columns.of(source_x) {
                output_row[output_x] += value * weight;
            }
        }
    }

    // Vertical pass: the `bounds.height` narrowed rows become `fitted_height` rows.
    let mut fitted = vec![0.0f64; fitted_height * fitted_width];
    for source_y in 0..bounds.height {
        let source_row = &narrowed[source_y * fitted_width..(source_y + 1) * fitted_width];
        for &(output_y, weight) in rows.of(source_y) {
            let output_row = &mut fitted[output_y * fitted_width..(output_y + 1) * fitted_width];
            for (output, &value) in output_row.iter_mut().zip(source_row) {
                *output += value * weight;
            }
        }
    }

    let fitted = fitted
        .into_iter()
        .map(|value| (value as f32).clamp(0.0, 1.0))
        .collect();
    (fitted, fitted_width, fitted_height)
}

/// Box-filter weights along one axis: for each source pixel, the output pixels it overlaps and
/// the length of each overlap in output pixels.
///
/// Source pixel `i` maps to `[i × scale, (i + 1) × scale)`. An output pixel's value is the sum
/// of the source values times their overlaps, which is the area average because the overlaps
/// on a fully covered output pixel add up to 1.
struct CoverageWeights {
    /// `(output index, overlap)` pairs, grouped by source pixel.
    entries: Vec<(usize, f64)>,
    /// Start of each source pixel's group in `entries`, plus the end of the last group.
    starts: Vec<usize>,
    /// Number of output pixels, at least 1 and at most [`FIT_SIDE`].
    output_len: usize,
}

impl CoverageWeights {
    fn new(source_len: usize, scale: f64) -> Self {
        // The longer side scales to exactly FIT_SIDE, and rounding error must not add a column
        // that would hold a sliver of ink, so a fraction below 1e-6 px is ignored.
        let scaled_len = source_len as f64 * scale;
        let output_len = ((scaled_len - 1e-6).ceil() as usize).clamp(1, FIT_SIDE);

        let mut entries = Vec::new();
        let mut starts = Vec::with_capacity(source_len + 1);
        for source_index in 0..source_len {
            starts.push(entries.len());

            let start = source_index as f64 * scale;
            let end = (source_index + 1) as f64 * scale;
            let first = (start.floor() as usize).min(output_len - 1);
            let last = (end.ceil() as usize).min(output_len);
            for output_index in first..last {
                let overlap = end.min((output_index + 1) as f64) - start.max(output_index as f64);
                if overlap > 0.0 {
                    entries.push((output_index, overlap));
                }
            }
        }
        starts.push(entries.len());

        Self {
            entries,
            starts,
            output_len,
        }
    }

    /// Returns the `(output index, overlap)` pairs of source pixel `source_index`.
    fn of(&self, source_index: usize) -> &[(usize, f64)] {
        &self.entries[self.starts[source_index]..self.starts[source_index + 1]]
    }
}

/// Places a `fitted_width × fitted_height` image (each side at most 28) in a 28×28 image,
/// shifted by whole pixels so that its centre of mass is as close to (14, 14) as rounding
/// allows without any pixel falling off the image.
fn place_centred(fitted: &[f32], fitted_width: usize, fitted_height: usize) -> Vec<f32> {
    // Without mass (which the threshold rules out) the geometric centre is used instead.
    let (centre_x, centre_y) = centre_of_mass(fitted, fitted_width, fitted_height)
        .ok()
        .flatten()
        .unwrap_or((fitted_width as f64 / 2.0, fitted_height as f64 / 2.0));
    let shift_x = centring_shift(centre_x, fitted_width);
    let shift_y = centring_shift(centre_y, fitted_height);

    let mut image = vec![0.0; IMAGE_PIXELS];
    for (y, row) in fitted.chunks_exact(fitted_width).enumerate() {
        let start = (y + shift_y) * IMAGE_SIDE + shift_x;
        image[start..start + fitted_width].copy_from_slice(row);
    }
    image
}

/// Returns the whole-pixel offset that moves `centre` (in a span of `len` pixels) closest to
/// the image centre while keeping the span inside the image.
fn centring_shift(centre: f64, len: usize) -> usize {
    let max_shift = IMAGE_SIDE.saturating_sub(len) as f64;
    (IMAGE_CENTRE - centre).round().clamp(0.0, max_shift) as usize
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::mnist::{Mnist, Split};

    const CANVAS_SIDE: usize = 280;

    /// Runs `mnist_input` and fails the test unless it returns an image.
    fn preprocess(ink: &[f32], width: usize, height: usize) -> Vec<f32> {
        mnist_input(ink, width, height)
            .expect("the size is valid")
            .expect("the drawing has ink")
    }

    /// Draws a filled rectangle of `value` with its top-left corner at (`left`, `top`).
    fn fill_rect(
        ink: &mut [f32],
        width: usize,
        left: usize,
        top: usize,
        rect_width: usize,
        rect_height: usize,
        value: f32,
    ) {
        for y in top..top + rect_height {
            for x in left..left + rect_width {
                ink[y * width + x] = value;
            }
        }
    }

    /// Draws a ring of full ink between two radii around (`centre_x`, `centre_y`).
    fn draw_ring(
        ink: &mut [f32],
        width: usize,
        centre_x: f64,
        centre_y: f64,
        inner: f64,
        outer: f64,
    ) {
        let height = ink.len() / width;
        for y in 0..height {
            for x in 0..width {
                let distance = ((x as f64 + 0.5 - centre_x).powi(2)
                    + (y as f64 + 0.5 - centre_y).powi(2))
                .sqrt();
                if (inner..=outer).contains(&distance) {
                    ink[y * width + x] = 1.0;
                }
            }
        }
    }

    /// Asserts that the output's centre of mass is within half a pixel of (14, 14) and returns
    /// the distances from it along x and y.
    fn assert_centred(image: &[f32]) -> (f64, f64) {
        let (x, y) = centre_of_mass(image, IMAGE_SIDE, IMAGE_SIDE)
            .unwrap()
            .expect("the output has ink");
        let error_x = (x - IMAGE_CENTRE).abs();
        let error_y = (y - IMAGE_CENTRE).abs();
        assert!(
            error_x <= 0.5,
            "centre of mass x is {x}, expected within 0.5 of 14"
        );
        assert!(
            error_y <= 0.5,
            "centre of mass y is {y}, expected within 0.5 of 14"
        );
        (error_x, error_y)
    }

    fn output_bounds(image: &[f32]) -> BoundingBox {
        bounding_box(image, IMAGE_SIDE, IMAGE_SIDE)
            .unwrap()
            .expect("the output has ink")
    }

    #[test]
    fn empty_canvas_gives_none() {
        let ink = vec![0.0; CANVAS_SIDE * CANVAS_SIDE];

        assert_eq!(mnist_input(&ink, CANVAS_SIDE, CANVAS_SIDE), Ok(None));
    }

    #[test]
    fn faint_noise_gives_none() {
        // A deterministic pattern of values from 0 up to the threshold itself.
        let ink: Vec<f32> = (0..CANVAS_SIDE * CANVAS_SIDE)
            .map(|index| (index * 7919 % 101) as f32 / 100.0 * INK_THRESHOLD)
            .collect();
        assert!(ink.iter().any(|&value| value > 0.0));

        assert_eq!(mnist_input(&ink, CANVAS_SIDE, CANVAS_SIDE), Ok(None));
    }

    #[test]
    fn off_centre_ring_is_centred_and_scaled() {
        let mut ink = vec![0.0; CANVAS_SIDE * CANVAS_SIDE];
        draw_ring(&mut ink, CANVAS_SIDE, 40.0, 45.0, 18.0, 30.0);

        let image = preprocess(&ink, CANVAS_SIDE, CANVAS_SIDE);
        let (error_x, error_y) = assert_centred(&image);
        let bounds = output_bounds(&image);

        println!("ring: centre of mass error ({error_x:.3}, {error_y:.3}), box {bounds:?}");
        assert!(
            (19..=20).contains(&bounds.width),
            "width is {}",
            bounds.width
        );
        assert!(
            (19..=20).contains(&bounds.height),
            "height is {}",
            bounds.height
        );
    }

    #[test]
    fn off_centre_bar_is_centred_and_scaled() {
        let mut ink = vec![0.0; CANVAS_SIDE * CANVAS_SIDE];
        fill_rect(&mut ink, CANVAS_SIDE, 230, 200, 30, 70, 1.0);

        let image = preprocess(&ink, CANVAS_SIDE, CANVAS_SIDE);
        let (error_x, error_y) = assert_centred(&image);
        let bounds = output_bounds(&image);

        println!("bar: centre of mass error ({error_x:.3}, {error_y:.3}), box {bounds:?}");
        assert_eq!(bounds.height, 20);
        assert!(
            (8..=10).contains(&bounds.width),
            "width is {}, expected 30 * 20 / 70 ≈ 9",
            bounds.width
        );
    }

    #[test]
    fn thick_and_thin_drawings_are_centred_and_scaled() {
        for (name, inner, outer) in [("thick", 40.0, 90.0), ("thin", 88.0, 90.0)] {
            let mut ink = vec![0.0; CANVAS_SIDE * CANVAS_SIDE];
            draw_ring(&mut ink, CANVAS_SIDE, 150.0, 120.0, inner, outer);

            let image = preprocess(&ink, CANVAS_SIDE, CANVAS_SIDE);
            let (error_x, error_y) = assert_centred(&image);
            let bounds = output_bounds(&image);
            let peak = image.iter().copied().fold(0.0, f32::max);

            println!(
                "{name} ring: centre of mass error ({error_x:.3}, {error_y:.3}), box {bounds:?}, peak {peak:.3}"
            );
            assert!(
                (19..=20).contains(&bounds.width),
                "{name}: width is {}",
                bounds.width
            );
            assert!(
                (19..=20).contains(&bounds.height),
                "{name}: height is {}",
                bounds.height
            );
        }
    }

    #[test]
    fn peak_follows_stroke_width() {
        let mut thin = vec![0.0; CANVAS_SIDE * CANVAS_SIDE];
        draw_ring(&mut thin, CANVAS_SIDE, 140.0, 140.0, 137.0, 140.0);
        let mut thick = vec![0.0; CANVAS_SIDE * CANVAS_SIDE];
        draw_ring(&mut thick, CANVAS_SIDE, 140.0, 140.0, 90.0, 140.0);

        let thin_peak = preprocess(&thin, CANVAS_SIDE, CANVAS_SIDE)
            .into_iter()
            .fold(0.0, f32::max);
        let thick_peak = preprocess(&thick, CANVAS_SIDE, CANVAS_SIDE)
            .into_iter()
            .fold(0.0, f32::max);

        // A 3 px stroke covers at most about 3/14 of a 14 px output pixel's width.
        assert!(thin_peak < 0.5, "thin peak is {thin_peak}");
        assert!(thin_peak > INK_THRESHOLD, "thin peak is {thin_peak}");
        assert!(thick_peak > 0.99, "thick peak is {thick_peak}");
    }

    #[test]
    fn tall_thin_bar_becomes_twenty_pixels_tall() {
        let mut ink = vec![0.0; CANVAS_SIDE * CANVAS_SIDE];
        fill_rect(&mut ink, CANVAS_SIDE, 20, 30, 10, 200, 1.0);

        let image = preprocess(&ink, CANVAS_SIDE, CANVAS_SIDE);
        let (error_x, error_y) = assert_centred(&image);
        let bounds = output_bounds(&image);

        println!("tall bar: centre of mass error ({error_x:.3}, {error_y:.3}), box {bounds:?}");
        assert_eq!(bounds.height, 20);
        assert!(bounds.width <= 2, "width is {}", bounds.width);
    }

    #[test]
    fn wide_stroke_becomes_twenty_pixels_wide() {
        let mut ink = vec![0.0; CANVAS_SIDE * CANVAS_SIDE];
        fill_rect(&mut ink, CANVAS_SIDE, 10, 200, 250, 16, 1.0);

        let image = preprocess(&ink, CANVAS_SIDE, CANVAS_SIDE);
        let (error_x, error_y) = assert_centred(&image);
        let bounds = output_bounds(&image);

        println!("wide stroke: centre of mass error ({error_x:.3}, {error_y:.3}), box {bounds:?}");
        assert_eq!(bounds.width, 20);
        assert!(bounds.height <= 3, "height is {}", bounds.height);
    }

    #[test]
    fn downscaled_diagonal_line_is_anti_aliased() {
        // A 50 px line scales by 0.4, so each output pixel covers 2.5 × 2.5 source pixels.
        let mut ink = vec![0.0; CANVAS_SIDE * CANVAS_SIDE];
        for i in 0..50 {
            ink[(100 + i) * CANVAS_SIDE + 60 + i] = 1.0;
        }

        let image = preprocess(&ink, CANVAS_SIDE, CANVAS_SIDE);
        let intermediate = image
            .iter()
            .filter(|&&value| value > 0.05 && value < 0.95)
            .count();

        assert!(
            intermediate >= 20,
            "{intermediate} values lie strictly between 0.05 and 0.95"
        );
        assert!(
            image.iter().all(|&value| value < 0.95),
            "no output pixel is fully covered by a 1 px line"
        );
    }

    #[test]
    fn output_is_784_values_in_unit_range() {
        let mut ink = vec![0.0; CANVAS_SIDE * CANVAS_SIDE];
        fill_rect(&mut ink, CANVAS_SIDE, 50, 60, 100, 120, 3.5);
        fill_rect(&mut ink, CANVAS_SIDE, 70, 80, 20, 20, f32::NAN);
        fill_rect(&mut ink, CANVAS_SIDE, 100, 100, 20, 20, f32::INFINITY);
        fill_rect(&mut ink, CANVAS_SIDE, 120, 120, 20, 20, -2.0);
        fill_rect(&mut ink, CANVAS_SIDE, 200, 10, 5, 5, 0.7);

        let image = preprocess(&ink, CANVAS_SIDE, CANVAS_SIDE);

        assert_eq!(image.len(), IMAGE_PIXELS);
        assert!(
            image.iter().all(|value| (0.0..=1.0).contains(value)),
            "a value lies outside [0, 1]"
        );
        assert!(image.contains(&1.0), "ink above 1 counts as 1");
    }

    #[test]
    fn pale_drawing_keeps_its_intensity() {
        let mut ink = vec![0.0; CANVAS_SIDE * CANVAS_SIDE];
        fill_rect(&mut ink, CANVAS_SIDE, 100, 40, 60, 200, 0.5);

        let image = preprocess(&ink, CANVAS_SIDE, CANVAS_SIDE);
        let peak = image.iter().copied().fold(0.0, f32::max);

        assert!((peak - 0.5).abs() < 1e-4, "peak is {peak}, expected 0.5");
    }

    #[test]
    fn extreme_sizes_do_not_panic() {
        let single = preprocess(&[1.0], 1, 1);
        assert_centred(&single);
        assert_eq!(
            output_bounds(&single),
            BoundingBox {
                left: 5,
                top: 5,
                width: 20,
                height: 20
            }
        );

        // A 1 px line scaled by 20 / 500 keeps 0.04 of its ink per output pixel, below the
        // threshold, so its length is counted over all nonzero values.
        let one_pixel_row = preprocess(&[1.0; 500], 500, 1);
        assert_centred(&one_pixel_row);
        let lit_row: Vec<usize> = (0..IMAGE_PIXELS)
            .filter(|&index| one_pixel_row[index] > 0.0)
            .collect();
        assert_eq!(lit_row.len(), 20);
        assert!(
            lit_row.iter().all(|&index| index / IMAGE_SIDE == 14),
            "the row's pixels are {lit_row:?}"
        );

        let one_pixel_column = preprocess(&[1.0; 500], 1, 500);
        assert_centred(&one_pixel_column);
        let lit_column: Vec<usize> = (0..IMAGE_PIXELS)
            .filter(|&index| one_pixel_column[index] > 0.0)
            .collect();
        assert_eq!(lit_column.len(), 20);
        assert!(
            lit_column.iter().all(|&index| index % IMAGE_SIDE == 14),
            "the column's pixels are {lit_column:?}"
        );

        let side = 4096;
        let full = preprocess(&vec![1.0; side * side], side, side);
        assert_centred(&full);
        assert!(full.iter().all(|&value| (0.0..=1.0).contains(&value)));
        assert_eq!(
            output_bounds(&full),
            BoundingBox {
                left: 5,
                top: 5,
                width: 20,
                height: 20
            }
        );

        let mut corner = vec![0.0; side * side];
        corner[side * side - 1] = 1.0;
        assert_centred(&preprocess(&corner, side, side));
    }

    #[test]
    fn size_mismatch_names_both_lengths() {
        let error = mnist_input(&[0.0; 10], 4, 3).unwrap_err();

        assert_eq!(
            error,
            PreprocessError::SizeMismatch {
                width: 4,
                height: 3,
                values_per_pixel: 1,
                expected: 12,
                actual: 10
            }
        );
        let message = error.to_string();
        assert!(
            message.contains("12"),
            "message {message:?} lacks the expected length"
        );
        assert!(
            message.contains("10"),
            "message {message:?} lacks the actual length"
        );

        let rgba_error = ink_from_rgba(&[0; 12], 2, 2).unwrap_err();
        assert_eq!(
            rgba_error,
            PreprocessError::SizeMismatch {
                width: 2,
                height: 2,
                values_per_pixel: 4,
                expected: 16,
                actual: 12
            }
        );
    }

    #[test]
    fn zero_and_overflowing_sizes_are_rejected() {
        assert_eq!(
            mnist_input(&[], 0, 5),
            Err(PreprocessError::EmptyImage {
                width: 0,
                height: 5
            })
        );
        assert_eq!(
            ink_from_rgba(&[], 5, 0),
            Err(PreprocessError::EmptyImage {
                width: 5,
                height: 0
            })
        );
        assert_eq!(
            mnist_input(&[], usize::MAX, 2),
            Err(PreprocessError::TooLarge {
                width: usize::MAX,
                height: 2
            })
        );
    }

    #[test]
    fn ink_from_rgba_reads_white_black_and_transparent() {
        let rgba = [
            255, 255, 255, 255, // white, opaque
            0, 0, 0, 255, // black, opaque
            255, 255, 255, 0, // white, transparent
            255, 255, 255, 128, // white, half transparent
        ];

        let ink = ink_from_rgba(&rgba, 2, 2).unwrap();

        assert_eq!(ink.len(), 4);
        assert!((ink[0] - 1.0).abs() < 1e-6, "white opaque gives {}", ink[0]);
        assert_eq!(ink[1], 0.0);
        assert_eq!(ink[2], 0.0);
        assert!(
            (ink[3] - 128.0 / 255.0).abs() < 1e-6,
            "white half transparent gives {}",
            ink[3]
        );
    }

    #[test]
    fn centred_mnist_digit_passes_through() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/mnist");
        let mnist = Mnist::load(&dir, Split::Test).expect("the MNIST fixture loads");
        let original: Vec<f32> = mnist
            .image(0)
            .iter()
            .map(|&byte| f32::from(byte) / 255.0)
            .collect();

        let image = preprocess(&original, IMAGE_SIDE, IMAGE_SIDE);
        let difference = mean_absolute_difference(&image, &original);

        // This digit's longer side is already 20 px, so scaling leaves it as it is, and its
        // centre of mass at (14.84, 14.88) is within half a pixel of the target, so it stays put.
        assert!(
            difference < 1e-6,
            "mean absolute difference is {difference}"
        );

        let best_shifted = (-1..=1)
            .flat_map(|dy| (-1..=1).map(move |dx| (dx, dy)))
            .map(|(dx, dy)| mean_absolute_difference(&image, &shift(&original, dx, dy)))
            .fold(f32::INFINITY, f32::min);
        assert!(
            best_shifted < 1e-6,
            "no shift by at most 1 px matches, the closest differs by {best_shifted}"
        );
    }

    fn mean_absolute_difference(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
    }

    /// Moves a 28×28 image by (`dx`, `dy`) pixels, filling uncovered pixels with 0.
    fn shift(image: &[f32], dx: isize, dy: isize) -> Vec<f32> {
        let mut shifted = vec![0.0; IMAGE_PIXELS];
        for y in 0..IMAGE_SIDE {
            for x in 0..IMAGE_SIDE {
                let (Some(to_x), Some(to_y)) = (x.checked_add_signed(dx), y.checked_add_signed(dy))
                else {
                    continue;
                };
                if to_x < IMAGE_SIDE && to_y < IMAGE_SIDE {
                    shifted[to_y * IMAGE_SIDE + to_x] = image[y * IMAGE_SIDE + x];
                }
            }
        }
        shifted
    }
}
