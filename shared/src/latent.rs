//! Seeded latent vectors that are identical on every platform and backend.
//!
//! Burn's own random tensors depend on the backend's generator, so a seed would give different
//! digits on WebGPU and on the CPU. Latents are drawn here instead, on the host, with a fixed
//! generator (SplitMix64) and the Box-Muller transform computed with `libm`, so the same seed
//! gives bit-identical latents natively and in wasm.

/// A small deterministic pseudo-random generator (SplitMix64).
///
/// It serializes with its whole state, so a training checkpoint can continue the same stream.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeededRng {
    state: u64,
    spare_normal: Option<f64>,
}

impl SeededRng {
    /// Creates a generator from a seed. Equal seeds give equal sequences everywhere.
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed,
            spare_normal: None,
        }
    }

    /// Returns the next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Returns a uniform sample in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Returns a uniform integer in `0..bound`. `bound` must be positive.
    pub fn next_below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "next_below needs a positive bound");
        // Lemire's multiply-shift; the tiny bias is irrelevant for shuffling and sampling.
        ((self.next_u64() as u128 * bound as u128) >> 64) as u64
    }

    /// Returns a standard normal sample (mean 0, standard deviation 1).
    pub fn next_normal(&mut self) -> f64 {
        if let Some(spare) = self.spare_normal.take() {
            return spare;
        }

        // 1 - u lies in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - self.next_f64();
        let u2 = self.next_f64();
        let radius = libm::sqrt(-2.0 * libm::log(u1));
        let angle = 2.0 * core::f64::consts::PI * u2;
        self.spare_normal = Some(radius * libm::sin(angle));
        radius * libm::cos(angle)
    }

    /// Shuffles a slice in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.next_below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// Draws `count` latent vectors of `dim` standard normal values each, row after row.
pub fn normal_latents(seed: u64, count: usize, dim: usize) -> Vec<f32> {
    let mut rng = SeededRng::new(seed);
    (0..count * dim).map(|_| rng.next_normal() as f32).collect()
}

/// Linearly interpolates `steps` points from `start` to `end`, both included, row after row.
///
/// Returns an empty vector when `steps` is 0, and `start` alone when it is 1.
pub fn interpolate(start: &[f32], end: &[f32], steps: usize) -> Vec<f32> {
    assert_eq!(start.len(), end.len(), "interpolation end points differ in length");
    let mut out = Vec::with_capacity(steps * start.len());
    for step in 0..steps {
        let t = if steps == 1 {
            0.0
        } else {
            step as f32 / (steps - 1) as f32
        };
        out.extend(start.iter().zip(end).map(|(a, b)| a + (b - a) * t));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_gives_same_latents() {
        assert_eq!(normal_latents(7, 4, 64), normal_latents(7, 4, 64));
        assert_ne!(normal_latents(7, 4, 64), normal_latents(8, 4, 64));
    }

    #[test]
    fn normal_samples_have_unit_moments() {
        let samples = normal_latents(1, 1000, 64);
        let n = samples.len() as f64;
        let mean = samples.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = samples.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.03, "variance {var}");
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut items: Vec<u32> = (0..100).collect();
        SeededRng::new(3).shuffle(&mut items);
        assert_ne!(items, (0..100).collect::<Vec<_>>());
        items.sort_unstable();
        assert_eq!(items, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn interpolation_hits_both_ends() {
        let path = interpolate(&[0.0, 2.0], &[1.0, 0.0], 3);
        assert_eq!(path, vec![0.0, 2.0, 0.5, 1.0, 1.0, 0.0]);
        assert!(interpolate(&[1.0], &[2.0], 0).is_empty());
        assert_eq!(interpolate(&[1.0], &[2.0], 1), vec![1.0]);
    }
}
