//! Batches of MNIST images as tensors, converted from bytes on the fly.

use std::path::Path;

use anyhow::Result;
use burn::tensor::{Device, Tensor, TensorData};
use shared::grid::PixelRange;
use shared::latent::SeededRng;
use shared::mnist::{IdxErrorKind, Mnist, Split};
use shared::{IMAGE_PIXELS, IMAGE_SIDE};

/// Loads one MNIST split from `dir`. The error gives the next step: downloading a missing file,
/// or downloading a damaged one again with `--force`.
pub fn load_mnist(dir: &Path, split: Split) -> Result<Mnist> {
    Mnist::load(dir, split).map_err(|error| {
        let advice = match &error.kind {
            IdxErrorKind::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
                format!("run `trainer download --data-dir {}` first", dir.display())
            }
            _ => format!("the file is damaged, so replace it with `trainer download --data-dir {} --force`", dir.display()),
        };
        let name = match split {
            Split::Train => "training",
            Split::Test => "test",
        };
        anyhow::Error::new(error).context(format!("failed to load the MNIST {name} set from {}; {advice}", dir.display()))
    })
}

/// Returns the order in which epoch `epoch` visits the images, shuffled by `seed` and `epoch`.
pub fn epoch_order(len: usize, seed: u64, epoch: u32) -> Vec<u32> {
    let mut order: Vec<u32> = (0..len as u32).collect();
    let stream = seed ^ (u64::from(epoch) + 1).wrapping_mul(0xA24B_AED4_963E_E407);
    SeededRng::new(stream).shuffle(&mut order);
    order
}

/// Splits `order` into batches of `batch_size`, dropping a last batch of fewer than two images
/// (BatchNorm needs two).
pub fn batches(order: &[u32], batch_size: usize) -> impl Iterator<Item = &[u32]> {
    order.chunks(batch_size).filter(|batch| batch.len() >= 2)
}

/// Builds a `[batch, 1, 28, 28]` tensor of the images at `indices`, scaled to `range`.
pub fn images_tensor(mnist: &Mnist, indices: &[u32], range: PixelRange, device: &Device) -> Tensor<4> {
    let (scale, offset) = match range {
        PixelRange::Symmetric => (2.0 / 255.0, -1.0),
        PixelRange::Unit => (1.0 / 255.0, 0.0),
    };
    let mut values = Vec::with_capacity(indices.len() * IMAGE_PIXELS);
    for &index in indices {
        values.extend(mnist.image(index as usize).iter().map(|&p| p as f32 * scale + offset));
    }
    let data = TensorData::new(values, [indices.len(), 1, IMAGE_SIDE, IMAGE_SIDE]);
    Tensor::from_data(data, device)
}

/// Builds a `[rows, dim]` tensor from row-major values.
pub fn matrix(values: Vec<f32>, rows: usize, dim: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, [rows, dim]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_orders_differ_between_epochs() {
        let first = epoch_order(100, 1, 0);
        assert_eq!(first, epoch_order(100, 1, 0));
        assert_ne!(first, epoch_order(100, 1, 1));
        assert_ne!(first, epoch_order(100, 2, 0));
    }

    #[test]
    fn batches_drop_a_single_leftover() {
        let order: Vec<u32> = (0..9).collect();
        let sizes: Vec<usize> = batches(&order, 4).map(<[u32]>::len).collect();
        assert_eq!(sizes, vec![4, 4]);
        let sizes: Vec<usize> = batches(&order, 3).map(<[u32]>::len).collect();
        assert_eq!(sizes, vec![3, 3, 3]);
    }

    #[test]
    fn images_scale_to_range() {
        let mnist = Mnist {
            images: (0..2 * IMAGE_PIXELS).map(|i| if i % 2 == 0 { 0 } else { 255 }).collect(),
            labels: vec![1, 2],
        };
        let device = Device::flex();
        let tensor = images_tensor(&mnist, &[1], PixelRange::Symmetric, &device);
        assert_eq!(tensor.dims(), [1, 1, 28, 28]);
        let values = tensor.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(values[0], -1.0);
        assert_eq!(values[1], 1.0);
    }
}
