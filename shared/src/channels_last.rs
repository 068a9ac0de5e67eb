//! Convolution layers over channels-last tensors (`[batch, height, width, channels]`), each
//! computed as one matrix product for the whole batch.
//!
//! burn-flex runs a convolution as one small matrix product per image, and its weight gradient as
//! a convolution over swapped batch and channel axes, whose products have as few columns as the
//! kernel has taps. For the small models here those products dominate a training step.
//! [`conv2d`] instead gathers the input pixels under every output pixel's window into one row
//! of a `[batch · pixels, taps · channels]` matrix and multiplies it by the weights once.
//! [`conv_transpose2d`] multiplies first and then adds each product row's taps onto the output
//! pixels they cover. The gathering and the adding are burn-flex kernels in the `kernels`
//! module, each the other's backward pass, so a training step is large matrix products plus
//! memory copies. Max pooling, the activations, BatchNorm in training and the autoencoders'
//! pixel losses have kernels there too, and [`linear_from_maps`] and [`linear_to_maps`] connect
//! the convolutions to linear layers without permuting the maps.
//!
//! The functions read the weights of Burn's own layers in their usual layout, so a model that
//! runs through them saves, loads and folds like any other. Only what the models here use is
//! supported: one group, no dilation and no output padding.
//!
//! On other backends than burn-flex, for other element types than `f32`, and for autodiff when
//! this crate is built without its `autodiff` feature, the convolutions run Burn's own layers
//! between two permutes.

use burn::module::Param;
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, LeakyRelu, Linear, PaddingConfig2d};
use burn::tensor::activation::sigmoid;
use burn::tensor::{DType, Device, Tensor};

mod kernels;
mod math;

/// Reorders `[batch, channels, height, width]` to `[batch, height, width, channels]`.
pub fn to_channels_last(x: Tensor<4>) -> Tensor<4> {
    x.permute([0, 2, 3, 1])
}

/// Reorders `[batch, height, width, channels]` to `[batch, channels, height, width]`.
pub fn to_channels_first(x: Tensor<4>) -> Tensor<4> {
    x.permute([0, 3, 1, 2])
}

/// Applies `conv` to a channels-last batch.
///
/// # Shapes
///
/// - x: `[batch, height, width, channels_in]`
/// - output: `[batch, height_out, width_out, channels_out]`, the sizes `conv.forward` gives
pub fn conv2d(x: Tensor<4>, conv: &Conv2d) -> Tensor<4> {
    if !kernels_run(&x) {
        return to_channels_last(conv.forward(to_channels_first(x)));
    }
    let [batch, height, width, channels] = x.dims();
    let [out_channels, in_channels, kernel_h, kernel_w] = conv.weight.dims();
    debug_assert_eq!((conv.groups, conv.dilation), (1, [1, 1]), "grouped or dilated convolution");
    debug_assert_eq!(channels, in_channels, "input channels");
    let kernel = [kernel_h, kernel_w];
    let padding = padding(&conv.padding, [height, width], kernel, conv.stride);
    let geometry = Geometry {
        batch,
        input: [height, width],
        kernel,
        stride: conv.stride,
        before: [padding[0].0, padding[1].0],
        output: [0, 1].map(|axis| {
            ([height, width][axis] + padding[axis].0 + padding[axis].1 - kernel[axis]) / conv.stride[axis] + 1
        }),
    };
    let [out_h, out_w] = geometry.output;

    let weight = conv
        .weight
        .val()
        .permute([0, 2, 3, 1])
        .reshape([out_channels, kernel_h * kernel_w * in_channels]);
    let windows = kernels::gather(x, geometry);
    let y = weighted_sum(windows, weight.transpose(), conv.bias.as_ref().map(Param::val));
    y.reshape([batch, out_h, out_w, out_channels])
}

