//! burn-flex kernels for the channels-last layers, each with its own backward pass.
//!
//! [`gather`] writes, for every output pixel of a convolution, the input pixels under its window
//! into one row: taps in raster order, the channels of each tap together, zeros where a tap falls
//! into the padding. [`scatter_add`] is its adjoint: it adds every row's taps back onto the input
//! pixels they came from. Each is the other's backward pass, so autodiff records one node per
//! call instead of the row select and row scatter-add that Burn's tensor operations would need,
//! which copy one row at a time. With channels last, the taps of one window row are neighbouring
//! input pixels, so each (output pixel, window row) pair copies one contiguous run of
//! `taps · channels` values.
//!
//! [`max_pool`] and [`leaky_relu`] replace compositions whose backward passes run several
//! masked selects over the whole tensor with one pass each, and [`pixel_loss`] computes a
//! per-image loss of pixel logits, which Burn's operations compose from a pass per term.
//!
//! The kernels split their work into tasks on rayon's threads natively, and run it on the one
//! thread of a page's worker in wasm.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use std::mem::MaybeUninit;

use burn::tensor::{DType, Tensor, TensorData};

use super::math::{self, ln_one_plus_unit, sigmoid_parts};
use super::{Geometry, PixelLoss};

/// The kernels, implemented for burn-flex and, with the `autodiff` feature, for autodiff over
/// any backend that implements them.
#[backend_extension(Flex, Autodiff: cfg(any(feature = "autodiff", test)))]
pub trait KernelOps: Backend {
    /// Gathers the windows of `input` into rows.
    fn gather_windows(input: FloatTensor<Self>, geometry: Geometry) -> FloatTensor<Self>;

    /// Adds each row's taps onto the input pixels they cover.
    fn scatter_add_windows(rows: FloatTensor<Self>, geometry: Geometry) -> FloatTensor<Self>;

    /// Adds each row's taps onto the input pixels they cover, starting every pixel from `bias`.
    fn scatter_add_windows_bias(rows: FloatTensor<Self>, bias: FloatTensor<Self>, geometry: Geometry) -> FloatTensor<Self>;

    /// Runs a transposed convolution, `[batch · pixels, channels_in]` input rows times
    /// `[channels_in, taps · channels]` weights, scattered onto `bias`. On one thread it works
    /// through a few images at a time.
    fn transposed_convolution(
        rows: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self>;

    /// Multiplies `[m, k]` by `[k, n]`.
    fn product(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Multiplies `[m, k]` by `[k, n]` and adds `bias`, `[n]`, to every row.
    fn affine(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Sums `[..., n]` over every axis but the last into `[n]`.
    #[cfg_attr(not(any(feature = "autodiff", test)), allow(dead_code, reason = "backward passes only"))]
    fn column_sums(values: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Takes the maximum of every channel over non-overlapping `kernel` windows.
    fn max_pool_windows(input: FloatTensor<Self>, kernel: [usize; 2]) -> FloatTensor<Self>;

    /// Routes each pooled pixel's gradient to the input pixel that held its maximum.
    #[cfg_attr(not(any(feature = "autodiff", test)), allow(dead_code, reason = "backward passes only"))]
    fn max_pool_windows_backward(
        input: FloatTensor<Self>,
        output: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        kernel: [usize; 2],
    ) -> FloatTensor<Self>;

    /// Normalizes every channel of `[rows, channels]` by its mean and biased variance over the
    /// rows, then scales by `gamma` and shifts by `beta`. Returns the output and the statistics,
    /// `[2, channels]` with the means in the first row.
    fn batch_norm_rows(
        input: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// Returns the gradients of [`KernelOps::batch_norm_rows`] for the input, `gamma` and `beta`,
    /// with the statistics' own dependence on the input.
    #[cfg_attr(not(any(feature = "autodiff", test)), allow(dead_code, reason = "backward passes only"))]
    fn batch_norm_rows_backward(
        input: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        statistics: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// Multiplies the negative values by `slope`.
    fn leaky_relu_kernel(input: FloatTensor<Self>, slope: f64) -> FloatTensor<Self>;

    /// Multiplies the gradient by `slope` where the input was negative.
    #[cfg_attr(not(any(feature = "autodiff", test)), allow(dead_code, reason = "backward passes only"))]
    fn leaky_relu_kernel_backward(input: FloatTensor<Self>, grad: FloatTensor<Self>, slope: f64) -> FloatTensor<Self>;

    /// Returns the hyperbolic tangent of every value.
    fn tanh_kernel(input: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Returns the gradient of [`KernelOps::tanh_kernel`] from its output and its gradient.
    #[cfg_attr(not(any(feature = "autodiff", test)), allow(dead_code, reason = "backward passes only"))]
    fn tanh_kernel_backward(output: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Sums `loss` of `[rows, columns]` logits against their targets over each row: `[rows]`.
    fn pixel_loss_rows(logits: FloatTensor<Self>, target: FloatTensor<Self>, loss: PixelLoss) -> FloatTensor<Self>;

    /// Returns the gradient of the logits of [`KernelOps::pixel_loss_rows`] from that of its
    /// row sums.
    #[cfg_attr(not(any(feature = "autodiff", test)), allow(dead_code, reason = "backward passes only"))]
    fn pixel_loss_rows_backward(
        logits: FloatTensor<Self>,
        target: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        loss: PixelLoss,
    ) -> FloatTensor<Self>;
}

/// Gathers every output pixel's window of `input` into one row.
///
/// # Shapes
///
/// - input: `[batch, height, width, channels]`, the sizes `geometry.input` gives
/// - output: `[batch · height_out · width_out, kernel_h · kernel_w · channels]`
pub fn gather(input: Tensor<4>, geometry: Geometry) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as KernelOps>::gather_windows(input.into_dispatch(), geometry))
}

/// Adds every row's taps onto the input pixels they cover, the adjoint of [`gather`].
///
/// # Shapes
///
/// - rows: `[batch · height_out · width_out, kernel_h · kernel_w · channels]`
/// - output: `[batch, height, width, channels]`, the sizes `geometry.input` gives
pub fn scatter_add(rows: Tensor<2>, geometry: Geometry) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as KernelOps>::scatter_add_windows(rows.into_dispatch(), geometry))
}

/// [`scatter_add`] onto `bias` in every pixel instead of zero, which saves a pass over the output
/// each way for the bias of a transposed convolution.
///
/// # Shapes
///
/// - rows: `[batch · height_out · width_out, kernel_h · kernel_w · channels]`
/// - bias: `[channels]`
/// - output: `[batch, height, width, channels]`, the sizes `geometry.input` gives
pub fn scatter_add_bias(rows: Tensor<2>, bias: Tensor<1>, geometry: Geometry) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as KernelOps>::scatter_add_windows_bias(rows.into_dispatch(), bias.into_dispatch(), geometry))
}

/// Takes the maximum of every channel over non-overlapping `kernel` windows.
///
/// Where several pixels of a window hold the maximum, the gradient goes to the first of them in
/// column-major order within the window, as a pairwise maximum over rows and then over columns
/// would send it.
///
/// # Shapes
///
/// - input: `[batch, height, width, channels]`, `height` and `width` multiples of `kernel`
/// - output: `[batch, height / kernel_h, width / kernel_w, channels]`
pub fn max_pool(input: Tensor<4>, kernel: [usize; 2]) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as KernelOps>::max_pool_windows(input.into_dispatch(), kernel))
}

/// Returns `x` where it is zero or positive and `slope · x` where it is negative, as Burn's
/// `leaky_relu` does.
pub fn leaky_relu<const D: usize>(input: Tensor<D>, slope: f64) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as KernelOps>::leaky_relu_kernel(input.into_dispatch(), slope))
}

/// Multiplies `rows` by `weight` and adds each product row's taps onto `bias` in the output
/// pixels they cover. On one thread it works through a few images at a time, so that each
/// group's products stay in the cache until they are added. Runs outside the autodiff graph,
/// for inference only.
///
/// # Shapes
///
/// - rows: `[batch · height_out · width_out, channels_in]`, one row per input pixel
/// - weight: `[channels_in, kernel_h · kernel_w · channels]`
/// - bias: `[channels]`
/// - output: `[batch, height, width, channels]`, the sizes `geometry.input` gives
pub fn transposed_convolution(rows: Tensor<2>, weight: Tensor<2>, bias: Tensor<1>, geometry: Geometry) -> Tensor<4> {
    let [rows, weight, bias] = [rows.into_dispatch(), weight.into_dispatch(), bias.into_dispatch()];
    Tensor::from_dispatch(<Dispatch as KernelOps>::transposed_convolution(rows, weight, bias, geometry))
}

