//! PNG output of sample grids.

use std::io::Cursor;
use std::path::Path;

use anyhow::{Context, Result};
use image::{ImageFormat, Luma};
use shared::grid::GrayImage;

use crate::atomic;

/// Encodes a grayscale picture as PNG bytes.
pub fn encode(picture: &GrayImage) -> Result<Vec<u8>> {
    let buffer: image::ImageBuffer<Luma<u8>, _> =
        image::ImageBuffer::from_raw(picture.width as u32, picture.height as u32, picture.pixels.as_slice())
            .context("picture size does not match its pixel count")?;
    let mut bytes = Cursor::new(Vec::new());
    buffer.write_to(&mut bytes, ImageFormat::Png).context("PNG encoding failed")?;
    Ok(bytes.into_inner())
}

/// Writes a grayscale picture to `path` as PNG, atomically.
pub fn write(path: &Path, picture: &GrayImage) -> Result<()> {
    atomic::write(path, &encode(picture)?)
}

/// Reads a grayscale PNG, converting other color types to 8-bit gray.
pub fn read(path: &Path) -> Result<GrayImage> {
    let picture = image::open(path)
        .with_context(|| format!("failed to read the image {}", path.display()))?
        .into_luma8();
    Ok(GrayImage {
        width: picture.width() as usize,
        height: picture.height() as usize,
        pixels: picture.into_raw(),
    })
}
