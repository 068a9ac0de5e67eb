//! Tiling of model outputs into one grayscale picture.

use crate::IMAGE_SIDE;

/// Value range of a model's output pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelRange {
    /// `[-1, 1]`, the range of a tanh output (the GANs).
    Symmetric,
    /// `[0, 1]`, the range of a sigmoid output (the autoencoders).
    Unit,
}

impl PixelRange {
    /// Converts one model pixel to a gray level, clamping values outside the range.
    pub fn to_gray(self, value: f32) -> u8 {
        let unit = match self {
            PixelRange::Symmetric => (value + 1.0) * 0.5,
            PixelRange::Unit => value,
        };
        (unit.clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

/// A row-major 8-bit grayscale picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrayImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height` gray levels, row after row.
    pub pixels: Vec<u8>,
}

impl GrayImage {
    /// Expands the gray levels to opaque RGBA, the layout of a canvas `ImageData`.
    pub fn to_rgba(&self) -> Vec<u8> {
        self.pixels.iter().flat_map(|&g| [g, g, g, 255]).collect()
    }
}

/// Tiles 28×28 images into a grid of `columns` columns with `padding` pixels between tiles.
///
/// `images` contains the images one after another, as a `[N, 1, 28, 28]` tensor's data does. The
/// last row is left dark where `N` is not a multiple of `columns`.
///
/// # Panics
///
/// Panics if `columns` is zero or `images.len()` is not a multiple of 784.
pub fn tile(images: &[f32], range: PixelRange, columns: usize, padding: usize) -> GrayImage {
    let tile_pixels = IMAGE_SIDE * IMAGE_SIDE;
    assert!(columns > 0, "a grid needs at least one column");
    assert_eq!(images.len() % tile_pixels, 0, "image data is not a whole number of 28x28 images");

    let count = images.len() / tile_pixels;
    let rows = count.div_ceil(columns).max(1);
    let step = IMAGE_SIDE + padding;
    let width = columns * step - padding;
    let height = rows * step - padding;
    let mut pixels = vec![0u8; width * height];

    for (index, image) in images.chunks_exact(tile_pixels).enumerate() {
        let left = (index % columns) * step;
        let top = (index / columns) * step;
        for (y, row) in image.chunks_exact(IMAGE_SIDE).enumerate() {
            let start = (top + y) * width + left;
            for (x, &value) in row.iter().enumerate() {
                pixels[start + x] = range.to_gray(value);
            }
        }
    }

    GrayImage {
        width,
        height,
        pixels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_places_images_in_rows() {
        let mut images = vec![-1.0f32; 3 * 784];
        images[784] = 1.0; // first pixel of the second image
        images[2 * 784 + 783] = 1.0; // last pixel of the third image

        let grid = tile(&images, PixelRange::Symmetric, 2, 2);

        assert_eq!((grid.width, grid.height), (58, 58));
        assert_eq!(grid.pixels[30], 255);
        assert_eq!(grid.pixels[57 * 58 + 27], 255);
        assert_eq!(grid.pixels.iter().filter(|&&g| g == 255).count(), 2);
    }

    #[test]
    fn gray_levels_clamp_out_of_range_values() {
        assert_eq!(PixelRange::Symmetric.to_gray(-3.0), 0);
        assert_eq!(PixelRange::Symmetric.to_gray(0.0), 128);
        assert_eq!(PixelRange::Unit.to_gray(2.0), 255);
        assert_eq!(PixelRange::Unit.to_gray(0.5), 128);
    }
}
