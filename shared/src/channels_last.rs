//! Convolution layers over channels-last tensors (`[batch, height, width, channels]`), each
//! computed as one matrix product for the whole batch.
//!
//! burn-flex runs a convolution as one small matrix product per image, and its weight gradient as
//! a convolution over swapped batch and channel axes, whose products have as few columns as the
//! kernel has taps. For the small models here those products dominate a training step.
//! [`conv2d`] instead gathers the input pixels under every output pixel's window into one row
//! of a `[batch · pixels, taps · channels]` matrix and multiplies it by the weights once. With
//! channels last, that gathering is a select of whole rows. [`conv_transpose2d`] multiplies first
//! and then adds each product row to the output pixel its tap covers, a row scatter-add. Both are
//! composed of differentiable tensor operations, so autodiff derives backward passes of the same
//! kinds: large matrix products, row selects and row scatter-adds.
//!
//! The functions read the weights of Burn's own layers in their usual layout, so a model that
//! runs through them saves, loads and folds like any other. Only what the models here use is
//! supported: one group, no dilation and no output padding.
//!
//! On other backends than burn-flex the convolutions run Burn's own layers between two
//! permutes. cubecl's row scatter-add gives each output column one thread that walks all the
//! rows in turn, which leaves a GPU nearly idle for the few channels these layers have.

use std::cell::RefCell;
use std::collections::VecDeque;

