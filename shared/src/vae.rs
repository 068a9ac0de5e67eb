//! Variational autoencoder for 28×28 digits: the autoencoder's convolutions with a Gaussian
//! posterior over a small latent space and a Bernoulli decoder.
//!
//! The loss is the negative evidence lower bound (ELBO) per image, in nats: the binary
//! cross-entropy of the pixels summed over the image plus the KL divergence of the posterior from
//! the standard normal prior.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Distribution, Tensor};

use crate::autoencoder::{ConvDecoder, ConvEncoder};
use crate::channels_last::{self, PixelLoss};
use crate::weights::{self, ModelKind, StorageType, WeightsError, check_dims};

/// Configuration of the [`Vae`].
#[derive(Config, Debug)]
pub struct VaeConfig {
    /// Output channels of the two encoder convolutions; the decoder mirrors them.
    #[config(default = "[16, 32]")]
    pub channels: [usize; 2],
    /// Size of the latent space: 16 for sample quality, 2 for a latent map.
    #[config(default = 16)]
    pub latent_dim: usize,
}

impl VaeConfig {
    /// Initializes a VAE with Burn's default weights.
    pub fn init(&self, device: &Device) -> Vae {
        let encoder = ConvEncoder::new(self.channels, device);
        let features = encoder.features();
        Vae {
            encoder,
            mean: LinearConfig::new(features, self.latent_dim).init(device),
            log_variance: LinearConfig::new(features, self.latent_dim).init(device),
            decoder: ConvDecoder::new(self.channels, self.latent_dim, device),
        }
    }

    /// Checks the sizes, as read from a file, before anything is allocated.
    pub fn validate(&self) -> Result<(), String> {
        check_dims("channels", &self.channels)?;
        check_dims("latent_dim", &[self.latent_dim])
    }
}

/// Encoder to a diagonal Gaussian posterior, decoder to Bernoulli pixel probabilities.
///
/// Layers as in [`crate::autoencoder::Autoencoder`], with two linear heads (mean and
/// log-variance) in place of the single code layer.
#[derive(Module, Debug)]
pub struct Vae {
    encoder: ConvEncoder,
    mean: Linear,
    log_variance: Linear,
    decoder: ConvDecoder,
}

impl Vae {
    /// Size of the latent space.
    pub fn latent_dim(&self) -> usize {
        self.decoder.code_dim()
    }

    /// Returns the posterior of each image.
    ///
    /// # Shapes
    ///
    /// - images: `[batch, 1, 28, 28]`, values in `[0, 1]`
    /// - output: mean and log-variance of `[batch, latent_dim]`
    pub fn encode(&self, images: Tensor<4>) -> DiagonalGaussian {
        let features = self.encoder.forward(images);
        DiagonalGaussian {
            mean: channels_last::linear_from_maps(features.clone(), &self.mean),
            log_variance: channels_last::linear_from_maps(features, &self.log_variance),
        }
    }

    /// Decodes latents to pixel logits.
    ///
    /// # Shapes
    ///
    /// - latents: `[batch, latent_dim]`
    /// - output: `[batch, 1, 28, 28]` logits
    pub fn decode_logits(&self, latents: Tensor<2>) -> Tensor<4> {
        self.decoder.forward(latents)
    }

    /// Decodes latents to pixel probabilities, the images to show.
    ///
    /// # Shapes
    ///
    /// - latents: `[batch, latent_dim]`
    /// - output: `[batch, 1, 28, 28]`, values in `[0, 1]`
    pub fn decode(&self, latents: Tensor<2>) -> Tensor<4> {
        sigmoid(self.decode_logits(latents))
    }

    /// Returns the negative ELBO of each image, with one posterior sample made from `noise`.
    ///
    /// # Shapes
    ///
    /// - images: `[batch, 1, 28, 28]`, values in `[0, 1]`
    /// - noise: `[batch, latent_dim]`, standard normal
    pub fn loss(&self, images: Tensor<4>, noise: Tensor<2>) -> VaeLoss {
        let posterior = self.encode(images.clone());
        let latents = posterior.sample_with(noise);
        VaeLoss {
            reconstruction: bernoulli_nll(self.decode_logits(latents), images),
            kl: posterior.kl_from_standard_normal(),
        }
    }
}

/// The two terms of the negative ELBO, per image, in nats.
#[derive(Debug, Clone)]
pub struct VaeLoss {
    /// Binary cross-entropy of the pixels, summed over each image: `[batch]`.
    pub reconstruction: Tensor<1>,
    /// KL divergence of each posterior from the prior: `[batch]`.
    pub kl: Tensor<1>,
}

impl VaeLoss {
    /// Negative ELBO per image: `[batch]`.
    pub fn negative_elbo(&self) -> Tensor<1> {
        self.reconstruction.clone() + self.kl.clone()
    }
}

/// A batch of diagonal Gaussians N(mean, exp(log_variance)).
#[derive(Debug, Clone)]
pub struct DiagonalGaussian {
    /// Means: `[batch, dim]`.
    pub mean: Tensor<2>,
    /// Natural logarithms of the variances: `[batch, dim]`.
    pub log_variance: Tensor<2>,
}

