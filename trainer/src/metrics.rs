//! Statistics behind the quality metrics: feature means and covariances, the Fréchet distance
//! between two Gaussians and a symmetric eigen-solver for it.

/// Mean and covariance of a set of feature vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Gaussian {
    /// Feature size.
    pub dim: usize,
    /// Mean vector: `dim` values.
    pub mean: Vec<f64>,
    /// Covariance matrix, row-major: `dim × dim` values, with the unbiased `n − 1` divisor.
    pub covariance: Vec<f64>,
}

impl Gaussian {
    /// Fits the mean and covariance of `features`, `count` rows of `dim` values.
    ///
    /// # Panics
    ///
    /// Panics if `features.len()` is not a multiple of `dim` or there are fewer than 2 rows.
    pub fn fit(features: &[f32], dim: usize) -> Self {
        assert!(dim > 0, "the feature size is 0");
        assert!(features.len().is_multiple_of(dim), "features are not whole rows of {dim}");
        let count = features.len() / dim;
        assert!(count >= 2, "a covariance needs at least 2 rows, got {count}");

        let mut mean = vec![0.0; dim];
        for row in features.chunks_exact(dim) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= count as f64);

        let mut covariance = vec![0.0; dim * dim];
        let mut centred = vec![0.0; dim];
        for row in features.chunks_exact(dim) {
            for ((c, &v), m) in centred.iter_mut().zip(row).zip(&mean) {
                *c = f64::from(v) - m;
            }
            for i in 0..dim {
                let ci = centred[i];
                if ci == 0.0 {
                    continue;
                }
                let out = &mut covariance[i * dim..(i + 1) * dim];
                for (o, &cj) in out.iter_mut().zip(&centred) {
                    *o += ci * cj;
                }
            }
        }
        covariance.iter_mut().for_each(|c| *c /= (count - 1) as f64);
        Self { dim, mean, covariance }
    }
}

/// Fréchet distance between two Gaussians:
/// `‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^½)`.
///
/// The trace of the matrix square root is computed as `Tr((Σ₁^½ Σ₂ Σ₁^½)^½)`, the sum of the
/// square roots of the eigenvalues of a symmetric matrix, which avoids a general matrix square
/// root. Tiny negative eigenvalues from rounding count as zero.
///
/// # Panics
///
/// Panics if the two feature sizes differ.
pub fn frechet_distance(a: &Gaussian, b: &Gaussian) -> f64 {
    assert_eq!(a.dim, b.dim, "the two feature sizes differ");
    let n = a.dim;

    let mean_term: f64 = a.mean.iter().zip(&b.mean).map(|(x, y)| (x - y) * (x - y)).sum();
    let trace = |m: &[f64]| (0..n).map(|i| m[i * n + i]).sum::<f64>();

    let root_a = symmetric_sqrt(&a.covariance, n);
    let product = multiply(&multiply(&root_a, &b.covariance, n), &root_a, n);
    let (eigenvalues, _) = symmetric_eigen(&symmetrize(&product, n), n);
    let cross: f64 = eigenvalues.iter().map(|&l| l.max(0.0).sqrt()).sum();

    (mean_term + trace(&a.covariance) + trace(&b.covariance) - 2.0 * cross).max(0.0)
}

/// Square root of a symmetric positive semi-definite matrix, through its eigenvectors.
fn symmetric_sqrt(matrix: &[f64], n: usize) -> Vec<f64> {
    let (values, vectors) = symmetric_eigen(matrix, n);
    let mut root = vec![0.0; n * n];
    for (k, &value) in values.iter().enumerate() {
        let scale = value.max(0.0).sqrt();
        if scale == 0.0 {
            continue;
        }
        for i in 0..n {
            let vi = vectors[i * n + k] * scale;
            for j in 0..n {
                root[i * n + j] += vi * vectors[j * n + k];
            }
        }
    }
    root
}

fn multiply(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            if aik == 0.0 {
                continue;
            }
            for j in 0..n {
                out[i * n + j] += aik * b[k * n + j];
            }
        }
    }
    out
}

fn symmetrize(m: &[f64], n: usize) -> Vec<f64> {
    let mut out = m.to_vec();
    for i in 0..n {
        for j in 0..i {
            let mean = 0.5 * (m[i * n + j] + m[j * n + i]);
            out[i * n + j] = mean;
            out[j * n + i] = mean;
        }
    }
    out
}