/// Returns the hyperbolic tangent of every value, as Burn's `tanh` does to within 2 · 10⁻⁷.
pub fn tanh<const D: usize>(input: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as KernelOps>::tanh_kernel(input.into_dispatch()))
}

/// Sums `loss` of `logits` against `target` over each row. No gradient flows into `target`.
///
/// # Shapes
///
/// - logits, target: `[rows, columns]`
/// - output: `[rows]`
pub fn pixel_loss(logits: Tensor<2>, target: Tensor<2>, loss: PixelLoss) -> Tensor<1> {
    Tensor::from_dispatch(<Dispatch as KernelOps>::pixel_loss_rows(logits.into_dispatch(), target.into_dispatch(), loss))
}

/// Multiplies two matrices with the gemm crate, as burn-flex does, but writes the result
/// straight into the output tensor. burn-flex allocates its output as bytes and then copies them
/// into an aligned buffer, and runs products below 192³ multiply-adds on one thread.
///
/// # Shapes
///
/// - lhs: `[m, k]`
/// - rhs: `[k, n]`
/// - output: `[m, n]`
pub fn product(lhs: Tensor<2>, rhs: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as KernelOps>::product(lhs.into_dispatch(), rhs.into_dispatch()))
}

/// Multiplies two matrices and adds `bias` to every row of the product, which starts the
/// product's output from the bias instead of adding it in a second pass.
///
/// # Shapes
///
/// - lhs: `[m, k]`
/// - rhs: `[k, n]`
/// - bias: `[n]`
/// - output: `[m, n]`
pub fn affine(lhs: Tensor<2>, rhs: Tensor<2>, bias: Tensor<1>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as KernelOps>::affine(lhs.into_dispatch(), rhs.into_dispatch(), bias.into_dispatch()))
}

/// Normalizes every channel of `rows` over the rows by the batch's statistics, as Burn's
/// `BatchNorm` does in training. Returns the output and the statistics, means in the first row
/// and biased variances in the second, outside the autodiff graph.
///
/// # Shapes
///
/// - rows: `[rows, channels]`
/// - gamma, beta: `[channels]`
/// - output: `[rows, channels]` and `[2, channels]`
pub fn batch_norm_train(rows: Tensor<2>, gamma: Tensor<1>, beta: Tensor<1>, epsilon: f64) -> (Tensor<2>, Tensor<2>) {
    let (output, statistics) = <Dispatch as KernelOps>::batch_norm_rows(
        rows.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    );
    (Tensor::from_dispatch(output), Tensor::from_dispatch(statistics))
}

impl KernelOps for Flex {
    fn gather_windows(input: FloatTensor<Self>, geometry: Geometry) -> FloatTensor<Self> {
        let channels = channels(&input, 4);
        let input = contiguous(input);
        let input = values(&input);
        let per_image = geometry.pixels_per_image() * channels;
        let rows = zeroed_chunks(geometry.rows() * geometry.taps() * channels, geometry.rows_per_image() * geometry.taps() * channels, |image, out| {
            let input = &input[image * per_image..][..per_image];
            geometry.for_each_run(channels, |window, pixel, len| {
                out[window..window + len].copy_from_slice(&input[pixel..pixel + len]);
            });
        });
        let shape = [geometry.rows(), geometry.taps() * channels];
        flex_tensor(rows, shape.to_vec())
    }

    fn scatter_add_windows(rows: FloatTensor<Self>, geometry: Geometry) -> FloatTensor<Self> {
        scatter(rows, None, geometry)
    }

    fn scatter_add_windows_bias(rows: FloatTensor<Self>, bias: FloatTensor<Self>, geometry: Geometry) -> FloatTensor<Self> {
        let bias = contiguous(bias);
        scatter(rows, Some(values(&bias)), geometry)
    }

