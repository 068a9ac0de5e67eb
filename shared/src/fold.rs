//! Folding of inference-mode BatchNorm into the convolution before it.
//!
//! At inference BatchNorm is the per-channel affine map `y = (x - mean) * s + beta` with
//! `s = gamma / sqrt(var + eps)`. Scaling the convolution's output channels by `s` and moving the
//! rest into its bias gives one layer that computes the same, with two tensors instead of six.
//! Exported weights are folded so they store no running variance, whose small values lose
//! precision in f16.

use burn::module::Param;
use burn::nn::BatchNorm;
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::tensor::Tensor;

/// Returns the per-channel scale `s` and shift `beta - mean * s` of an inference BatchNorm.
fn affine(norm: &BatchNorm) -> (Tensor<1>, Tensor<1>) {
    let variance = norm.running_var.value();
    let mean = norm.running_mean.value();
    let scale = norm.gamma.val() / variance.add_scalar(norm.epsilon).sqrt();
    let shift = norm.beta.val() - mean * scale.clone();
    (scale, shift)
}

/// Folds `norm` into `conv`, whose weight is `[out, in, k, k]`.
pub fn fold_conv2d(mut conv: Conv2d, norm: &BatchNorm) -> Conv2d {
    let (scale, shift) = affine(norm);
    let channels = scale.dims()[0];

    let weight = conv.weight.val() * scale.clone().reshape([channels, 1, 1, 1]);
    let bias = match &conv.bias {
        Some(bias) => bias.val() * scale + shift,
        None => shift,
    };

    conv.weight = Param::from_tensor(weight);
    conv.bias = Some(Param::from_tensor(bias));
    conv
}

/// Folds `norm` into `conv`, whose weight is `[in, out, k, k]`.
pub fn fold_conv_transpose2d(mut conv: ConvTranspose2d, norm: &BatchNorm) -> ConvTranspose2d {
    let (scale, shift) = affine(norm);
    let channels = scale.dims()[0];

    let weight = conv.weight.val() * scale.clone().reshape([1, channels, 1, 1]);
    let bias = match &conv.bias {
        Some(bias) => bias.val() * scale + shift,
        None => shift,
    };

    conv.weight = Param::from_tensor(weight);
    conv.bias = Some(Param::from_tensor(bias));
    conv
}