use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::{Device, IndexingUpdateOp, Int, Tensor, TensorData};

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
    if !on_flex(&x.device()) {
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

    // Every (output pixel, tap) pair reads one input pixel's channels, or the zero row past the
    // input where the tap falls into the padding. Without padding no tap needs that row, so the
    // copy that appends it is skipped.
    let pixels = x.reshape([batch * height * width, channels]);
    let device = pixels.device();
    let pixels = if padding == [(0, 0); 2] {
        pixels
    } else {
        Tensor::cat(vec![pixels, Tensor::zeros([1, channels], &device)], 0)
    };
    let windows = pixels
        .select(0, geometry.tap_rows(&device))
        .reshape([batch * out_h * out_w, kernel_h * kernel_w * channels]);
    let weight = conv
        .weight
        .val()
        .permute([0, 2, 3, 1])
        .reshape([out_channels, kernel_h * kernel_w * in_channels]);

    let y = windows.matmul(weight.transpose());
    let y = match &conv.bias {
        Some(bias) => y + bias.val().unsqueeze(),
        None => y,
    };
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
    if !on_flex(&x.device()) {
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
    let products = x
        .reshape([batch * height * width, in_channels])
        .matmul(weight)
        .reshape([batch * height * width * kernel_h * kernel_w, out_channels]);

    // Products whose tap falls into the padding go to a spare row past the output.
    let device = products.device();
    let rows = batch * out_h * out_w;
    let y = Tensor::zeros([rows + 1, out_channels], &device)
        .select_assign(0, geometry.tap_rows(&device), products, IndexingUpdateOp::Add)
        .slice([0..rows, 0..out_channels]);
    let y = match &conv.bias {
        Some(bias) => y + bias.val().unsqueeze(),
        None => y,
    };
    y.reshape([batch, out_h, out_w, out_channels])
}

/// Returns whether `device` is burn-flex, with or without autodiff.
fn on_flex(device: &Device) -> bool {
    device.clone().without_autodiff() == Device::flex()
}

/// The pixel geometry of a convolution without dilation, from input to output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
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

/// Index tensors built most recently, reused while training repeats the same batch shapes.
const CACHED_GEOMETRIES: usize = 16;

thread_local! {
    static TAP_ROWS: RefCell<VecDeque<(Geometry, Device, Tensor<1, Int>)>> =
        const { RefCell::new(VecDeque::new()) };
}

impl Geometry {
    /// Returns the row of each (output pixel, tap) pair's input pixel in
    /// `[batch · height · width, _]`, or `batch · height · width` for a tap in the padding.
    /// Output pixels come in raster order, and the taps of each in raster order too.
    fn tap_rows(&self, device: &Device) -> Tensor<1, Int> {
        TAP_ROWS.with_borrow_mut(|cache| {
            if let Some((.., rows)) = cache.iter().find(|(geometry, on, _)| geometry == self && on == device) {
                return rows.clone();
            }
            let rows = self.build_tap_rows(device);
            if cache.len() == CACHED_GEOMETRIES {
                cache.pop_front();
            }
            cache.push_back((*self, device.clone(), rows.clone()));
            rows
        })
    }

    /// Builds the index tensor that [`Self::tap_rows`] caches.
    fn build_tap_rows(&self, device: &Device) -> Tensor<1, Int> {
        let [height, width] = self.input;
        let [out_h, out_w] = self.output;
        let [kernel_h, kernel_w] = self.kernel;
        let outside = (self.batch * height * width) as i64;

        let mut rows = Vec::with_capacity(self.batch * out_h * out_w * kernel_h * kernel_w);
        for image in 0..self.batch {
            for out_y in 0..out_h {
                for out_x in 0..out_w {
                    for tap_y in 0..kernel_h {
                        for tap_x in 0..kernel_w {
                            let y = (out_y * self.stride[0] + tap_y).checked_sub(self.before[0]);
                            let x = (out_x * self.stride[1] + tap_x).checked_sub(self.before[1]);
                            rows.push(match (y, x) {
                                (Some(y), Some(x)) if y < height && x < width => {
                                    ((image * height + y) * width + x) as i64
                                }
                                _ => outside,
                            });
                        }
                    }
                }
            }
        }
        let count = rows.len();
        Tensor::from_data(TensorData::new(rows, [count]), device)
    }
}

/// Applies `norm` to a channels-last batch, normalizing each channel over batch and pixels.
pub fn batch_norm(x: Tensor<4>, norm: &BatchNorm) -> Tensor<4> {
    let [batch, height, width, channels] = x.dims();
    norm.forward(x.reshape([batch * height * width, channels]))
        .reshape([batch, height, width, channels])
}

/// Applies a max pooling with equal kernel and stride, without padding, to a channels-last
/// batch whose sides are multiples of the kernel.
///
/// The maximum is taken pairwise over the rows of each window and then over its columns, because
/// the gradient of a pairwise maximum is a mask. A maximum over an axis would scatter its
/// gradient back element by element, which burn-flex does slowly.
pub fn max_pool2d(x: Tensor<4>, pool: &MaxPool2d) -> Tensor<4> {
    let [batch, height, width, channels] = x.dims();
    let [kernel_h, kernel_w] = pool.kernel_size;
    debug_assert_eq!(pool.stride, pool.kernel_size, "pooling windows overlap");
    debug_assert!(height % kernel_h == 0 && width % kernel_w == 0, "pooling leaves a remainder");
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
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::{Device, Distribution, Tolerance};

    fn random(shape: [usize; 4], device: &Device) -> Tensor<4> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
    }

    /// Checks the output and the gradients of the input and of `weight` that `ours` gives
    /// against those of `burns`, for a random channels-first input of `shape`.
    fn assert_same_as_burn<M>(
        module: &M,
        shape: [usize; 4],
        burns: impl Fn(&M, Tensor<4>) -> Tensor<4>,
        ours: impl Fn(&M, Tensor<4>) -> Tensor<4>,
        weight: impl Fn(&M) -> Tensor<4>,
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
            [y.into_data(), input_grad.into_data(), weight_grad.into_data()]
        };
        let expected = run(&|x| burns(module, x));
        let actual = run(&|x| to_channels_first(ours(module, to_channels_last(x))));

        for (actual, expected) in actual.iter().zip(&expected) {
            actual.assert_approx_eq::<f32>(expected, Tolerance::absolute(1e-4));
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
            );
        }
    }

    #[test]
    fn max_pool2d_matches_burn() {
        let device = Device::flex();
        let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
        let x = random([2, 3, 8, 6], &device);

        let expected = pool.forward(x.clone()).into_data();
        let actual = to_channels_first(max_pool2d(to_channels_last(x), &pool)).into_data();

        actual.assert_approx_eq::<f32>(&expected, Tolerance::absolute(1e-6));
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
