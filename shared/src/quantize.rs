//! 8-bit weights with one scale per channel.
//!
//! A tensor of two or more dimensions is stored as signed bytes `q` and a scale tensor `s` of
//! the same rank whose dimensions are 1 except along one channel axis, so `w ≈ q · s` with `s`
//! broadcast. The scale of a channel is its largest magnitude over 127 (symmetric rounding, no
//! zero point). The axis is the one with the smallest squared rounding error among those with at
//! least [`MIN_VALUES_PER_SCALE`] values per channel, so the format needs no knowledge of layers.
//! A tensor with no such axis gets a single scale.

/// Minimum number of values that share one scale. With fewer, the f32 scales would cost more
/// bytes than the values: a `[1568, 2]` matrix scaled along its first axis would store 2 bytes of
/// values and 4 bytes of scale per row.
pub const MIN_VALUES_PER_SCALE: usize = 16;

/// A tensor rounded to 8 bits per value.
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Tensor {
    /// Rounded values, in the original tensor's row-major order.
    pub values: Vec<i8>,
    /// One scale per channel, in channel order.
    pub scales: Vec<f32>,
    /// Shape of the scale tensor: the original shape with every dimension but the channel axis
    /// set to 1.
    pub scale_dims: Vec<usize>,
}

/// Error from [`dequantize`] on a value or scale tensor that does not fit the other.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuantizeError {
    /// The scale tensor's rank or dimensions do not broadcast over the values.
    #[error("scale shape {scale:?} does not broadcast over value shape {values:?} along one axis")]
    ScaleShape {
        /// Shape of the values.
        values: Vec<usize>,
        /// Shape of the scales.
        scale: Vec<usize>,
    },
    /// The number of values or scales disagrees with the shapes.
    #[error("expected {expected} {what} from the shape, found {found}")]
    Length {
        /// `"values"` or `"scales"`.
        what: &'static str,
        /// Count the shape implies.
        expected: usize,
        /// Count present.
        found: usize,
    },
    /// A scale is negative, NaN or infinite.
    #[error("scale {0} is not a finite, non-negative number")]
    Scale(f32),
}

/// Rounds `values` of shape `dims` to 8 bits with per-channel scales along the best axis, or
/// with one scale when no axis has channels of at least [`MIN_VALUES_PER_SCALE`] values.
///
/// # Panics
///
/// If `dims` is empty or its product differs from `values.len()`; callers pass shapes that came
/// with the values.
pub fn quantize(values: &[f32], dims: &[usize]) -> Int8Tensor {
    assert!(!dims.is_empty(), "quantize needs at least one dimension");
    assert_eq!(dims.iter().product::<usize>(), values.len(), "shape and value count disagree");

    let mut best: Option<(Int8Tensor, f64)> = None;
    for axis in (0..dims.len()).filter(|&axis| dims[axis] * MIN_VALUES_PER_SCALE <= values.len()) {
        let quantized = quantize_along(values, dims, Some(axis));
        let error = rounding_error(values, dims, &quantized);
        if best.as_ref().is_none_or(|(_, best_error)| error < *best_error) {
            best = Some((quantized, error));
        }
    }

    match best {
        Some((quantized, _)) => quantized,
        None => quantize_along(values, dims, None),
    }
}

/// Restores the float values of an 8-bit tensor of shape `dims`.
pub fn dequantize(values: &[i8], dims: &[usize], scales: &[f32], scale_dims: &[usize]) -> Result<Vec<f32>, QuantizeError> {
    let shape_error = || QuantizeError::ScaleShape {
        values: dims.to_vec(),
        scale: scale_dims.to_vec(),
    };
    if scale_dims.len() != dims.len() {
        return Err(shape_error());
    }
    let axes: Vec<usize> = (0..dims.len()).filter(|&d| scale_dims[d] != 1).collect();
    let axis = match axes.as_slice() {
        [] => None,
        [axis] if scale_dims[*axis] == dims[*axis] => Some(*axis),
        _ => return Err(shape_error()),
    };

    let count = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if count != Some(values.len()) {
        return Err(QuantizeError::Length {
            what: "values",
            expected: count.unwrap_or(usize::MAX),
            found: values.len(),
        });
    }
    let channels = axis.map_or(1, |axis| dims[axis]);
    if scales.len() != channels {
        return Err(QuantizeError::Length {
            what: "scales",
            expected: channels,
            found: scales.len(),
        });
    }
    if let Some(&bad) = scales.iter().find(|s| !s.is_finite() || **s < 0.0) {
        return Err(QuantizeError::Scale(bad));
    }

    let inner = axis.map_or(1, |axis| dims[axis + 1..].iter().product());
    Ok(values
        .iter()
        .enumerate()
        .map(|(index, &q)| f32::from(q) * scales[(index / inner) % channels])
        .collect())
}

fn quantize_along(values: &[f32], dims: &[usize], axis: Option<usize>) -> Int8Tensor {
    let channels = axis.map_or(1, |axis| dims[axis]);
    let inner: usize = axis.map_or(1, |axis| dims[axis + 1..].iter().product());
    let channel_of = |index: usize| (index / inner) % channels;

    let mut largest = vec![0.0f32; channels];
    for (index, value) in values.iter().enumerate() {
        let channel = channel_of(index);
        largest[channel] = largest[channel].max(value.abs());
    }
    let scales: Vec<f32> = largest.iter().map(|max| max / 127.0).collect();
    let values = values
        .iter()
        .enumerate()
        .map(|(index, value)| {
            let scale = scales[channel_of(index)];
            if scale > 0.0 { (value / scale).round().clamp(-127.0, 127.0) as i8 } else { 0 }
        })
        .collect();

    let mut scale_dims = vec![1; dims.len()];
    if let Some(axis) = axis {
        scale_dims[axis] = channels;
    }
    Int8Tensor {
        values,
        scales,
        scale_dims,
    }
}