    fn transposed_convolution(
        rows: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self> {
        let bias = contiguous(bias);
        let bias = values(&bias);
        // On several threads one product for the whole batch, which gemm splits between them,
        // ran faster in `cargo bench --bench gan` than groups of images on one thread each.
        #[cfg(not(target_family = "wasm"))]
        if rayon::current_num_threads() > 1 {
            return scatter(multiply(rows, weight, None), Some(bias), geometry);
        }

        let (rows, [_, inputs], rows_strides) = matrix(contiguous(rows));
        let (weight, [weight_inputs, products], weight_strides) = matrix(weight);
        assert_eq!(inputs, weight_inputs, "inner dimensions of a transposed convolution");
        let channels = products / geometry.taps();
        assert_eq!(bias.len(), channels, "bias length of a transposed convolution");
        let [height, width] = geometry.input;
        let shape = vec![geometry.batch, height, width, channels];
        if geometry.rows() == 0 || inputs == 0 || products == 0 {
            return flex_tensor(bias.repeat(geometry.batch * height * width), shape);
        }
        let rows = Operand::new(&rows, rows_strides);
        let weight = Operand::new(&weight, weight_strides);

        // Groups of about a mebibyte of products.
        let per_image = geometry.rows_per_image() * products;
        let group = ((1 << 18) / per_image.max(1)).max(1);
        let output_per_image = geometry.pixels_per_image() * channels;
        let output = zeroed_chunks(geometry.batch * output_per_image, group * output_per_image, |index, out| {
            let images = out.len() / output_per_image.max(1);
            let first_row = index * group * geometry.rows_per_image();
            let group_rows = Operand {
                values: &rows.values[first_row * rows.strides[0] as usize..],
                strides: rows.strides,
            };
            let mut group_products = Vec::with_capacity(images * per_image);
            product_into(&mut group_products, group_rows, weight, [images * geometry.rows_per_image(), products], 0..inputs, gemm::Parallelism::None);
            for (image, out) in out.chunks_exact_mut(output_per_image).enumerate() {
                scatter_image(out, &group_products[image * per_image..][..per_image], bias, channels, geometry);
            }
        });
        flex_tensor(output, shape)
    }

    fn product(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        multiply(lhs, rhs, None)
    }

    fn affine(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        let bias = contiguous(bias);
        multiply(lhs, rhs, Some(values(&bias)))
    }

    fn column_sums(input: FloatTensor<Self>) -> FloatTensor<Self> {
        let shape = input.layout().shape();
        let columns = shape[shape.num_dims() - 1];
        let input = contiguous(input);
        let input = values(&input);
        if columns == 0 {
            return flex_tensor(Vec::new(), vec![0]);
        }

        let rows = input.len() / columns;
        let sums = sum_over_rows(rows, columns, columns, |range| {
            let stripe = stripe_sums(&input[range.start * columns..range.end * columns], columns);
            stripe.into_iter().map(f64::from).collect()
        });
        flex_tensor(sums.into_iter().map(|sum| sum as f32).collect(), vec![columns])
    }

    fn max_pool_windows(input: FloatTensor<Self>, kernel: [usize; 2]) -> FloatTensor<Self> {
        let pool = Pool::new(&input, kernel);
        let input = contiguous(input);
        let input = values(&input);
        let output = zeroed_chunks(pool.batch * pool.output_per_image(), pool.output_per_image(), |image, out| {
            let input = &input[image * pool.input_per_image()..][..pool.input_per_image()];
            for (pixel, maxima) in out.chunks_exact_mut(pool.channels).enumerate() {
                let mut taps = pool.taps(pixel);
                maxima.copy_from_slice(&input[taps.next().expect("a window tap")..][..pool.channels]);
                for tap in taps {
                    for (maximum, &value) in maxima.iter_mut().zip(&input[tap..tap + pool.channels]) {
                        *maximum = if value > *maximum { value } else { *maximum };
                    }
                }
            }
        });
        flex_tensor(output, pool.output_shape())
    }

    fn max_pool_windows_backward(
        input: FloatTensor<Self>,
        output: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        kernel: [usize; 2],
    ) -> FloatTensor<Self> {
        let pool = Pool::new(&input, kernel);
        let [input, output, grad] = [input, output, grad].map(contiguous);
        let [input, output, grad]: [&[f32]; 3] =
            [&input, &output, &grad].map(values);
        let input_grad = zeroed_chunks(pool.batch * pool.input_per_image(), pool.input_per_image(), |image, out| {
            let input = &input[image * pool.input_per_image()..][..pool.input_per_image()];
            let first = image * pool.output_per_image();
            let output = &output[first..first + pool.output_per_image()];
            let grad = &grad[first..first + pool.output_per_image()];
            // The gradient of each channel of the current window not yet given to a pixel.
            let mut left = vec![0.0; pool.channels];
            for (pixel, (maxima, grad)) in
                output.chunks_exact(pool.channels).zip(grad.chunks_exact(pool.channels)).enumerate()
            {
                left.copy_from_slice(grad);
                for tap in pool.taps(pixel) {
                    let values = &input[tap..tap + pool.channels];
                    let grads = &mut out[tap..tap + pool.channels];
                    for ((left, to), (value, maximum)) in left.iter_mut().zip(grads).zip(values.iter().zip(maxima)) {
                        // A bit mask rather than a branch, so the loop compiles to vector code.
                        let is_maximum = 0u32.wrapping_sub(u32::from(value == maximum));
                        *to = f32::from_bits(left.to_bits() & is_maximum);
                        *left = f32::from_bits(left.to_bits() & !is_maximum);
                    }
                }
            }
        });
        flex_tensor(input_grad, pool.input_shape())
    }

    fn leaky_relu_kernel(input: FloatTensor<Self>, slope: f64) -> FloatTensor<Self> {
        let shape = input.layout().shape().to_vec();
        let input = contiguous(input);
        let input = values(&input);
        let slope = slope as f32;
        // Both sides computed and one selected, so that the loop vectorizes. NaN stays NaN.
        let output = map_values(input, move |x| {
            let scaled = x * slope;
            if x < 0.0 { scaled } else { x }
        });
        flex_tensor(output, shape)
    }

    fn leaky_relu_kernel_backward(input: FloatTensor<Self>, grad: FloatTensor<Self>, slope: f64) -> FloatTensor<Self> {
        let shape = input.layout().shape().to_vec();
        let [input, grad] = [input, grad].map(contiguous);
        let [input, grad]: [&[f32]; 2] = [&input, &grad].map(values);
        let slope = slope as f32;
        let output = map_pairs(input, grad, move |x, g| g * if x < 0.0 { slope } else { 1.0 });
        flex_tensor(output, shape)
    }

    fn tanh_kernel(input: FloatTensor<Self>) -> FloatTensor<Self> {
        let shape = input.layout().shape().to_vec();
        let input = contiguous(input);
        let input = values(&input);
        flex_tensor(map_values(input, math::tanh), shape)
    }

    fn tanh_kernel_backward(output: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let shape = output.layout().shape().to_vec();
        let [output, grad] = [output, grad].map(contiguous);
        let [output, grad]: [&[f32]; 2] = [&output, &grad].map(values);
        flex_tensor(map_pairs(output, grad, |y, g| g * (1.0 - y * y)), shape)
    }

    fn pixel_loss_rows(logits: FloatTensor<Self>, target: FloatTensor<Self>, loss: PixelLoss) -> FloatTensor<Self> {
        let columns = channels(&logits, 2);
        let [logits, target] = [logits, target].map(contiguous);
        let [logits, target]: [&[f32]; 2] = [&logits, &target].map(values);
        assert_eq!(logits.len(), target.len(), "logits and targets of a pixel loss");
        let rows = logits.len() / columns.max(1);

        let sums = zeroed_chunks(rows, ROWS_PER_TASK, |chunk, sums| {
            for (offset, sum) in sums.iter_mut().enumerate() {
                let row = (chunk * ROWS_PER_TASK + offset) * columns;
                let [logits, target] = [logits, target].map(|values| &values[row..row + columns]);
                *sum = match loss {
                    PixelLoss::Bernoulli => lane_sum(logits, target, bernoulli_nll),
                    PixelLoss::SquaredError => lane_sum(logits, target, squared_error),
                };
            }
        });
        flex_tensor(sums, vec![rows])
    }

    fn pixel_loss_rows_backward(
        logits: FloatTensor<Self>,
        target: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        loss: PixelLoss,
    ) -> FloatTensor<Self> {
        let shape = logits.layout().shape().to_vec();
        let columns = channels(&logits, 2);
        let [logits, target, grad] = [logits, target, grad].map(contiguous);
        let [logits, target, grad]: [&[f32]; 3] = [&logits, &target, &grad].map(values);

        let output = zeroed_chunks(logits.len(), columns, |row, out| {
            let [logits, target] = [logits, target].map(|values| &values[row * columns..][..columns]);
            match loss {
                PixelLoss::Bernoulli => scaled_map(out, logits, target, grad[row], bernoulli_nll_derivative),
                PixelLoss::SquaredError => scaled_map(out, logits, target, grad[row], squared_error_derivative),
            }
        });
        flex_tensor(output, shape)
    }

    fn batch_norm_rows(
        input: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let shape = input.layout().shape().to_vec();
        let channels = channels(&input, 2);
        let [input, gamma, beta] = [input, gamma, beta].map(contiguous);
        let [input, gamma, beta]: [&[f32]; 3] =
            [&input, &gamma, &beta].map(values);

        let (mean, variance) = channel_statistics(input, channels);
        let scale: Vec<f32> = gamma.iter().zip(&variance).map(|(g, v)| g / (v + epsilon as f32).sqrt()).collect();
        let task = row_task(channels) * channels;
        let output = zeroed_chunks(input.len(), task, |index, out| {
            let input = &input[index * task..];
            for (out, row) in out.chunks_exact_mut(channels).zip(input.chunks_exact(channels)) {
                for (((out, x), (mean, scale)), beta) in out.iter_mut().zip(row).zip(mean.iter().zip(&scale)).zip(beta) {
                    *out = (x - mean) * scale + beta;
                }
            }
        });

        let statistics = [mean, variance].concat();
        (flex_tensor(output, shape), flex_tensor(statistics, vec![2, channels]))
    }

    fn batch_norm_rows_backward(
        input: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        statistics: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let shape = input.layout().shape().to_vec();
        let channels = channels(&input, 2);
        let [input, gamma, statistics, grad] = [input, gamma, statistics, grad].map(contiguous);
        let [input, gamma, statistics, grad]: [&[f32]; 4] = [&input, &gamma, &statistics, &grad]
            .map(values);
        let (mean, variance) = statistics.split_at(channels);
        let inverse_std: Vec<f32> = variance.iter().map(|v| 1.0 / (v + epsilon as f32).sqrt()).collect();

        // The sums over the rows of the gradient and of the gradient times the normalized input
        // are the gradients of beta and gamma.
        let rows = input.len() / channels.max(1);
        let sums = sum_over_rows(rows, channels, 2 * channels, |range| {
            let (mut beta_sums, mut gamma_sums) = (vec![0.0f64; channels], vec![0.0f64; channels]);
            let values = range.start * channels..range.end * channels;
            for (row, grad) in input[values.clone()].chunks_exact(channels).zip(grad[values].chunks_exact(channels)) {
                let per_channel = row.iter().zip(grad).zip(mean.iter().zip(&inverse_std));
                for (((x, g), (mean, inverse_std)), (beta_sum, gamma_sum)) in per_channel.zip(beta_sums.iter_mut().zip(gamma_sums.iter_mut())) {
                    *beta_sum += f64::from(*g);
                    *gamma_sum += f64::from(g * (x - mean) * inverse_std);
                }
            }
            [beta_sums, gamma_sums].concat()
        });
        let (beta_grad, gamma_grad) = sums.split_at(channels);
        let beta_grad: Vec<f32> = beta_grad.iter().map(|&sum| sum as f32).collect();
        let gamma_grad: Vec<f32> = gamma_grad.iter().map(|&sum| sum as f32).collect();

        let count = rows as f32;
        let task = row_task(channels) * channels;
        let input_grad = zeroed_chunks(input.len(), task, |index, out| {
            let values = index * task..;
            let rows = out.chunks_exact_mut(channels).zip(input[values.clone()].chunks_exact(channels)).zip(grad[values].chunks_exact(channels));
            for ((out, row), grad) in rows {
                for channel in 0..channels {
                    let normalized = (row[channel] - mean[channel]) * inverse_std[channel];
                    let centred = grad[channel] - beta_grad[channel] / count - normalized * gamma_grad[channel] / count;
                    out[channel] = gamma[channel] * inverse_std[channel] * centred;
                }
            }
        });

        (
            flex_tensor(input_grad, shape),
            flex_tensor(gamma_grad, vec![channels]),
            flex_tensor(beta_grad, vec![channels]),
        )
    }
}

/// The sizes of a max pooling over non-overlapping windows of a channels-last batch.
struct Pool {
    batch: usize,
    input: [usize; 2],
    kernel: [usize; 2],
    channels: usize,
}

impl Pool {
    fn new(input: &FloatTensor<Flex>, kernel: [usize; 2]) -> Self {
        let shape = input.layout().shape();
        debug_assert_eq!(shape.num_dims(), 4, "tensor rank");
        debug_assert!(shape[1] % kernel[0] == 0 && shape[2] % kernel[1] == 0, "pooling leaves a remainder");
        Pool { batch: shape[0], input: [shape[1], shape[2]], kernel, channels: shape[3] }
    }