/// Applies `conv` to a channels-last batch.
///
/// Every input pixel is multiplied by the whole kernel at once. Each product is then added to
/// the output pixel its tap covers, the reverse of how [`conv2d`] reads its input.
///
/// # Shapes
///
/// - x: `[batch, height, width, channels_in]`
/// - output: `[batch, height_out, width_out, channels_out]`, the sizes `conv.forward` gives
pub fn conv_transpose2d(x: Tensor<4>, conv: &ConvTranspose2d) -> Tensor<4> {
    if !kernels_run(&x) {
        return to_channels_last(conv.forward(to_channels_first(x)));
    }
    let [batch, height, width, channels] = x.dims();
    let [in_channels, out_channels, kernel_h, kernel_w] = conv.weight.dims();
    debug_assert_eq!((conv.groups, conv.dilation), (1, [1, 1]), "grouped or dilated convolution");
    debug_assert_eq!(conv.padding_out, [0, 0], "output padding");
    debug_assert_eq!(channels, in_channels, "input channels");
    let kernel = [kernel_h, kernel_w];
    let [out_h, out_w] = [0, 1].map(|axis| {
        ([height, width][axis] - 1) * conv.stride[axis] + kernel[axis] - 2 * conv.padding[axis]
    });
    // The convolution that this one transposes: it reads the output and writes the input.
    let geometry = Geometry {
        batch,
        input: [out_h, out_w],
        kernel,
        stride: conv.stride,
        before: conv.padding,
        output: [height, width],
    };

    let weight = conv
        .weight
        .val()
        .permute([0, 2, 3, 1])
        .reshape([in_channels, kernel_h * kernel_w * out_channels]);
    let rows = x.reshape([batch * height * width, in_channels]);
    if !rows.device().is_autodiff() {
        let bias = conv.bias.as_ref().map_or_else(|| Tensor::zeros([out_channels], &rows.device()), |bias| bias.val());
        return kernels::transposed_convolution(rows, weight, bias, geometry);
    }
    let products = kernels::product(rows, weight);
    match &conv.bias {
        Some(bias) => kernels::scatter_add_bias(products, bias.val(), geometry),
        None => kernels::scatter_add(products, geometry),
    }
}

/// Applies `linear` to a batch of rows.
///
/// # Shapes
///
/// - x: `[batch, features_in]`
/// - output: `[batch, features_out]`
pub fn linear(x: Tensor<2>, linear: &Linear) -> Tensor<2> {
    if !kernels_run(&x) {
        return linear.forward(x);
    }
    weighted_sum(x, linear.weight.val(), linear.bias.as_ref().map(Param::val))
}

/// Applies `linear`, whose input features are maps flattened channels first, to channels-last
/// maps.
///
/// On burn-flex the weight's rows are reordered to the maps' channels-last order, which copies
/// the weight instead of the larger batch of maps, each way.
///
/// # Shapes
///
/// - x: `[batch, height, width, channels]`
/// - output: `[batch, features_out]`
pub fn linear_from_maps(x: Tensor<4>, linear: &Linear) -> Tensor<2> {
    let [batch, height, width, channels] = x.dims();
    if !kernels_run(&x) {
        return linear.forward(to_channels_first(x).flatten(1, 3));
    }
    let [_, features_out] = linear.weight.dims();
    let weight = linear
        .weight
        .val()
        .reshape([channels, height, width, features_out])
        .permute([1, 2, 0, 3])
        .reshape([height * width * channels, features_out]);
    let rows = x.reshape([batch, height * width * channels]);
    weighted_sum(rows, weight, linear.bias.as_ref().map(Param::val))
}

/// Applies `linear`, whose output features are maps of `[channels, height, width]` flattened
/// channels first, and returns channels-last maps.
///
/// On burn-flex the weight's columns and the bias are reordered to channels-last order, which
/// copies them instead of the larger batch of maps, each way.
///
/// # Shapes
///
/// - x: `[batch, features_in]`
/// - output: `[batch, height, width, channels]`
pub fn linear_to_maps(x: Tensor<2>, linear: &Linear, [channels, height, width]: [usize; 3]) -> Tensor<4> {
    let [batch, features_in] = x.dims();
    if !kernels_run(&x) {
        return to_channels_last(linear.forward(x).reshape([batch, channels, height, width]));
    }
    let weight = linear
        .weight
        .val()
        .reshape([features_in, channels, height, width])
        .permute([0, 2, 3, 1])
        .reshape([features_in, height * width * channels]);
    let bias = linear.bias.as_ref().map(|bias| {
        bias.val().reshape([channels, height, width]).permute([1, 2, 0]).reshape([height * width * channels])
    });
    weighted_sum(x, weight, bias).reshape([batch, height, width, channels])
}

/// Multiplies `x` by `weight` in the `kernels` module and adds `bias`, if any, to every row.
fn weighted_sum(x: Tensor<2>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<2> {
    match bias {
        Some(bias) => kernels::affine(x, weight, bias),
        None => kernels::product(x, weight),
    }
}

/// Applies `activation` to a batch of any layout.
pub fn leaky_relu<const D: usize>(x: Tensor<D>, activation: &LeakyRelu) -> Tensor<D> {
    if !kernels_run(&x) {
        return activation.forward(x);
    }
    kernels::leaky_relu(x, activation.negative_slope)
}

/// Returns the hyperbolic tangent of a batch of any layout.
pub fn tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !kernels_run(&x) {
        return x.tanh();
    }
    kernels::tanh(x)
}