/// Eigenvalues and eigenvectors (as columns, row-major) of a symmetric matrix, by cyclic Jacobi
/// rotations until the off-diagonal mass is below 1e-22 of the total or 100 sweeps pass.
pub fn symmetric_eigen(matrix: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = matrix.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let total: f64 = a.iter().map(|x| x * x).sum::<f64>().max(f64::MIN_POSITIVE);

    for _sweep in 0..100 {
        let off: f64 = (0..n).flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j))).map(|(i, j)| a[i * n + j].powi(2)).sum();
        if off <= 1e-22 * total {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;

                for k in 0..n {
                    let akp = a[k * n + p];
                    let akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let apk = a[p * n + k];
                    let aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let vkp = v[k * n + p];
                    let vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

/// `ln Σ exp(values)`, computed without overflow.
pub fn log_sum_exp(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + values.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::latent::SeededRng;

    fn normal_rows(seed: u64, count: usize, dim: usize) -> Vec<f32> {
        let mut rng = SeededRng::new(seed);
        (0..count * dim).map(|_| rng.next_normal() as f32).collect()
    }

    #[test]
    fn distance_of_a_set_to_itself_is_zero() {
        let features = normal_rows(1, 500, 8);
        let gaussian = Gaussian::fit(&features, 8);
        let distance = frechet_distance(&gaussian, &gaussian);
        assert!(distance < 1e-8, "{distance}");
    }

    #[test]
    fn distance_grows_with_added_noise() {
        let clean = normal_rows(2, 2_000, 6);
        let reference = Gaussian::fit(&clean, 6);
        let mut previous = 0.0;
        for (step, level) in [0.1f32, 0.5, 1.0, 2.0].into_iter().enumerate() {
            let noise = normal_rows(100 + step as u64, 2_000, 6);
            let noisy: Vec<f32> = clean.iter().zip(&noise).map(|(c, n)| c + level * n + level).collect();
            let distance = frechet_distance(&reference, &Gaussian::fit(&noisy, 6));
            assert!(distance > previous, "noise {level}: {distance} is not above {previous}");
            previous = distance;
        }
    }

    #[test]
    fn one_dimensional_case_matches_closed_form() {
        // For 1-D Gaussians the distance is (m1 − m2)² + (s1 − s2)² with standard deviations s.
        let a = Gaussian { dim: 1, mean: vec![1.0], covariance: vec![4.0] };
        let b = Gaussian { dim: 1, mean: vec![-2.0], covariance: vec![9.0] };
        let distance = frechet_distance(&a, &b);
        assert!((distance - (9.0 + 1.0)).abs() < 1e-12, "{distance}");
    }

    #[test]
    fn two_dimensional_case_matches_hand_computation() {
        // Σ₁ = diag(1, 4), Σ₂ = [[2, 1], [1, 2]], μ₁ = (0, 0), μ₂ = (1, 2).
        // Σ₁^½ Σ₂ Σ₁^½ = [[2, 2], [2, 8]] has eigenvalues 5 ± √13, so the cross term is
        // √(5 + √13) + √(5 − √13).
        let a = Gaussian { dim: 2, mean: vec![0.0, 0.0], covariance: vec![1.0, 0.0, 0.0, 4.0] };
        let b = Gaussian { dim: 2, mean: vec![1.0, 2.0], covariance: vec![2.0, 1.0, 1.0, 2.0] };
        let cross = (5.0f64 + 13f64.sqrt()).sqrt() + (5.0f64 - 13f64.sqrt()).sqrt();
        let expected = 5.0 + (1.0 + 4.0) + (2.0 + 2.0) - 2.0 * cross;

        let distance = frechet_distance(&a, &b);

        assert!((distance - expected).abs() < 1e-10, "{distance} != {expected}");
    }

    #[test]
    fn fit_computes_unbiased_covariance() {
        let gaussian = Gaussian::fit(&[1.0, 2.0, 3.0, 6.0], 2);
        assert_eq!(gaussian.mean, vec![2.0, 4.0]);
        assert_eq!(gaussian.covariance, vec![2.0, 4.0, 4.0, 8.0]);
    }

    #[test]
    fn eigen_solver_recovers_known_values() {
        let (mut values, _) = symmetric_eigen(&[2.0, 1.0, 1.0, 2.0], 2);
        values.sort_by(f64::total_cmp);
        assert!((values[0] - 1.0).abs() < 1e-12, "{values:?}");
        assert!((values[1] - 3.0).abs() < 1e-12, "{values:?}");
    }

    #[test]
    fn log_sum_exp_is_stable() {
        assert!((log_sum_exp(&[1000.0, 1000.0]) - (1000.0 + 2f64.ln())).abs() < 1e-9);
        assert_eq!(log_sum_exp(&[f64::NEG_INFINITY]), f64::NEG_INFINITY);
    }
}