    fn output(&self) -> [usize; 2] {
        [self.input[0] / self.kernel[0], self.input[1] / self.kernel[1]]
    }

    fn input_per_image(&self) -> usize {
        self.input[0] * self.input[1] * self.channels
    }

    fn output_per_image(&self) -> usize {
        self.output()[0] * self.output()[1] * self.channels
    }

    #[cfg_attr(not(any(feature = "autodiff", test)), allow(dead_code, reason = "backward passes only"))]
    fn input_shape(&self) -> Vec<usize> {
        vec![self.batch, self.input[0], self.input[1], self.channels]
    }

    fn output_shape(&self) -> Vec<usize> {
        let [height, width] = self.output();
        vec![self.batch, height, width, self.channels]
    }

    /// Returns the offsets in one image's values of the first channel of each input pixel under
    /// output `pixel`'s window, columns outer and rows inner.
    fn taps(&self, pixel: usize) -> impl Iterator<Item = usize> {
        let [kernel_h, kernel_w] = self.kernel;
        let out_w = self.output()[1];
        let (y0, x0) = (pixel / out_w * kernel_h, pixel % out_w * kernel_w);
        let (width, channels) = (self.input[1], self.channels);
        (0..kernel_w).flat_map(move |tap_x| (0..kernel_h).map(move |tap_y| ((y0 + tap_y) * width + x0 + tap_x) * channels))
    }
}

/// Returns the size of the last axis of a `rank`-dimensional tensor.
fn channels(tensor: &FloatTensor<Flex>, rank: usize) -> usize {
    let shape = tensor.layout().shape();
    debug_assert_eq!(shape.num_dims(), rank, "tensor rank");
    shape[rank - 1]
}

/// Returns `tensor` with its values contiguous in row-major order, copying only a strided view.
fn contiguous(tensor: FloatTensor<Flex>) -> FloatTensor<Flex> {
    debug_assert_eq!(tensor.dtype(), DType::F32, "window kernels run on f32 tensors");
    tensor.to_contiguous()
}

/// Returns the values of a contiguous `f32` tensor from [`contiguous`].
fn values(tensor: &FloatTensor<Flex>) -> &[f32] {
    tensor.as_slice().expect("a contiguous f32 tensor")
}

fn flex_tensor(values: Vec<f32>, shape: Vec<usize>) -> FloatTensor<Flex> {
    burn::backend::flex::FlexTensor::from_data(TensorData::new(values, shape))
}

impl Geometry {
    fn taps(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }

    fn rows_per_image(&self) -> usize {
        self.output[0] * self.output[1]
    }

    fn rows(&self) -> usize {
        self.batch * self.rows_per_image()
    }

    fn pixels_per_image(&self) -> usize {
        self.input[0] * self.input[1]
    }

    /// Calls `f(window, pixel, len)` for every window row of every output pixel of one image
    /// that reaches into the input. The `len` values from offset `window` in the image's rows
    /// belong to the input pixels whose values start at offset `pixel` in the image.
    fn for_each_run(&self, channels: usize, mut f: impl FnMut(usize, usize, usize)) {
        let [height, width] = self.input.map(|side| side as isize);
        let [kernel_h, kernel_w] = self.kernel;
        let [stride_y, stride_x] = self.stride;
        let [before_y, before_x] = self.before.map(|side| side as isize);
        let window_row = kernel_w * channels;

        for out_y in 0..self.output[0] {
            for out_x in 0..self.output[1] {
                let window = (out_y * self.output[1] + out_x) * kernel_h * window_row;
                // The window's first column, and the taps of each row that fall inside the input.
                let x0 = (out_x * stride_x) as isize - before_x;
                let first = (-x0).max(0) as usize;
                let last = (width - x0).clamp(0, kernel_w as isize) as usize;
                if first >= last {
                    continue;
                }
                let len = (last - first) * channels;
                for tap_y in 0..kernel_h {
                    let y = (out_y * stride_y + tap_y) as isize - before_y;
                    if y < 0 || y >= height {
                        continue;
                    }
                    let pixel = (y * width + x0) as usize + first;
                    f(window + tap_y * window_row + first * channels, pixel * channels, len);
                }
            }
        }
    }
}

/// Adds each row's taps onto the input pixels they cover, each pixel starting from `bias` or
/// from zero.
fn scatter(rows: FloatTensor<Flex>, bias: Option<&[f32]>, geometry: Geometry) -> FloatTensor<Flex> {
    let channels = channels(&rows, 2) / geometry.taps();
    let rows = contiguous(rows);
    let rows = values(&rows);
    if let Some(bias) = bias {
        assert_eq!(bias.len(), channels, "bias length of a scatter-add");
    }
    let per_image = geometry.rows_per_image() * geometry.taps() * channels;
    let output = zeroed_chunks(geometry.batch * geometry.pixels_per_image() * channels, geometry.pixels_per_image() * channels, |image, out| {
        let rows = &rows[image * per_image..][..per_image];
        match bias {
            Some(bias) => scatter_image(out, rows, bias, channels, geometry),
            None => add_taps(out, rows, channels, geometry),
        }
    });
    let [height, width] = geometry.input;
    flex_tensor(output, vec![geometry.batch, height, width, channels])
}

/// Fills one image's zeroed output with `bias` in every pixel, then adds its rows' taps.
fn scatter_image(out: &mut [f32], rows: &[f32], bias: &[f32], channels: usize, geometry: Geometry) {
    for pixel in out.chunks_exact_mut(channels) {
        pixel.copy_from_slice(bias);
    }
    add_taps(out, rows, channels, geometry);
}

/// Adds one image's rows' taps onto the output pixels they cover.
fn add_taps(out: &mut [f32], rows: &[f32], channels: usize, geometry: Geometry) {
    geometry.for_each_run(channels, |window, pixel, len| {
        for (sum, value) in out[pixel..pixel + len].iter_mut().zip(&rows[window..window + len]) {
            *sum += value;
        }
    });
}

/// Multiplies `[m, k]` by `[k, n]` with the gemm crate into a new tensor, which starts from
/// `bias` in every row where one is given and from zero otherwise.
fn multiply(lhs: FloatTensor<Flex>, rhs: FloatTensor<Flex>, bias: Option<&[f32]>) -> FloatTensor<Flex> {
    let (lhs, [m, k], lhs_strides) = matrix(lhs);
    let (rhs, [rhs_k, n], rhs_strides) = matrix(rhs);
    assert_eq!(k, rhs_k, "inner dimensions of a matrix product");
    if let Some(bias) = bias {
        assert_eq!(bias.len(), n, "bias length of a matrix product");
    }
    if m == 0 || n == 0 || k == 0 {
        let output = bias.map_or_else(|| vec![0.0; m * n], |bias| bias.repeat(m));
        return flex_tensor(output, vec![m, n]);
    }
    let lhs = Operand::new(&lhs, lhs_strides);
    let rhs = Operand::new(&rhs, rhs_strides);

    #[cfg(not(target_family = "wasm"))]
    if let Some(parts) = inner_splits(m, n, k) {
        return flex_tensor(split_product(lhs, rhs, [m, n, k], bias, parts), vec![m, n]);
    }
    let mut output = Vec::with_capacity(m * n);
    if let Some(bias) = bias {
        output = bias.repeat(m);
    }
    product_into(&mut output, lhs, rhs, [m, n], 0..k, parallelism(m * n * k));
    flex_tensor(output, vec![m, n])
}

/// A matrix for the gemm crate: its values from the first element on, and its row and column
/// strides.
#[derive(Clone, Copy)]
struct Operand<'a> {
    values: &'a [f32],
    strides: [isize; 2],
}

impl<'a> Operand<'a> {
    /// Reads a non-empty matrix from [`matrix`].
    fn new(tensor: &'a FloatTensor<Flex>, strides: [isize; 2]) -> Self {
        let values: &[f32] = tensor.storage();
        Self { values: &values[tensor.layout().start_offset()..], strides }
    }
}