/// Applies the ReLU to a batch of any layout.
pub fn relu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !kernels_run(&x) {
        return burn::tensor::activation::relu(x);
    }
    kernels::leaky_relu(x, 0.0)
}

/// A loss of pixel logits against target pixels in `[0, 1]`, for [`pixel_loss`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelLoss {
    /// Bernoulli negative log-likelihood, `max(x, 0) − x·t + ln(1 + e^−|x|)` for logit `x` and
    /// target `t`, computed without overflow.
    Bernoulli,
    /// Squared error of the pixel probabilities, `(σ(x) − t)²`.
    SquaredError,
}

/// Sums `loss` of pixel `logits` against `target` over each image.
///
/// On burn-flex one kernel computes it and one its gradient, where Burn's operations would make a
/// pass over the pixels for every term and for every term's gradient. On burn-flex no gradient
/// flows into `target`, which is data in training.
///
/// # Shapes
///
/// - logits, target: `[batch, channels, height, width]`
/// - output: `[batch]`
pub fn pixel_loss(logits: Tensor<4>, target: Tensor<4>, loss: PixelLoss) -> Tensor<1> {
    let [batch, ..] = logits.dims();
    let [logits, target] = [logits, target].map(|images| images.flatten::<2>(1, 3));
    if kernels_run(&logits) {
        return kernels::pixel_loss(logits, target, loss);
    }
    pixel_loss_terms(logits, target, loss).sum_dim(1).reshape([batch])
}

/// Returns every pixel's `loss` with Burn's operations.
///
/// # Shapes
///
/// - logits, target, output: `[batch, pixels]`
fn pixel_loss_terms(logits: Tensor<2>, target: Tensor<2>, loss: PixelLoss) -> Tensor<2> {
    match loss {
        PixelLoss::Bernoulli => {
            let positive = logits.clone().clamp_min(0.0);
            let cross = logits.clone() * target;
            let softplus = logits.abs().neg().exp().log1p();
            positive - cross + softplus
        }
        PixelLoss::SquaredError => (sigmoid(logits) - target).square(),
    }
}

/// Returns whether the layers here can run `x` through the `kernels` module: an `f32` tensor on
/// burn-flex, without autodiff unless this crate was built with the kernels' backward passes.
fn kernels_run<const D: usize>(x: &Tensor<D>) -> bool {
    let device = x.device();
    let autodiff_ready = !device.is_autodiff() || cfg!(any(feature = "autodiff", test));
    on_flex(&device) && x.dtype() == DType::F32 && autodiff_ready
}

/// Returns whether `device` is burn-flex, with or without autodiff.
fn on_flex(device: &Device) -> bool {
    device.clone().without_autodiff() == Device::flex()
}

/// The pixel geometry of a convolution without dilation, from input to output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    batch: usize,
    /// Height and width of the input, without padding.
    input: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    /// Zero rows above and zero columns left of the input.
    before: [usize; 2],
    /// Height and width of the output.
    output: [usize; 2],
}

/// Applies `norm` to a channels-last batch, normalizing each channel over batch and pixels.
///
/// In training on burn-flex, the `kernels` module normalizes and updates the running statistics
/// as Burn's layer would. Burn's own training path transposes the activations to channels first
/// for the statistics and again for the gradients.
pub fn batch_norm(x: Tensor<4>, norm: &BatchNorm) -> Tensor<4> {
    let [batch, height, width, channels] = x.dims();
    let rows = x.reshape([batch * height * width, channels]);

    let training = rows.device().is_autodiff() && norm.training.is_enabled();
    let y = if training && kernels_run(&rows) {
        let (y, statistics) = kernels::batch_norm_train(rows, norm.gamma.val(), norm.beta.val(), norm.epsilon);
        update_running_statistics(norm, statistics);
        y
    } else {
        norm.forward(rows)
    };
    y.reshape([batch, height, width, channels])
}