fn rounding_error(values: &[f32], dims: &[usize], quantized: &Int8Tensor) -> f64 {
    let restored = dequantize(&quantized.values, dims, &quantized.scales, &quantized.scale_dims)
        .expect("quantize_along returns consistent shapes");
    values
        .iter()
        .zip(&restored)
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_error_within_half_step() {
        let dims = [3, 16, 2];
        let values: Vec<f32> = (0..96).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.013).collect();

        let quantized = quantize(&values, &dims);
        let restored = dequantize(&quantized.values, &dims, &quantized.scales, &quantized.scale_dims).unwrap();

        let axis = quantized.scale_dims.iter().position(|&d| d != 1).unwrap();
        let inner: usize = dims[axis + 1..].iter().product();
        for (index, (a, b)) in values.iter().zip(&restored).enumerate() {
            let step = quantized.scales[(index / inner) % dims[axis]];
            assert!((a - b).abs() <= step / 2.0 + 1e-7, "value {index}: {a} became {b}");
        }
    }

    #[test]
    fn picks_the_axis_whose_channels_differ_in_range() {
        // Every column is its own scale times 127 or 64, so one scale per column rounds
        // nothing, while one scale per row flattens the columns of small values.
        let dims = [16, 16];
        let values: Vec<f32> = (0..256)
            .map(|index| {
                let (row, column) = (index / 16, index % 16);
                let multiple = if row % 2 == 0 { 127.0 } else { 64.0 };
                multiple * 10f32.powf(-(column as f32) / 4.0)
            })
            .collect();

        let quantized = quantize(&values, &dims);

        assert_eq!(quantized.scale_dims, vec![1, 16]);
    }

    #[test]
    fn all_zero_channel_stays_zero() {
        let mut values = vec![0.0; 32];
        values[16..].fill(0.5);

        let quantized = quantize(&values, &[2, 16]);
        let restored = dequantize(&quantized.values, &[2, 16], &quantized.scales, &quantized.scale_dims).unwrap();

        assert_eq!(quantized.scale_dims, vec![2, 1]);
        assert_eq!(&restored[..16], &[0.0; 16]);
    }

    #[test]
    fn extreme_values_map_to_plus_and_minus_127() {
        let quantized = quantize(&[2.0, -2.0, 1.0, 0.0], &[1, 4]);
        assert_eq!(quantized.values[..2], [127, -127]);
    }

    #[test]
    fn small_channels_share_one_scale() {
        // Two values per row along axis 0 and three rows along axis 1: neither axis has 16
        // values per channel.
        let quantized = quantize(&[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], &[3, 2]);

        assert_eq!(quantized.scale_dims, vec![1, 1]);
        assert_eq!(quantized.scales.len(), 1);
    }

    #[test]
    fn long_matrix_is_scaled_along_its_short_axis() {
        let values: Vec<f32> = (0..64).map(|i| (i as f32 - 30.0) * if i % 2 == 0 { 1.0 } else { 0.01 }).collect();

        let quantized = quantize(&values, &[32, 2]);

        assert_eq!(quantized.scale_dims, vec![1, 2]);
    }

    #[test]
    fn scale_shape_that_does_not_broadcast_is_rejected() {
        let error = dequantize(&[1, 2, 3, 4], &[2, 2], &[1.0, 1.0], &[2, 2]).unwrap_err();
        assert!(matches!(error, QuantizeError::ScaleShape { .. }), "{error}");

        let error = dequantize(&[1, 2, 3, 4], &[2, 2], &[1.0, 1.0, 1.0], &[1, 3]).unwrap_err();
        assert!(matches!(error, QuantizeError::ScaleShape { .. }), "{error}");

        let error = dequantize(&[1, 2, 3, 4], &[2, 2], &[1.0, 1.0], &[2]).unwrap_err();
        assert!(matches!(error, QuantizeError::ScaleShape { .. }), "{error}");
    }

    #[test]
    fn counts_that_disagree_with_the_shape_are_rejected() {
        let error = dequantize(&[1, 2, 3], &[2, 2], &[1.0, 1.0], &[2, 1]).unwrap_err();
        assert!(matches!(error, QuantizeError::Length { what: "values", .. }), "{error}");

        let error = dequantize(&[1, 2, 3, 4], &[2, 2], &[1.0], &[2, 1]).unwrap_err();
        assert!(matches!(error, QuantizeError::Length { what: "scales", .. }), "{error}");
    }

    #[test]
    fn overflowing_shape_is_rejected() {
        let error = dequantize(&[1], &[usize::MAX, 3], &[1.0], &[1, 1]).unwrap_err();
        assert!(matches!(error, QuantizeError::Length { .. }), "{error}");
    }

    #[test]
    fn non_finite_or_negative_scales_are_rejected() {
        for bad in [f32::NAN, f32::INFINITY, -1.0] {
            let error = dequantize(&[1, 2], &[1, 2], &[bad], &[1, 1]).unwrap_err();
            assert!(matches!(error, QuantizeError::Scale(_)), "{bad}: {error}");
        }
    }
}