/// Computes the product of `lhs` and `rhs` over the inner indices `inner` into the `[m, n]`
/// row-major `output`. Adds it to the values there if `output` contains `m · n` values, and
/// writes it into the empty `output` otherwise.
fn product_into(
    output: &mut Vec<f32>,
    lhs: Operand,
    rhs: Operand,
    [m, n]: [usize; 2],
    inner: std::ops::Range<usize>,
    parallelism: gemm::Parallelism,
) {
    let accumulate = !output.is_empty();
    assert!(if accumulate { output.len() == m * n } else { output.capacity() >= m * n }, "output of a matrix product");
    let [lhs_row, lhs_column] = lhs.strides;
    let [rhs_row, rhs_column] = rhs.strides;
    let offset = |operand: &Operand, stride: isize| operand.values.as_ptr().wrapping_offset(inner.start as isize * stride);

    // SAFETY: [`matrix`] checked that every element `row · row_stride + column · column_stride`
    // of both operands lies inside its values, so do the elements of the inner indices `inner`
    // of `0..k`. The output has room for `m · n` values in row-major order, and does not overlap
    // the operands. Without accumulating, gemm does not read the output (`read_dst` false) and
    // writes every one of its values.
    unsafe {
        gemm::gemm(
            m,
            n,
            inner.len(),
            output.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            offset(&lhs, lhs_column),
            lhs_column,
            lhs_row,
            offset(&rhs, rhs_row),
            rhs_column,
            rhs_row,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
        output.set_len(m * n);
    }
}

/// Returns into how many ranges of inner indices to split a product of `[m, k]` by `[k, n]`,
/// or `None` to leave it to the gemm crate. Splitting pays where `k` is long and the output
/// small, as in a weight gradient, which sums over every pixel of the batch. gemm splits the
/// output of such a product into few blocks and runs each block's inner loop on one thread. In
/// `throughput` these products ran 1.2 to 2.2 times faster as one range per thread.
#[cfg(not(target_family = "wasm"))]
fn inner_splits(m: usize, n: usize, k: usize) -> Option<usize> {
    let threads = rayon::current_num_threads();
    (threads > 1 && k >= 4 * m.max(n) && m * n * k >= 1 << 20).then_some(threads)
}

/// Multiplies `[m, k]` by `[k, n]` as `parts` products over ranges of the inner indices, on the
/// worker threads, and adds their results onto `bias` or zero.
#[cfg(not(target_family = "wasm"))]
fn split_product(lhs: Operand, rhs: Operand, [m, n, k]: [usize; 3], bias: Option<&[f32]>, parts: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let part_len = k.div_ceil(parts);
    let partials: Vec<Vec<f32>> = (0..k.div_ceil(part_len))
        .into_par_iter()
        .map(|part| {
            let inner = part * part_len..((part + 1) * part_len).min(k);
            let mut partial = Vec::with_capacity(m * n);
            product_into(&mut partial, lhs, rhs, [m, n], inner, gemm::Parallelism::None);
            partial
        })
        .collect();

    let mut output = bias.map_or_else(|| vec![0.0; m * n], |bias| bias.repeat(m));
    for partial in partials {
        for (sum, value) in output.iter_mut().zip(partial) {
            *sum += value;
        }
    }
    output
}

/// Returns an `f32` matrix whose layout the gemm crate can read directly, copying a view
/// with negative strides, with its sizes and its row and column strides.
fn matrix(tensor: FloatTensor<Flex>) -> (FloatTensor<Flex>, [usize; 2], [isize; 2]) {
    debug_assert_eq!(tensor.dtype(), DType::F32, "kernels run on f32 tensors");
    let layout = tensor.layout();
    assert_eq!(layout.num_dims(), 2, "a matrix product of {}-dimensional tensors", layout.num_dims());
    let tensor = if layout.strides().iter().any(|&stride| stride < 0) { tensor.to_contiguous() } else { tensor };

    let layout = tensor.layout();
    let shape = layout.shape();
    let sizes = [shape[0], shape[1]];
    let strides = [layout.strides()[0], layout.strides()[1]];
    let last = sizes.iter().zip(strides).map(|(&size, stride)| size.saturating_sub(1) * stride as usize).sum::<usize>();
    assert!(
        sizes.contains(&0) || layout.start_offset() + last < tensor.storage::<f32>().len(),
        "matrix layout reaches past its storage"
    );
    (tensor, sizes, strides)
}

/// Returns how the gemm crate may split a product of `multiply_adds`: over all threads from a
/// million on, which burn-flex leaves to one thread below 192³.
fn parallelism(multiply_adds: usize) -> gemm::Parallelism {
    #[cfg(not(target_family = "wasm"))]
    if multiply_adds >= 1 << 20 {
        return gemm::Parallelism::Rayon(0);
    }
    let _ = multiply_adds;
    gemm::Parallelism::None
}

/// Returns the mean and the biased variance of every channel of row-major `[rows, channels]`
/// values, summed in `f64`.
fn channel_statistics(values: &[f32], channels: usize) -> (Vec<f32>, Vec<f32>) {
    let rows = values.len() / channels.max(1);
    let rows_of = |range: std::ops::Range<usize>| values[range.start * channels..range.end * channels].chunks_exact(channels);

    let sums = sum_over_rows(rows, channels, channels, |range| {
        let mut sums = vec![0.0f64; channels];
        for row in rows_of(range) {
            for (sum, value) in sums.iter_mut().zip(row) {
                *sum += f64::from(*value);
            }
        }
        sums
    });
    let mean: Vec<f32> = sums.iter().map(|sum| (sum / rows as f64) as f32).collect();

    let squares = sum_over_rows(rows, channels, channels, |range| {
        let mut squares = vec![0.0f64; channels];
        for row in rows_of(range) {
            for ((square, value), mean) in squares.iter_mut().zip(row).zip(&mean) {
                *square += f64::from(value - mean).powi(2);
            }
        }
        squares
    });
    let variance = squares.iter().map(|square| (square / rows as f64) as f32).collect();
    (mean, variance)
}

/// Returns how many rows of `columns` values make one task on the worker threads.
fn row_task(columns: usize) -> usize {
    (ELEMENTS_PER_TASK / columns.max(1)).max(1)
}

/// Runs `f` on ranges of whole rows, from `rows` rows of `columns` values, on the worker threads
/// where there are any, and adds up the `width` values each returns. Returns `width` zeros for
/// no rows.
fn sum_over_rows(rows: usize, columns: usize, width: usize, f: impl Fn(std::ops::Range<usize>) -> Vec<f64> + Send + Sync) -> Vec<f64> {
    let task = row_task(columns);
    let ranges = (0..rows.div_ceil(task)).map(|index| index * task..((index + 1) * task).min(rows));
    #[cfg(not(target_family = "wasm"))]
    let partials: Vec<Vec<f64>> = {
        use rayon::prelude::*;
        ranges.collect::<Vec<_>>().into_par_iter().map(&f).collect()
    };
    #[cfg(target_family = "wasm")]
    let partials: Vec<Vec<f64>> = ranges.map(&f).collect();

    let mut sums = vec![0.0f64; width];
    for partial in partials {
        for (sum, value) in sums.iter_mut().zip(partial) {
            *sum += value;
        }
    }
    sums
}

/// Sums whole rows of `columns` values column by column. The rows are added a stripe of several
/// rows at a time into one accumulator of the stripe's width, so the inner loop adds long
/// contiguous runs even when rows are short. The stripe's rows are added up at the end.
fn stripe_sums(rows: &[f32], columns: usize) -> Vec<f32> {
    let width = 256usize.div_ceil(columns) * columns;
    let mut stripe_sum = vec![0.0f32; width];
    let mut stripes = rows.chunks_exact(width);
    for stripe in &mut stripes {
        for (sum, value) in stripe_sum.iter_mut().zip(stripe) {
            *sum += value;
        }
    }
    // The remainder is whole rows too, as `rows` is.
    for (sum, value) in stripe_sum.iter_mut().zip(stripes.remainder()) {
        *sum += value;
    }

    let mut sums = vec![0.0f32; columns];
    for row in stripe_sum.chunks_exact(columns) {
        for (sum, value) in sums.iter_mut().zip(row) {
            *sum += value;
        }
    }
    sums
}

/// Elements of an element-wise kernel per task on the worker threads.
const ELEMENTS_PER_TASK: usize = 1 << 14;

/// Returns `f(value)` for every value, as [`map_pairs`] computes it.
fn map_values(input: &[f32], f: impl Fn(f32) -> f32 + Clone + Send + Sync) -> Vec<f32> {
    map_pairs(input, input, move |x, _| f(x))
}

/// Returns `f(a[i], b[i])` for every position `i`, computed in tasks of [`ELEMENTS_PER_TASK`]
/// values on the worker threads where there are any.
fn map_pairs(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Clone + Send + Sync) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "lengths of an element-wise kernel's inputs");
    let fill = |task: usize, out: &mut [MaybeUninit<f32>]| {
        // A copy of its captured values that the compiler need not reload after every store,
        // which lets it vectorize the loop.
        let f = f.clone();
        let start = task * ELEMENTS_PER_TASK;
        for ((y, &a), &b) in out.iter_mut().zip(&a[start..]).zip(&b[start..]) {
            y.write(f(a, b));
        }
    };
    // SAFETY: task `t` gets the `len - t · ELEMENTS_PER_TASK` or fewer values from
    // `t · ELEMENTS_PER_TASK` on, and `a` and `b` have `len` values, so its loop writes all of them.
    unsafe { filled_chunks(a.len(), ELEMENTS_PER_TASK, fill) }
}