/// Moves `norm`'s running mean and variance towards the batch's `[2, channels]` statistics by
/// its momentum, as Burn's layer does in training.
fn update_running_statistics(norm: &BatchNorm, statistics: Tensor<2>) {
    let [_, channels] = statistics.dims();
    let device = statistics.device();
    let [mean, variance] = [0, 1].map(|row| statistics.clone().slice([row..row + 1, 0..channels]).reshape([channels]));

    for (running, batch) in [(&norm.running_mean, mean), (&norm.running_var, variance)] {
        let value = running
            .value_sync()
            .to_device(&device)
            .mul_scalar(1.0 - norm.momentum)
            .add(batch.detach().mul_scalar(norm.momentum));
        running.update(value.detach());
    }
}

/// Applies a max pooling with equal kernel and stride, without padding, to a channels-last
/// batch whose sides are multiples of the kernel.
///
/// burn-flex runs the `kernels` module's kernel. Elsewhere the maximum is taken pairwise over the
/// rows of each window and then over its columns, whose gradient is a mask, rather than over an
/// axis, whose gradient is a scatter.
pub fn max_pool2d(x: Tensor<4>, pool: &MaxPool2d) -> Tensor<4> {
    let [batch, height, width, channels] = x.dims();
    let [kernel_h, kernel_w] = pool.kernel_size;
    debug_assert_eq!(pool.stride, pool.kernel_size, "pooling windows overlap");
    debug_assert!(height % kernel_h == 0 && width % kernel_w == 0, "pooling leaves a remainder");
    if kernels_run(&x) {
        return kernels::max_pool(x, pool.kernel_size);
    }
    let [out_h, out_w] = [height / kernel_h, width / kernel_w];

    let rows = max_over_axis1(x.reshape([batch * out_h, kernel_h, width * channels]));
    let columns = max_over_axis1(rows.reshape([batch * out_h * out_w, kernel_w, channels]));
    columns.reshape([batch, out_h, out_w, channels])
}

/// Returns the maximum over the middle axis of `[outer, count, inner]`, kept as an axis of size 1.
fn max_over_axis1(x: Tensor<3>) -> Tensor<3> {
    let [outer, count, inner] = x.dims();
    let part = |index: usize| x.clone().slice([0..outer, index..index + 1, 0..inner]);
    (1..count).fold(part(0), |maximum, index| maximum.max_pair(part(index)))
}

/// Returns the zero padding `(before, after)` of rows and of columns that `padding` requests.
fn padding(
    padding: &PaddingConfig2d,
    [height, width]: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
) -> [(usize, usize); 2] {
    match *padding {
        PaddingConfig2d::Valid => [(0, 0); 2],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
        PaddingConfig2d::Same => [
            same_padding(height, kernel[0], stride[0]),
            same_padding(width, kernel[1], stride[1]),
        ],
    }
}