impl DiagonalGaussian {
    /// Draws one sample per row with the device's random generator.
    pub fn sample(&self) -> Tensor<2> {
        let noise = Tensor::random(self.mean.dims(), Distribution::Normal(0.0, 1.0), &self.mean.device());
        self.sample_with(noise)
    }

    /// Returns `mean + noise * std`: a sample for standard normal `noise`, differentiable in
    /// the mean and the log-variance (the reparameterisation trick).
    pub fn sample_with(&self, noise: Tensor<2>) -> Tensor<2> {
        self.mean.clone() + noise * self.log_variance.clone().mul_scalar(0.5).exp()
    }

    /// KL divergence from the standard normal, per row: `[batch]`.
    ///
    /// `KL = ½ Σ (μ² + σ² − 1 − ln σ²)`.
    pub fn kl_from_standard_normal(&self) -> Tensor<1> {
        let terms = self.mean.clone().square() + self.log_variance.clone().exp()
            - self.log_variance.clone()
            - 1.0;
        let [batch, _] = terms.dims();
        terms.sum_dim(1).reshape([batch]).mul_scalar(0.5)
    }

    /// Log-density of `points` under each row's Gaussian: `[batch]`.
    pub fn log_prob(&self, points: Tensor<2>) -> Tensor<1> {
        let [batch, dim] = points.dims();
        let scaled = (points - self.mean.clone()).square() * self.log_variance.clone().neg().exp();
        let terms = scaled + self.log_variance.clone();
        let constant = dim as f64 * (2.0 * std::f64::consts::PI).ln();
        terms.sum_dim(1).reshape([batch]).add_scalar(constant).mul_scalar(-0.5)
    }
}

/// Bernoulli negative log-likelihood of `target` pixels in `[0, 1]` under pixel `logits`, summed
/// over each image: `[batch]`.
///
/// Computed stably as `max(x, 0) − x·t + ln(1 + e^−|x|)` per pixel.
pub fn bernoulli_nll(logits: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    channels_last::pixel_loss(logits, target, PixelLoss::Bernoulli)
}