/// Rows of a row-wise loss per task on the worker threads.
const ROWS_PER_TASK: usize = 16;

/// Sums `f(logit, target)` over a row in eight independent partial sums, which the compiler
/// keeps in vector registers: a single running sum would have to add one value at a time.
#[inline(always)]
fn lane_sum(logits: &[f32], target: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    const LANES: usize = 8;
    let mut lanes = [0.0f32; LANES];
    let mut logit_chunks = logits.chunks_exact(LANES);
    let mut target_chunks = target.chunks_exact(LANES);
    for (x, t) in (&mut logit_chunks).zip(&mut target_chunks) {
        for lane in 0..LANES {
            lanes[lane] += f(x[lane], t[lane]);
        }
    }
    let rest: f32 = logit_chunks.remainder().iter().zip(target_chunks.remainder()).map(|(&x, &t)| f(x, t)).sum();
    lanes.iter().sum::<f32>() + rest
}

/// Writes `scale · f(logit, target)` for every pixel of a row into `out`.
#[inline(always)]
fn scaled_map(out: &mut [f32], logits: &[f32], target: &[f32], scale: f32, f: impl Fn(f32, f32) -> f32) {
    for ((y, &x), &t) in out.iter_mut().zip(logits).zip(target) {
        *y = scale * f(x, t);
    }
}

/// `max(x, 0) − x·t + ln(1 + e^−|x|)`: the Bernoulli negative log-likelihood of `t` under logit `x`.
#[inline(always)]
fn bernoulli_nll(x: f32, t: f32) -> f32 {
    let (decay, _) = sigmoid_parts(x);
    let positive = if x > 0.0 { x } else { 0.0 };
    positive - x * t + ln_one_plus_unit(decay)
}

/// `σ(x) − t`, the derivative of [`bernoulli_nll`] in `x`.
#[inline(always)]
fn bernoulli_nll_derivative(x: f32, t: f32) -> f32 {
    sigmoid_parts(x).1 - t
}

/// `(σ(x) − t)²`.
#[inline(always)]
fn squared_error(x: f32, t: f32) -> f32 {
    let error = sigmoid_parts(x).1 - t;
    error * error
}

/// `2 (σ(x) − t) σ(x) (1 − σ(x))`, the derivative of [`squared_error`] in `x`.
#[inline(always)]
fn squared_error_derivative(x: f32, t: f32) -> f32 {
    let sigmoid = sigmoid_parts(x).1;
    2.0 * (sigmoid - t) * sigmoid * (1.0 - sigmoid)
}

/// Returns `len` values built in chunks of `chunk` values, one per image: `f(image, chunk)` gets
/// its chunk zeroed and fills it in. The chunks are zeroed and filled in parallel where threads
/// are available, so the main thread does not zero the whole buffer first.
fn zeroed_chunks(len: usize, chunk: usize, f: impl Fn(usize, &mut [f32]) + Send + Sync) -> Vec<f32> {
    if chunk == 0 {
        return vec![0.0; len];
    }
    let fill = |image: usize, out: &mut [MaybeUninit<f32>]| {
        out.fill(MaybeUninit::new(0.0));
        // SAFETY: every element of `out` was just initialized, and `MaybeUninit<f32>` has the
        // layout of `f32`.
        let out = unsafe { &mut *(out as *mut [MaybeUninit<f32>] as *mut [f32]) };
        f(image, out);
    };
    // SAFETY: `fill` zeroes every element of its chunk first.
    unsafe { filled_chunks(len, chunk, fill) }
}

/// Returns `len` values built in chunks of `chunk` values by `fill(index, chunk)`, on the worker
/// threads where there are any.
///
/// # Safety
///
/// `fill` must initialize every element of the chunk it gets.
unsafe fn filled_chunks(len: usize, chunk: usize, fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Send + Sync) -> Vec<f32> {
    assert!(chunk > 0, "chunks of no values");
    let mut values: Vec<f32> = Vec::with_capacity(len);
    let spare = &mut values.spare_capacity_mut()[..len];
    #[cfg(not(target_family = "wasm"))]
    {
        use rayon::prelude::*;
        spare.par_chunks_mut(chunk).enumerate().for_each(|(index, out)| fill(index, out));
    }
    #[cfg(target_family = "wasm")]
    spare.chunks_mut(chunk).enumerate().for_each(|(index, out)| fill(index, out));

    // SAFETY: the chunks cover all `len` elements, and the caller's `fill` initialized each.
    unsafe { values.set_len(len) };
    values
}

#[cfg(any(feature = "autodiff", test))]
mod autodiff {
    use burn::backend::Autodiff;
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
    use burn::backend::tensor::FloatTensor;

    use super::{Geometry, KernelOps, PixelLoss};

    #[derive(Debug)]
    struct Gather;

    #[derive(Debug)]
    struct ScatterAdd;

    #[derive(Debug)]
    struct ScatterAddBias;

    #[derive(Debug)]
    struct Product;

    #[derive(Debug)]
    struct Affine;

    #[derive(Debug)]
    struct MaxPool;

    #[derive(Debug)]
    struct LeakyRelu;

    #[derive(Debug)]
    struct BatchNormRows;

    #[derive(Debug)]
    struct PixelLossRows;

    #[derive(Debug)]
    struct Tanh;

    impl<B: KernelOps> Backward<B, 1> for Gather {
        type State = Geometry;

        fn backward(self, ops: Ops<Geometry, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
            let geometry = ops.state;
            unary::<B, _>(ops.parents, ops.node, grads, |grad| B::scatter_add_windows(grad, geometry));
        }
    }

    impl<B: KernelOps> Backward<B, 1> for ScatterAdd {
        type State = Geometry;

        fn backward(self, ops: Ops<Geometry, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
            let geometry = ops.state;
            unary::<B, _>(ops.parents, ops.node, grads, |grad| B::gather_windows(grad, geometry));
        }
    }

    impl<B: KernelOps> Backward<B, 2> for ScatterAddBias {
        type State = Geometry;

        fn backward(self, ops: Ops<Geometry, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
            let [rows_node, bias_node] = ops.parents;
            let grad = grads.consume::<B>(&ops.node);
            let geometry = ops.state;

            if let Some(node) = bias_node {
                grads.register::<B>(node.id, B::column_sums(grad.clone()));
            }
            if let Some(node) = rows_node {
                grads.register::<B>(node.id, B::gather_windows(grad, geometry));
            }
        }
    }

    impl<B: KernelOps> Backward<B, 2> for Product {
        /// The two factors.
        type State = (FloatTensor<B>, FloatTensor<B>);

        fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
            let [lhs_node, rhs_node] = ops.parents;
            let grad = grads.consume::<B>(&ops.node);
            let (lhs, rhs) = ops.state;