/// Returns the padding that keeps `ceil(size / stride)` outputs, the smaller half before, as
/// Burn pads.
fn same_padding(size: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let outputs = size.div_ceil(stride);
    let total = (outputs.saturating_sub(1) * stride + kernel).saturating_sub(size);
    (total / 2, total - total / 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::conv::{Conv2dConfig, ConvTranspose2dConfig};
    use burn::nn::{BatchNormConfig, LeakyReluConfig, LinearConfig};
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::{Device, Distribution, Tolerance};

    fn random(shape: [usize; 4], device: &Device) -> Tensor<4> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
    }

    /// Checks the output and the gradients of the input, of `weight` and of `bias` that `ours`
    /// gives against those of `burns`, for a random channels-first input of `shape`.
    fn assert_same_as_burn<M>(
        module: &M,
        shape: [usize; 4],
        burns: impl Fn(&M, Tensor<4>) -> Tensor<4>,
        ours: impl Fn(&M, Tensor<4>) -> Tensor<4>,
        weight: impl Fn(&M) -> Tensor<4>,
        bias: impl Fn(&M) -> Tensor<1>,
    ) {
        let device = Device::flex().autodiff();
        let input = random(shape, &device);
        // Weighting the outputs at random makes every output element matter to the gradients.
        let weighting = Tensor::random(burns(module, input.clone()).dims(), Distribution::Default, &device);

        let run = |forward: &dyn Fn(Tensor<4>) -> Tensor<4>| {
            let x = input.clone().require_grad();
            let y = forward(x.clone());
            let grads = (y.clone() * weighting.clone()).sum().backward();
            let input_grad = x.grad(&grads).expect("input gradient");
            let weight_grad = weight(module).grad(&grads).expect("weight gradient");
            let bias_grad = bias(module).grad(&grads).expect("bias gradient");
            [y.into_data(), input_grad.into_data(), weight_grad.into_data(), bias_grad.into_data()]
        };
        let expected = run(&|x| burns(module, x));
        let actual = run(&|x| to_channels_first(ours(module, to_channels_last(x))));

        // Bias gradients sum hundreds of products, whose order differs from Burn's.
        for (actual, expected) in actual.iter().zip(&expected) {
            actual.assert_approx_eq::<f32>(expected, Tolerance::rel_abs(1e-5, 1e-4));
        }
    }

    #[test]
    fn kernels_run_on_flex_with_and_without_autodiff() {
        for device in [Device::flex(), Device::flex().autodiff()] {
            let x: Tensor<4> = Tensor::zeros([1, 4, 4, 2], &device);
            assert!(kernels_run(&x), "{device:?}");
            assert!(!kernels_run(&x.cast(DType::F64)), "f64 on {device:?}");
        }
    }

    #[test]
    fn pixel_loss_matches_burn_operations_with_gradients() {
        let device = Device::flex().autodiff();
        // Logits far enough out that e^−|x| underflows in f32, and targets of 0, 1 and between.
        let logits = Tensor::<4>::random([5, 1, 28, 28], Distribution::Normal(0.0, 8.0), &device)
            .slice_assign([0..1, 0..1, 0..1, 0..2], Tensor::from_floats([[[[-120.0, 95.0]]]], &device));
        let target = Tensor::<4>::random([5, 1, 28, 28], Distribution::Default, &device)
            .slice_assign([1..3, 0..1, 0..28, 0..28], Tensor::zeros([2, 1, 28, 28], &device))
            .slice_assign([3..4, 0..1, 0..28, 0..28], Tensor::ones([1, 1, 28, 28], &device));
        // Weighting the images at random makes every image's gradient scale matter.
        let weighting = Tensor::<1>::random([5], Distribution::Default, &device);

        for loss in [PixelLoss::Bernoulli, PixelLoss::SquaredError] {
            let run = |per_image: &dyn Fn(Tensor<4>) -> Tensor<1>| {
                let x = logits.clone().require_grad();
                let value = per_image(x.clone());
                let grad = x.grad(&(value.clone() * weighting.clone()).sum().backward()).expect("logits gradient");
                (value.into_data(), grad.into_data())
            };
            let (value, grad) = run(&|x| pixel_loss(x, target.clone(), loss));
            let (expected, expected_grad) = run(&|x| {
                let terms = pixel_loss_terms(x.flatten(1, 3), target.clone().flatten(1, 3), loss);
                terms.sum_dim(1).reshape([5])
            });

            // Sums of 784 terms in f32, each within 10⁻⁷ of Burn's.
            value.assert_approx_eq::<f32>(&expected, Tolerance::absolute(1e-3));
            grad.assert_approx_eq::<f32>(&expected_grad, Tolerance::absolute(1e-6));
        }
    }

    #[test]
    fn nan_passes_through_kernels() {
        let device = Device::flex();
        let x = Tensor::<4>::from_floats([[[[f32::NAN, 1.0], [-1.0, 0.0]]]], &device);
        let first = |y: Tensor<4>| y.into_data().try_to_vec::<f32>().expect("f32 values")[0];

        assert!(first(relu(x.clone())).is_nan());
        assert!(first(tanh(x.clone())).is_nan());
        let activation = LeakyReluConfig::new().init();
        assert!(first(leaky_relu(x.clone(), &activation)).is_nan());
        for loss in [PixelLoss::Bernoulli, PixelLoss::SquaredError] {
            let per_image = pixel_loss(x.clone(), x.clone().abs(), loss).into_data().try_to_vec::<f32>().expect("f32 values");
            assert!(per_image[0].is_nan(), "{loss:?}");
        }
    }

    #[test]
    fn tanh_matches_burn_with_gradients() {
        let device = Device::flex().autodiff();
        let x = random([2, 3, 40, 40], &device).mul_scalar(3.0).require_grad();
        let weighting = Tensor::<4>::random([2, 3, 40, 40], Distribution::Default, &device);

        let run = |forward: &dyn Fn(Tensor<4>) -> Tensor<4>| {
            let y = forward(x.clone());
            let grad = x.grad(&(y.clone() * weighting.clone()).sum().backward()).expect("input gradient");
            [y.into_data(), grad.into_data()]
        };
        let expected = run(&|x| x.tanh());
        let actual = run(&|x| tanh(x));
        for (actual, expected) in actual.iter().zip(&expected) {
            actual.assert_approx_eq::<f32>(expected, Tolerance::absolute(1e-6));
        }
    }

    #[test]
    fn relu_matches_burn_with_gradients() {
        let device = Device::flex().autodiff();
        let x = random([2, 3, 40, 40], &device).require_grad();
        let weighting = Tensor::<4>::random([2, 3, 40, 40], Distribution::Default, &device);

        let run = |forward: &dyn Fn(Tensor<4>) -> Tensor<4>| {
            let y = forward(x.clone());
            let grad = x.grad(&(y.clone() * weighting.clone()).sum().backward()).expect("input gradient");
            [y.into_data(), grad.into_data()]
        };
        let expected = run(&|x| burn::tensor::activation::relu(x));
        let actual = run(&|x| relu(x));
        for (actual, expected) in actual.iter().zip(&expected) {
            actual.assert_eq(expected, true);
        }
    }

    #[test]
    fn conv2d_matches_burn_with_gradients() {
        let device = Device::flex().autodiff();
        let cases = [
            // (channels, kernel, stride, padding, input side)
            ([1, 4], 4, 2, PaddingConfig2d::Explicit(1, 1, 1, 1), 28),
            ([3, 5], 4, 2, PaddingConfig2d::Valid, 13),
            ([4, 2], 3, 1, PaddingConfig2d::Same, 7),
            ([6, 1], 5, 1, PaddingConfig2d::Valid, 5),
            ([2, 3], 3, 2, PaddingConfig2d::Explicit(0, 1, 2, 0), 9),
        ];
        for (channels, kernel, stride, padding, side) in cases {
            let conv = Conv2dConfig::new(channels, [kernel, kernel])
                .with_stride([stride, stride])
                .with_padding(padding)
                .init(&device);
            assert_same_as_burn(
                &conv,
                [3, channels[0], side, side],
                |conv, x| conv.forward(x),
                |conv, x| conv2d(x, conv),
                |conv| conv.weight.val(),
                |conv| conv.bias.as_ref().expect("a bias").val(),
            );
        }
    }

    #[test]
    fn conv_transpose2d_matches_burn_with_gradients() {
        let device = Device::flex().autodiff();
        let cases = [
            // (channels, kernel, stride, padding, input side)
            ([5, 4], 3, 1, 0, 1),
            ([4, 3], 3, 2, 0, 3),
            ([3, 2], 4, 2, 1, 7),
            ([2, 1], 4, 2, 1, 14),
            ([2, 2], 5, 3, 2, 4),
        ];
        for (channels, kernel, stride, padding, side) in cases {
            let conv = ConvTranspose2dConfig::new(channels, [kernel, kernel])
                .with_stride([stride, stride])
                .with_padding([padding, padding])
                .init(&device);
            assert_same_as_burn(
                &conv,
                [2, channels[0], side, side],
                |conv, x| conv.forward(x),
                |conv, x| conv_transpose2d(x, conv),
                |conv| conv.weight.val(),
                |conv| conv.bias.as_ref().expect("a bias").val(),
            );
        }
    }

    #[test]
    fn conv_transpose2d_inference_matches_burn() {
        let device = Device::flex();
        let cases = [
            // (channels, kernel, stride, padding, input side, bias): the first spans two groups
            // of images in a batch of 7.
            ([128, 64], 4, 2, 1, 7, true),
            ([5, 3], 3, 2, 0, 3, false),
            ([4, 1], 4, 2, 1, 14, true),
        ];
        for (channels, kernel, stride, padding, side, bias) in cases {
            let conv = ConvTranspose2dConfig::new(channels, [kernel, kernel])
                .with_stride([stride, stride])
                .with_padding([padding, padding])
                .with_bias(bias)
                .init(&device);
            let input = random([7, channels[0], side, side], &device);
            let expected = conv.forward(input.clone()).into_data();
            let run = || to_channels_first(conv_transpose2d(to_channels_last(input.clone()), &conv)).into_data();
            // On one thread, as in the page's workers, the kernel works through groups of images.
            let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("a thread pool");
            for actual in [run(), one_thread.install(run)] {
                actual.assert_approx_eq::<f32>(&expected, Tolerance::absolute(1e-4));
            }
        }
    }

    /// Checks that `ours` gives `burns`' output and input gradient for `input`, both on
    /// `[batch, channels, height, width]` tensors.
    fn assert_same_input_gradient(
        input: Tensor<4>,
        burns: impl Fn(Tensor<4>) -> Tensor<4>,
        ours: impl Fn(Tensor<4>) -> Tensor<4>,
    ) {
        let weighting = Tensor::random(burns(input.clone()).dims(), Distribution::Default, &input.device());

        let run = |forward: &dyn Fn(Tensor<4>) -> Tensor<4>| {
            let x = input.clone().require_grad();
            let y = forward(x.clone());
            let grads = (y.clone() * weighting.clone()).sum().backward();
            [y.into_data(), x.grad(&grads).expect("input gradient").into_data()]
        };
        let expected = run(&burns);
        let actual = run(&ours);

        for (actual, expected) in actual.iter().zip(&expected) {
            actual.assert_approx_eq::<f32>(expected, Tolerance::absolute(1e-6));
        }
    }

    #[test]
    fn max_pool2d_matches_burn_with_gradients() {
        let device = Device::flex().autodiff();
        let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();

        assert_same_input_gradient(
            random([2, 3, 8, 6], &device),
            |x| pool.forward(x),
            |x| to_channels_first(max_pool2d(to_channels_last(x), &pool)),
        );
    }

    #[test]
    fn max_pool2d_tie_picks_one_pixel() {
        let device = Device::flex().autodiff();
        let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
        // The top-right and bottom-left pixels contain the maximum.
        let x = Tensor::<1>::from_floats([0.0, 1.0, 1.0, 0.0], &device).reshape([1, 2, 2, 1]).require_grad();

        let grads = max_pool2d(x.clone(), &pool).sum().backward();

        // Columns outer, rows inner: the bottom-left pixel comes first, as in the pairwise
        // maximum over rows and then columns that other backends run.
        let grad: Vec<f32> = x.grad(&grads).expect("input gradient").into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(grad, [0.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn leaky_relu_matches_burn_with_gradients() {
        let device = Device::flex().autodiff();
        let activation = LeakyReluConfig::new().with_negative_slope(0.2).init();
        // Zeros take the identity's gradient, as in Burn's leaky ReLU.
        let input = Tensor::cat(vec![random([2, 3, 4, 5], &device), Tensor::zeros([1, 3, 4, 5], &device)], 0);

        assert_same_input_gradient(input, |x| activation.forward(x), |x| leaky_relu(x, &activation));
    }

    #[test]
    fn batch_norm_matches_burn_in_training_with_gradients() {
        let device = Device::flex().autodiff();
        let gamma = Tensor::random([3], Distribution::Uniform(0.5, 1.5), &device);
        let beta = random([3, 1, 1, 1], &device).reshape([3]);
        let norm = || BatchNorm {
            gamma: Param::from_tensor(gamma.clone()),
            beta: Param::from_tensor(beta.clone()),
            ..BatchNormConfig::new(3).init(&device)
        };
        // Enough pixels for the kernels to split the rows into several tasks.
        let input = random([4, 3, 40, 45], &device).mul_scalar(2.0).add_scalar(1.0);
        let weighting = Tensor::random([4, 3, 40, 45], Distribution::Default, &device);

        let run = |norm: &BatchNorm, forward: &dyn Fn(Tensor<4>) -> Tensor<4>| {
            let x = input.clone().require_grad();
            let y = forward(x.clone());
            let grads = (y.clone() * weighting.clone()).sum().backward();
            [
                y.into_data(),
                x.grad(&grads).expect("input gradient").into_data(),
                norm.gamma.val().grad(&grads).expect("gamma gradient").into_data(),
                norm.beta.val().grad(&grads).expect("beta gradient").into_data(),
                norm.running_mean.value().into_data(),
                norm.running_var.value().into_data(),
            ]
        };
        let burns = norm();
        let expected = run(&burns, &|x| burns.forward(x));
        let ours = norm();
        let actual = run(&ours, &|x| to_channels_first(batch_norm(to_channels_last(x), &ours)));

        // The kernels sum over the pixels in f64, Burn in f32.
        for (actual, expected) in actual.iter().zip(&expected) {
            actual.assert_approx_eq::<f32>(expected, Tolerance::rel_abs(1e-4, 1e-4));
        }
    }

    #[test]
    fn linear_matches_burn_with_gradients() {
        let device = Device::flex().autodiff();
        for bias in [true, false] {
            let linear = LinearConfig::new(23, 9).with_bias(bias).init(&device);
            let input = Tensor::random([17, 23], Distribution::Normal(0.0, 1.0), &device);
            let weighting = Tensor::random([17, 9], Distribution::Default, &device);

            let run = |forward: &dyn Fn(Tensor<2>) -> Tensor<2>| {
                let x = input.clone().require_grad();
                let y = forward(x.clone());
                let grads = (y.clone() * weighting.clone()).sum().backward();
                let bias_grad = linear.bias.as_ref().map(|bias| bias.val().grad(&grads).expect("bias gradient").into_data());
                let weight_grad = linear.weight.val().grad(&grads).expect("weight gradient");
                let input_grad = x.grad(&grads).expect("input gradient");
                ([y.into_data(), input_grad.into_data(), weight_grad.into_data()], bias_grad)
            };
            let (expected, expected_bias) = run(&|x| linear.forward(x));
            let (actual, actual_bias) = run(&|x| super::linear(x, &linear));

            for (actual, expected) in actual.iter().zip(&expected) {
                actual.assert_approx_eq::<f32>(expected, Tolerance::absolute(1e-4));
            }
            assert_eq!(actual_bias.is_some(), bias);
            if let (Some(actual), Some(expected)) = (actual_bias, expected_bias) {
                actual.assert_approx_eq::<f32>(&expected, Tolerance::absolute(1e-4));
            }
        }
    }

    #[test]
    fn linear_on_maps_matches_burn() {
        let device = Device::flex().autodiff();
        let [batch, channels, height, width] = [3, 4, 5, 6];
        let features = channels * height * width;
        let maps = random([batch, channels, height, width], &device);
        let rows = Tensor::<2>::random([batch, 7], Distribution::Normal(0.0, 1.0), &device);

        for bias in [true, false] {
            let from_maps = LinearConfig::new(features, 7).with_bias(bias).init(&device);
            let to_maps = LinearConfig::new(7, features).with_bias(bias).init(&device);
            let weighting = Tensor::<2>::random([batch, 7], Distribution::Default, &device);
            let map_weighting = random([batch, channels, height, width], &device);

            // From maps: the output and the gradients of the maps, the weight and the bias.
            let run = |forward: &dyn Fn(Tensor<4>) -> Tensor<2>| {
                let x = maps.clone().require_grad();
                let grads = (forward(x.clone()) * weighting.clone()).sum().backward();
                let mut grad_list = vec![x.grad(&grads).expect("maps gradient").into_data()];
                grad_list.push(from_maps.weight.val().grad(&grads).expect("weight gradient").into_data());
                grad_list.extend(from_maps.bias.as_ref().map(|b| b.val().grad(&grads).expect("bias gradient").into_data()));
                grad_list.push(forward(maps.clone()).into_data());
                grad_list
            };
            let expected = run(&|x| from_maps.forward(x.flatten(1, 3)));
            let actual = run(&|x| linear_from_maps(to_channels_last(x), &from_maps));
            assert_eq!(actual.len(), 3 + usize::from(bias));
            for (actual, expected) in actual.iter().zip(&expected) {
                actual.assert_approx_eq::<f32>(expected, Tolerance::rel_abs(1e-5, 1e-4));
            }

            // To maps, compared in channels-first order.
            let run = |forward: &dyn Fn(Tensor<2>) -> Tensor<4>| {
                let x = rows.clone().require_grad();
                let grads = (forward(x.clone()) * map_weighting.clone()).sum().backward();
                let mut grad_list = vec![x.grad(&grads).expect("rows gradient").into_data()];
                grad_list.push(to_maps.weight.val().grad(&grads).expect("weight gradient").into_data());
                grad_list.extend(to_maps.bias.as_ref().map(|b| b.val().grad(&grads).expect("bias gradient").into_data()));
                grad_list.push(forward(rows.clone()).into_data());
                grad_list
            };
            let expected = run(&|x| to_maps.forward(x).reshape([batch, channels, height, width]));
            let actual = run(&|x| to_channels_first(linear_to_maps(x, &to_maps, [channels, height, width])));
            assert_eq!(actual.len(), 3 + usize::from(bias));
            for (actual, expected) in actual.iter().zip(&expected) {
                actual.assert_approx_eq::<f32>(expected, Tolerance::rel_abs(1e-5, 1e-4));
            }
        }
    }

    #[test]
    fn flex_is_recognized_with_autodiff() {
        assert!(on_flex(&Device::flex()));
        assert!(on_flex(&Device::flex().autodiff()));
    }

    #[test]
    fn same_padding_keeps_the_side() {
        assert_eq!(same_padding(28, 3, 1), (1, 1));
        assert_eq!(same_padding(28, 4, 1), (1, 2));
        assert_eq!(same_padding(7, 3, 2), (1, 1));
    }
}