/// Standard normal quantile function (inverse CDF) of `p` in `(0, 1)`.
///
/// Acklam's rational approximation, relative error below 1.2e-9; used to lay out the latent map
/// of a 2-D VAE on equal-probability steps.
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const LOW: f64 = 0.024_25;

    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    if p < LOW {
        tail(libm::sqrt(-2.0 * libm::log(p)))
    } else if p > 1.0 - LOW {
        -tail(libm::sqrt(-2.0 * libm::log(1.0 - p)))
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Returns the latents of a `side × side` map of a 2-D latent space, row by row from the top:
/// normal quantiles at the centres of equal-probability cells, so each cell covers the same
/// prior mass. The first coordinate grows to the right, the second upwards.
pub fn latent_map(side: usize) -> Vec<f32> {
    let quantile = |i: usize| normal_quantile((i as f64 + 0.5) / side as f64) as f32;
    let mut latents = Vec::with_capacity(side * side * 2);
    for row in 0..side {
        for column in 0..side {
            latents.push(quantile(column));
            latents.push(quantile(side - 1 - row));
        }
    }
    latents
}

/// Serializes a trained VAE into a weights file with tensors stored as `storage`.
pub fn export_vae(config: &VaeConfig, model: &Vae, storage: StorageType) -> Result<Vec<u8>, WeightsError> {
    let config = serde_json::to_value(config).map_err(|e| WeightsError::Config(e.to_string()))?;
    weights::encode(ModelKind::Vae, config, model.valid(), storage)
}

/// Loads a VAE from a weights file onto `device`.
pub fn load_vae(file: &[u8], device: &Device) -> Result<(VaeConfig, Vae), WeightsError> {
    weights::load(file, ModelKind::Vae, device, |config: &VaeConfig, cpu| {
        config.validate()?;
        Ok(config.init(cpu))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{TensorData, Tolerance};

    fn scalar(tensor: Tensor<1>) -> Vec<f32> {
        tensor.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn kl_of_the_prior_is_zero() {
        let device = Device::flex();
        let prior = DiagonalGaussian {
            mean: Tensor::zeros([3, 16], &device),
            log_variance: Tensor::zeros([3, 16], &device),
        };
        assert_eq!(scalar(prior.kl_from_standard_normal()), vec![0.0; 3]);
    }

    #[test]
    fn kl_matches_closed_form() {
        let device = Device::flex();
        // One dimension with mean 1 and variance e: ½ (1 + e − 1 − 1) = (e − 1) / 2.
        let posterior = DiagonalGaussian {
            mean: Tensor::from_floats([[1.0]], &device),
            log_variance: Tensor::from_floats([[1.0]], &device),
        };
        let kl = scalar(posterior.kl_from_standard_normal())[0];
        let expected = (std::f32::consts::E - 1.0) / 2.0;
        assert!((kl - expected).abs() < 1e-5, "{kl} != {expected}");
    }

    #[test]
    fn perfect_reconstruction_costs_only_the_kl() {
        let device = Device::flex();
        let pixels: Vec<f32> = (0..784).map(|i| if i % 3 == 0 { 1.0 } else { 0.0 }).collect();
        let target = Tensor::<4>::from_data(TensorData::new(pixels.clone(), [1, 1, 28, 28]), &device);
        let logits: Vec<f32> = pixels.iter().map(|&p| if p > 0.5 { 40.0 } else { -40.0 }).collect();
        let logits = Tensor::<4>::from_data(TensorData::new(logits, [1, 1, 28, 28]), &device);
        let posterior = DiagonalGaussian {
            mean: Tensor::from_floats([[0.5, -0.5]], &device),
            log_variance: Tensor::from_floats([[0.0, -1.0]], &device),
        };

        let loss = VaeLoss {
            reconstruction: bernoulli_nll(logits, target),
            kl: posterior.kl_from_standard_normal(),
        };

        let kl = scalar(loss.kl.clone())[0];
        let total = scalar(loss.negative_elbo())[0];
        assert!(kl > 0.1);
        assert!((total - kl).abs() < 1e-6, "{total} != {kl}");
    }

    #[test]
    fn bernoulli_nll_of_half_logits_is_ln2_per_pixel() {
        let device = Device::flex();
        let logits = Tensor::<4>::zeros([2, 1, 28, 28], &device);
        let target = Tensor::<4>::ones([2, 1, 28, 28], &device);
        let nll = scalar(bernoulli_nll(logits, target));
        let expected = 784.0 * std::f32::consts::LN_2;
        assert!(nll.iter().all(|v| (v - expected).abs() < 1e-2), "{nll:?}");
    }

    #[test]
    fn log_prob_matches_standard_normal_density() {
        let device = Device::flex();
        let prior = DiagonalGaussian {
            mean: Tensor::zeros([1, 2], &device),
            log_variance: Tensor::zeros([1, 2], &device),
        };
        let log_prob = scalar(prior.log_prob(Tensor::from_floats([[1.0, 0.0]], &device)))[0];
        let expected = -0.5 * 1.0 - (2.0 * std::f32::consts::PI).ln();
        assert!((log_prob - expected).abs() < 1e-5, "{log_prob} != {expected}");
    }

    #[test]
    fn vae_shapes() {
        let device = Device::flex();
        let model = VaeConfig::new().with_latent_dim(2).init(&device);
        let images = Tensor::<4>::random([5, 1, 28, 28], Distribution::Default, &device);

        let posterior = model.encode(images.clone());
        assert_eq!(posterior.mean.dims(), [5, 2]);
        assert_eq!(posterior.log_variance.dims(), [5, 2]);
        assert_eq!(posterior.sample().dims(), [5, 2]);
        assert_eq!(model.decode(posterior.mean).dims(), [5, 1, 28, 28]);
        let loss = model.loss(images, Tensor::zeros([5, 2], &device));
        assert_eq!(loss.negative_elbo().dims(), [5]);
    }

    #[test]
    fn sample_with_zero_noise_is_the_mean() {
        let device = Device::flex();
        let posterior = DiagonalGaussian {
            mean: Tensor::from_floats([[0.3, -2.0]], &device),
            log_variance: Tensor::from_floats([[1.0, 4.0]], &device),
        };
        let sample = posterior.sample_with(Tensor::zeros([1, 2], &device));
        sample.into_data().assert_approx_eq::<f32>(&posterior.mean.into_data(), Tolerance::absolute(1e-7));
    }

    #[test]
    fn quantiles_match_known_values() {
        assert!(normal_quantile(0.5).abs() < 1e-12);
        assert!((normal_quantile(0.975) - 1.959_963_985).abs() < 1e-8);
        assert!((normal_quantile(0.001) + 3.090_232_306).abs() < 1e-8);
        assert_eq!(normal_quantile(0.0), f64::NEG_INFINITY);
    }

    #[test]
    fn latent_map_is_symmetric_and_ordered() {
        let map = latent_map(4);
        assert_eq!(map.len(), 32);
        // Top-left cell: leftmost x, topmost (largest) y.
        assert!(map[0] < 0.0);
        assert!(map[1] > 0.0);
        assert!((map[0] + map[6]).abs() < 1e-6, "x is symmetric across the row");
        let last = map.len() - 2;
        assert!(map[last] > 0.0);
        assert!(map[last + 1] < 0.0);
    }

    #[test]
    fn exported_vae_loads_with_same_output() {
        let device = Device::flex();
        device.seed(2);
        let config = VaeConfig::new().with_latent_dim(2);
        let model = config.init(&device);
        let latents = Tensor::<2>::from_data(TensorData::new(latent_map(3), [9, 2]), &device);
        let expected = model.decode(latents.clone()).into_data();

        for storage in [StorageType::Int8, StorageType::F16] {
            let file = export_vae(&config, &model, storage).unwrap();
            let (loaded_config, loaded) = load_vae(&file, &device).unwrap();

            assert_eq!(loaded_config.latent_dim, 2);
            let actual = loaded.decode(latents.clone()).into_data();
            actual.assert_approx_eq::<f32>(&expected, Tolerance::absolute(1e-2));
        }
    }
}