            if let Some(node) = rhs_node {
                grads.register::<B>(node.id, B::product(B::float_transpose(lhs), grad.clone()));
            }
            if let Some(node) = lhs_node {
                grads.register::<B>(node.id, B::product(grad, B::float_transpose(rhs)));
            }
        }
    }

    impl<B: KernelOps> Backward<B, 3> for Affine {
        /// The two factors.
        type State = (FloatTensor<B>, FloatTensor<B>);

        fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
            let [lhs_node, rhs_node, bias_node] = ops.parents;
            let grad = grads.consume::<B>(&ops.node);
            let (lhs, rhs) = ops.state;

            if let Some(node) = bias_node {
                grads.register::<B>(node.id, B::column_sums(grad.clone()));
            }
            if let Some(node) = rhs_node {
                grads.register::<B>(node.id, B::product(B::float_transpose(lhs), grad.clone()));
            }
            if let Some(node) = lhs_node {
                grads.register::<B>(node.id, B::product(grad, B::float_transpose(rhs)));
            }
        }
    }

    impl<B: KernelOps> Backward<B, 1> for MaxPool {
        /// The input, the output and the kernel size.
        type State = (FloatTensor<B>, FloatTensor<B>, [usize; 2]);

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
            let (input, output, kernel) = ops.state;
            unary::<B, _>(ops.parents, ops.node, grads, |grad| {
                B::max_pool_windows_backward(input, output, grad, kernel)
            });
        }
    }

    impl<B: KernelOps> Backward<B, 1> for LeakyRelu {
        /// The input and the slope.
        type State = (FloatTensor<B>, f64);

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
            let (input, slope) = ops.state;
            unary::<B, _>(ops.parents, ops.node, grads, |grad| B::leaky_relu_kernel_backward(input, grad, slope));
        }
    }

    impl<B: KernelOps> Backward<B, 3> for BatchNormRows {
        /// The input, gamma, the statistics and epsilon.
        type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, f64);

        fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
            let [input_node, gamma_node, beta_node] = ops.parents;
            let grad = grads.consume::<B>(&ops.node);
            let (input, gamma, statistics, epsilon) = ops.state;

            let (input_grad, gamma_grad, beta_grad) = B::batch_norm_rows_backward(input, gamma, statistics, grad, epsilon);
            for (node, grad) in [(input_node, input_grad), (gamma_node, gamma_grad), (beta_node, beta_grad)] {
                if let Some(node) = node {
                    grads.register::<B>(node.id, grad);
                }
            }
        }
    }

    impl<B: KernelOps> Backward<B, 1> for Tanh {
        /// The output.
        type State = FloatTensor<B>;

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
            let output = ops.state;
            unary::<B, _>(ops.parents, ops.node, grads, |grad| B::tanh_kernel_backward(output, grad));
        }
    }

    impl<B: KernelOps> Backward<B, 1> for PixelLossRows {
        /// The logits, the targets and the loss.
        type State = (FloatTensor<B>, FloatTensor<B>, PixelLoss);

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
            let (logits, target, loss) = ops.state;
            unary::<B, _>(ops.parents, ops.node, grads, |grad| B::pixel_loss_rows_backward(logits, target, grad, loss));
        }
    }

    impl<B: KernelOps, C: CheckpointStrategy> KernelOps for Autodiff<B, C> {
        fn gather_windows(input: FloatTensor<Self>, geometry: Geometry) -> FloatTensor<Self> {
            let (primitive, node) = input.into_parts();
            match Gather.prepare::<C>([node]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish(geometry, B::gather_windows(primitive, geometry)),
                OpsKind::UnTracked(prep) => prep.finish(B::gather_windows(primitive, geometry)),
            }
        }

        fn scatter_add_windows(rows: FloatTensor<Self>, geometry: Geometry) -> FloatTensor<Self> {
            let (primitive, node) = rows.into_parts();
            match ScatterAdd.prepare::<C>([node]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish(geometry, B::scatter_add_windows(primitive, geometry)),
                OpsKind::UnTracked(prep) => prep.finish(B::scatter_add_windows(primitive, geometry)),
            }
        }

        fn scatter_add_windows_bias(rows: FloatTensor<Self>, bias: FloatTensor<Self>, geometry: Geometry) -> FloatTensor<Self> {
            let (rows, rows_node) = rows.into_parts();
            let (bias, bias_node) = bias.into_parts();
            match ScatterAddBias.prepare::<C>([rows_node, bias_node]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish(geometry, B::scatter_add_windows_bias(rows, bias, geometry)),
                OpsKind::UnTracked(prep) => prep.finish(B::scatter_add_windows_bias(rows, bias, geometry)),
            }
        }

        /// Runs the inner backend's kernel outside the autodiff graph: it is for inference.
        fn transposed_convolution(
            rows: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            bias: FloatTensor<Self>,
            geometry: Geometry,
        ) -> FloatTensor<Self> {
            let [rows, weight, bias] = [rows, weight, bias].map(|tensor| tensor.into_primitive());
            FloatTensor::<Self>::new(B::transposed_convolution(rows, weight, bias, geometry))
        }

        fn product(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
            let (lhs, lhs_node) = lhs.into_parts();
            let (rhs, rhs_node) = rhs.into_parts();
            match Product.prepare::<C>([lhs_node, rhs_node]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => {
                    let output = B::product(lhs.clone(), rhs.clone());
                    prep.finish((lhs, rhs), output)
                }
                OpsKind::UnTracked(prep) => prep.finish(B::product(lhs, rhs)),
            }
        }

        fn affine(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
            let (lhs, lhs_node) = lhs.into_parts();
            let (rhs, rhs_node) = rhs.into_parts();
            let (bias, bias_node) = bias.into_parts();
            match Affine.prepare::<C>([lhs_node, rhs_node, bias_node]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => {
                    let output = B::affine(lhs.clone(), rhs.clone(), bias);
                    prep.finish((lhs, rhs), output)
                }
                OpsKind::UnTracked(prep) => prep.finish(B::affine(lhs, rhs, bias)),
            }
        }

        /// Runs the inner backend's sums, which are not differentiated again.
        fn column_sums(values: FloatTensor<Self>) -> FloatTensor<Self> {
            FloatTensor::<Self>::new(B::column_sums(values.into_primitive()))
        }

        fn max_pool_windows(input: FloatTensor<Self>, kernel: [usize; 2]) -> FloatTensor<Self> {
            let (primitive, node) = input.into_parts();
            match MaxPool.prepare::<C>([node]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => {
                    let output = B::max_pool_windows(primitive.clone(), kernel);
                    prep.finish((primitive, output.clone(), kernel), output)
                }
                OpsKind::UnTracked(prep) => prep.finish(B::max_pool_windows(primitive, kernel)),
            }
        }

        fn batch_norm_rows(
            input: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            epsilon: f64,
        ) -> (FloatTensor<Self>, FloatTensor<Self>) {
            let (input, input_node) = input.into_parts();
            let (gamma, gamma_node) = gamma.into_parts();
            let (beta, beta_node) = beta.into_parts();
            let (output, statistics) = match BatchNormRows.prepare::<C>([input_node, gamma_node, beta_node]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => {
                    let (output, statistics) = B::batch_norm_rows(input.clone(), gamma.clone(), beta, epsilon);
                    (prep.finish((input, gamma, statistics.clone(), epsilon), output), statistics)
                }
                OpsKind::UnTracked(prep) => {
                    let (output, statistics) = B::batch_norm_rows(input, gamma, beta, epsilon);
                    (prep.finish(output), statistics)
                }
            };
            (output, FloatTensor::<Self>::new(statistics))
        }

        /// Runs the inner backend's backward pass, whose results are not differentiated again.
        fn batch_norm_rows_backward(
            input: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            statistics: FloatTensor<Self>,
            grad: FloatTensor<Self>,
            epsilon: f64,
        ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
            let [input, gamma, statistics, grad] = [input, gamma, statistics, grad].map(|tensor| tensor.into_primitive());
            let (input_grad, gamma_grad, beta_grad) = B::batch_norm_rows_backward(input, gamma, statistics, grad, epsilon);
            (FloatTensor::<Self>::new(input_grad), FloatTensor::<Self>::new(gamma_grad), FloatTensor::<Self>::new(beta_grad))
        }

        fn leaky_relu_kernel(input: FloatTensor<Self>, slope: f64) -> FloatTensor<Self> {
            let (primitive, node) = input.into_parts();
            match LeakyRelu.prepare::<C>([node]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => {
                    let output = B::leaky_relu_kernel(primitive.clone(), slope);
                    prep.finish((primitive, slope), output)
                }
                OpsKind::UnTracked(prep) => prep.finish(B::leaky_relu_kernel(primitive, slope)),
            }
        }

        /// Runs the inner backend's backward pass, whose result is not differentiated again.
        fn leaky_relu_kernel_backward(input: FloatTensor<Self>, grad: FloatTensor<Self>, slope: f64) -> FloatTensor<Self> {
            let [input, grad] = [input, grad].map(|tensor| tensor.into_primitive());
            FloatTensor::<Self>::new(B::leaky_relu_kernel_backward(input, grad, slope))
        }

        fn tanh_kernel(input: FloatTensor<Self>) -> FloatTensor<Self> {
            let (primitive, node) = input.into_parts();
            match Tanh.prepare::<C>([node]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => {
                    let output = B::tanh_kernel(primitive);
                    prep.finish(output.clone(), output)
                }
                OpsKind::UnTracked(prep) => prep.finish(B::tanh_kernel(primitive)),
            }
        }

        /// Runs the inner backend's backward pass, whose result is not differentiated again.
        fn tanh_kernel_backward(output: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
            let [output, grad] = [output, grad].map(|tensor| tensor.into_primitive());
            FloatTensor::<Self>::new(B::tanh_kernel_backward(output, grad))
        }

        /// Records a node for the logits only: the targets are data.
        fn pixel_loss_rows(logits: FloatTensor<Self>, target: FloatTensor<Self>, loss: PixelLoss) -> FloatTensor<Self> {
            let (logits, node) = logits.into_parts();
            let target = target.into_primitive();
            match PixelLossRows.prepare::<C>([node]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => {
                    let output = B::pixel_loss_rows(logits.clone(), target.clone(), loss);
                    prep.finish((logits, target, loss), output)
                }
                OpsKind::UnTracked(prep) => prep.finish(B::pixel_loss_rows(logits, target, loss)),
            }
        }

        /// Runs the inner backend's backward pass, whose result is not differentiated again.
        fn pixel_loss_rows_backward(
            logits: FloatTensor<Self>,
            target: FloatTensor<Self>,
            grad: FloatTensor<Self>,
            loss: PixelLoss,
        ) -> FloatTensor<Self> {
            let [logits, target, grad] = [logits, target, grad].map(|tensor| tensor.into_primitive());
            FloatTensor::<Self>::new(B::pixel_loss_rows_backward(logits, target, grad, loss))
        }

        /// Runs the inner backend's backward pass, whose result is not differentiated again.
        fn max_pool_windows_backward(
            input: FloatTensor<Self>,
            output: FloatTensor<Self>,
            grad: FloatTensor<Self>,
            kernel: [usize; 2],
        ) -> FloatTensor<Self> {
            let [input, output, grad] = [input, output, grad].map(|tensor| tensor.into_primitive());
            FloatTensor::<Self>::new(B::max_pool_windows_backward(input, output, grad, kernel))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution, Tolerance};

    /// Geometries of the models' layers and of odd paddings and strides.
    fn geometries() -> Vec<Geometry> {
        let geometry = |input: [usize; 2], kernel, stride, before: [usize; 2], output| Geometry {
            batch: 2,
            input,
            kernel: [kernel; 2],
            stride: [stride; 2],
            before,
            output,
        };
        vec![
            geometry([28, 28], 3, 1, [1, 1], [28, 28]),
            geometry([28, 28], 4, 2, [0, 0], [13, 13]),
            geometry([14, 14], 4, 2, [1, 1], [7, 7]),
            geometry([5, 5], 5, 1, [0, 0], [1, 1]),
            geometry([3, 3], 3, 1, [0, 0], [1, 1]),
            geometry([9, 7], 3, 2, [2, 0], [5, 3]),
        ]
    }

    fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
    }

    /// Reads one window value the slow way: the input pixel under `tap`, or zero in the padding.
    fn window_value(input: &[f32], geometry: &Geometry, channels: usize, image: usize, out: [usize; 2], tap: [usize; 2], channel: usize) -> f32 {
        let [height, width] = geometry.input;
        let y = (out[0] * geometry.stride[0] + tap[0]).checked_sub(geometry.before[0]);
        let x = (out[1] * geometry.stride[1] + tap[1]).checked_sub(geometry.before[1]);
        match (y, x) {
            (Some(y), Some(x)) if y < height && x < width => input[((image * height + y) * width + x) * channels + channel],
            _ => 0.0,
        }
    }

    #[test]
    fn gather_reads_every_window_pixel_or_zero() {
        let device = Device::flex();
        for geometry in geometries() {
            let channels = 3;
            let [height, width] = geometry.input;
            let input = random([geometry.batch, height, width, channels], &device);
            let values: Vec<f32> = input.to_data().try_to_vec::<f32>().unwrap();

            let rows = gather(input, geometry);
            assert_eq!(rows.dims(), [geometry.rows(), geometry.taps() * channels], "{geometry:?}");
            let rows: Vec<f32> = rows.into_data().try_to_vec::<f32>().unwrap();

            let [out_h, out_w] = geometry.output;
            let mut expected = Vec::new();
            for image in 0..geometry.batch {
                for out in (0..out_h).flat_map(|y| (0..out_w).map(move |x| [y, x])) {
                    for tap in (0..geometry.kernel[0]).flat_map(|y| (0..geometry.kernel[1]).map(move |x| [y, x])) {
                        for channel in 0..channels {
                            expected.push(window_value(&values, &geometry, channels, image, out, tap, channel));
                        }
                    }
                }
            }
            assert_eq!(rows, expected, "{geometry:?}");
        }
    }

    #[test]
    fn scatter_add_is_the_adjoint_of_gather() {
        let device = Device::flex();
        for geometry in geometries() {
            let channels = 2;
            let [height, width] = geometry.input;
            let input = random([geometry.batch, height, width, channels], &device);
            let rows = random([geometry.rows(), geometry.taps() * channels], &device);

            // <gather(input), rows> = <input, scatter_add(rows)> for every input and rows.
            let left = (gather(input.clone(), geometry) * rows.clone()).sum();
            let right = (input * scatter_add(rows, geometry)).sum();
            left.into_data().assert_approx_eq::<f32>(&right.into_data(), Tolerance::absolute(1e-3));
        }
    }

    #[test]
    fn product_matches_burn_matmul_with_gradients() {
        let device = Device::flex().autodiff();
        let lhs = random([37, 19], &device);
        // A transposed view, as the convolutions pass their weights.
        let rhs = random([11, 19], &device);
        let weighting = random([37, 11], &device);

        let run = |multiply: &dyn Fn(Tensor<2>, Tensor<2>) -> Tensor<2>| {
            let (lhs, rhs) = (lhs.clone().require_grad(), rhs.clone().require_grad());
            let output = multiply(lhs.clone(), rhs.clone().transpose());
            let grads = (output.clone() * weighting.clone()).sum().backward();
            [output, lhs.grad(&grads).expect("lhs gradient"), rhs.grad(&grads).expect("rhs gradient")].map(Tensor::into_data)
        };
        let expected = run(&|lhs, rhs| lhs.matmul(rhs));
        let actual = run(&product);

        for (actual, expected) in actual.iter().zip(&expected) {
            actual.assert_approx_eq::<f32>(expected, Tolerance::absolute(1e-4));
        }
    }

    #[test]
    fn long_inner_products_match_burn_matmul() {
        let device = Device::flex();
        let [m, n, k] = [24, 40, 3_001];
        #[cfg(not(target_family = "wasm"))]
        assert_eq!(inner_splits(m, n, k).is_some(), rayon::current_num_threads() > 1);

        // A transposed view on the left, as a weight gradient reads the layer's input.
        let lhs = random([k, m], &device).transpose();
        let rhs = random([k, n], &device);
        let bias = random([n], &device);
        let expected = lhs.clone().matmul(rhs.clone());
        product(lhs.clone(), rhs.clone()).into_data().assert_approx_eq::<f32>(&expected.clone().into_data(), Tolerance::absolute(1e-3));

        let expected = expected + bias.clone().unsqueeze();
        affine(lhs, rhs, bias).into_data().assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-3));
    }

    #[test]
    fn column_sums_match_burn() {
        let device = Device::flex();
        // Rows of one value, of a few and of more than a stripe, and more rows than one task sums.
        for [rows, columns] in [[100_003, 1], [5_000, 3], [777, 16], [41, 300], [1, 7], [0, 4]] {
            let input: Tensor<2> = random([rows, columns], &device);
            let sums = Tensor::<1>::from_dispatch(<Dispatch as KernelOps>::column_sums(input.clone().into_dispatch()));
            let expected = input.sum_dim(0).reshape([columns]);
            sums.into_data().assert_approx_eq::<f32>(&expected.into_data(), Tolerance::rel_abs(1e-4, 1e-3));
        }
    }
}
