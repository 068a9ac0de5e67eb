//! Element-wise math for the kernels' loops: the exponential, the logistic sigmoid and
//! `ln(1 + e^−|x|)` written with additions, multiplications, one division and bit operations
//! only, so that the compiler vectorizes the loops that call them. The standard library's `exp`
//! and `ln_1p` call the C library one value at a time.

/// `ln 2` split into a part with few significant bits, whose products with small integers are
/// exact, and the rest.
const LN_2_HIGH: f32 = 0.693_359_4;
const LN_2_LOW: f32 = -2.121_944_4e-4;

/// `1.5 · 2²³`: adding it to a float below `2²²` in magnitude rounds that float to an integer,
/// which then sits in the low bits of the sum's mantissa.
const ROUNDING: f32 = 12_582_912.0;

/// Returns `e^x` for `x ≤ 0` to within a few units in the last place, `e^−87` for `x` below
/// −87, and NaN for NaN.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    // A comparison, not `f32::max`, which would turn NaN into −87.
    let x = if x < -87.0 { -87.0 } else { x };

    // x = k · ln 2 + r with an integer k in [−126, 0] and |r| ≤ ln 2 / 2.
    let shifted = x * std::f32::consts::LOG2_E + ROUNDING;
    let k = shifted - ROUNDING;
    let r = x - k * LN_2_HIGH - k * LN_2_LOW;

    // Taylor series of e^r to r⁷, whose remainder is below 10⁻⁸ of e^r for |r| ≤ ln 2 / 2.
    let series = 1.0
        + r * (1.0
            + r * (1.0 / 2.0
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));

    // 2^k from k's bits in the sum's mantissa, as a float's exponent field.
    let k_bits = shifted.to_bits().wrapping_sub(ROUNDING.to_bits());
    let two_to_k = f32::from_bits(k_bits.wrapping_add(127) << 23);
    series * two_to_k
}

/// Returns `ln(1 + y)` for `y` in `[0, 1]`, to within about 10⁻⁷.
///
/// `ln(1 + y) = 2 artanh(s)` with `s = y / (2 + y)` in `[0, 1/3]`, whose odd power series
/// converges by a factor of 9 or more per term.
#[inline(always)]
pub fn ln_one_plus_unit(y: f32) -> f32 {
    let s = y / (2.0 + y);
    let s2 = s * s;
    let series = 1.0
        + s2 * (1.0 / 3.0
            + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0 + s2 * (1.0 / 13.0))))));
    2.0 * s * series
}

/// Returns `e^−|x|` and the logistic sigmoid `σ(x) = 1 / (1 + e^−x)`, both from one exponential.
#[inline(always)]
pub fn sigmoid_parts(x: f32) -> (f32, f32) {
    let decay = exp_nonpositive(-x.abs());
    let upper = 1.0 / (1.0 + decay);
    let sigmoid = if x >= 0.0 { upper } else { decay * upper };
    (decay, sigmoid)
}

/// Returns `tanh x` to within about 2 · 10⁻⁷, from `t = e^−2|x|` as `±(1 − t) / (1 + t)`.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let decay = exp_nonpositive(-2.0 * x.abs());
    let magnitude = (1.0 - decay) / (1.0 + decay);
    magnitude.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Logits from −100 to 100, denser near zero, and both signed zeros.
    fn logits() -> impl Iterator<Item = f32> {
        let steps = (-20_000..=20_000).map(|i| i as f32 * 5e-4);
        let wide = (-1_000..=1_000).map(|i| i as f32 * 0.1);
        steps.chain(wide).chain([0.0, -0.0])
    }

    #[test]
    fn exp_matches_std_within_a_few_ulps() {
        for x in logits().map(|x| -x.abs()).filter(|&x| x >= -87.0) {
            let expected = f64::from(x).exp();
            let error = (f64::from(exp_nonpositive(x)) - expected).abs() / expected;
            assert!(error < 4e-7, "e^{x}: relative error {error:e}");
        }
        assert!(exp_nonpositive(-1e6) > 0.0);
        assert!(exp_nonpositive(-1e6) < 2e-38);
    }

    #[test]
    fn nan_stays_nan() {
        assert!(exp_nonpositive(f32::NAN).is_nan());
        assert!(sigmoid_parts(f32::NAN).0.is_nan());
        assert!(sigmoid_parts(f32::NAN).1.is_nan());
        assert!(tanh(f32::NAN).is_nan());
    }

    #[test]
    fn ln_one_plus_matches_std() {
        for i in 0..=100_000 {
            let y = i as f32 / 100_000.0;
            let error = (f64::from(ln_one_plus_unit(y)) - f64::from(y).ln_1p()).abs();
            assert!(error < 1.5e-7, "ln(1 + {y}): error {error:e}");
        }
    }

    #[test]
    fn tanh_matches_std() {
        for x in logits() {
            let expected = f64::from(x).tanh();
            assert!((f64::from(tanh(x)) - expected).abs() < 2e-7, "tanh {x} = {}, not {expected}", tanh(x));
        }
    }

    #[test]
    fn sigmoid_matches_std_for_both_signs() {
        for x in logits() {
            let (decay, sigmoid) = sigmoid_parts(x);
            let expected = 1.0 / (1.0 + (-f64::from(x)).exp());
            assert!((f64::from(sigmoid) - expected).abs() < 2e-7, "σ({x}) = {sigmoid}, not {expected}");
            assert!((f64::from(decay) - (-f64::from(x).abs()).exp()).abs() < 2e-7, "e^−|{x}|");
        }
    }
}
