//! DCGAN for 28×28 digits: a transposed-convolution generator and a convolutional discriminator.
//!
//! The generator doubles as the conditional GAN's: give it `condition_dim` extra input channels
//! and concatenate a one-hot label to the latent.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, LeakyRelu, LeakyReluConfig, Relu};
use burn::tensor::{Device, Tensor};

use crate::IMAGE_SIDE;
use crate::channels_last::{self, conv_transpose2d, conv2d, to_channels_first, to_channels_last};
use crate::fold::fold_conv_transpose2d;
use crate::weights::{self, ModelKind, StorageType, WeightsError, check_dims};

/// Configuration of the [`Generator`].
#[derive(Config, Debug)]
pub struct GeneratorConfig {
    /// Size of the standard normal latent vector.
    #[config(default = 64)]
    pub latent_dim: usize,
    /// Extra inputs concatenated to the latent: 10 for a one-hot label, 0 for an unconditional GAN.
    #[config(default = 0)]
    pub condition_dim: usize,
    /// Output channels of the three hidden transposed convolutions.
    #[config(default = "[256, 128, 64]")]
    pub hidden_channels: [usize; 3],
    /// Whether the hidden layers have BatchNorm; exported weights have it folded away.
    #[config(default = true)]
    pub batch_norm: bool,
    /// Standard deviation of the normal initialisation of the convolution weights.
    #[config(default = 0.02)]
    pub init_std: f64,
}

/// Maps a latent vector (and an optional condition) to a 28×28 image in `[-1, 1]`.
///
/// Layers: ConvTranspose k3 s1 (1→3 px), k3 s2 (→7), k4 s2 p1 (→14), k4 s2 p1 (→28), with
/// BatchNorm and ReLU between them and tanh at the end.
#[derive(Module, Debug)]
pub struct Generator {
    convs: [ConvTranspose2d; 4],
    norms: Option<[BatchNorm; 3]>,
    activation: Relu,
    latent_dim: usize,
    condition_dim: usize,
}

impl GeneratorConfig {
    /// Initializes a generator with weights drawn from N(0, `init_std`).
    pub fn init(&self, device: &Device) -> Generator {
        let [c1, c2, c3] = self.hidden_channels;
        let input = self.latent_dim + self.condition_dim;
        let init = Initializer::Normal {
            mean: 0.0,
            std: self.init_std,
        };
        let layer = |channels: [usize; 2], kernel: usize, stride: usize, padding: usize| {
            ConvTranspose2dConfig::new(channels, [kernel, kernel])
                .with_stride([stride, stride])
                .with_padding([padding, padding])
                .with_initializer(init.clone())
                .init(device)
        };

        let convs = [
            layer([input, c1], 3, 1, 0),
            layer([c1, c2], 3, 2, 0),
            layer([c2, c3], 4, 2, 1),
            layer([c3, 1], 4, 2, 1),
        ];
        let norms = self
            .batch_norm
            .then(|| [c1, c2, c3].map(|channels| batch_norm(channels, self.init_std, device)));

        Generator {
            convs,
            norms,
            activation: Relu::new(),
            latent_dim: self.latent_dim,
            condition_dim: self.condition_dim,
        }
    }
}

impl GeneratorConfig {
    /// Checks the sizes, as read from a file, before anything is allocated.
    pub fn validate(&self) -> Result<(), String> {
        check_dims("latent_dim", &[self.latent_dim])?;
        check_dims("hidden_channels", &self.hidden_channels)?;
        if self.condition_dim > crate::NUM_CLASSES {
            return Err(format!(
                "condition_dim is {}, expected 0 or {}",
                self.condition_dim,
                crate::NUM_CLASSES
            ));
        }
        Ok(())
    }
}

/// Serializes a trained generator into a weights file of `kind`, with BatchNorm folded into the
/// convolutions and tensors stored as `storage`.
pub fn export_generator(
    kind: ModelKind,
    config: &GeneratorConfig,
    generator: &Generator,
    storage: StorageType,
) -> Result<Vec<u8>, WeightsError> {
    let folded = generator.valid().fold_batch_norm();
    let config = config.clone().with_batch_norm(false);
    let config = serde_json::to_value(&config).map_err(|e| WeightsError::Config(e.to_string()))?;
    weights::encode(kind, config, folded, storage)
}

/// Loads a generator of `kind` from a weights file onto `device`.
pub fn load_generator(
    file: &[u8],
    kind: ModelKind,
    device: &Device,
) -> Result<(GeneratorConfig, Generator), WeightsError> {
    weights::load(file, kind, device, |config: &GeneratorConfig, cpu| {
        config.validate()?;
        let expected_condition = if kind == ModelKind::Cgan { crate::NUM_CLASSES } else { 0 };
        if config.condition_dim != expected_condition {
            return Err(format!(
                "a {kind} generator takes {expected_condition} condition inputs, the file says {}",
                config.condition_dim
            ));
        }
        Ok(config.init(cpu))
    })
}

/// Creates a BatchNorm layer whose scale (gamma) is drawn from N(0, `std`), like the
/// convolution weights.
///
/// Near-zero scales keep every hidden activation small at first, so the generator changes its
/// output slowly while the discriminator learns. With Burn's default scale of 1 the generator
/// outpaced the small discriminator and collapsed to one image within a few hundred steps.
pub fn batch_norm(channels: usize, std: f64, device: &Device) -> BatchNorm {
    let mut norm = BatchNormConfig::new(channels).init(device);
    norm.gamma = Initializer::Normal { mean: 0.0, std }.init([channels], device);
    norm
}

impl Generator {
    /// Size of the latent vector.
    pub fn latent_dim(&self) -> usize {
        self.latent_dim
    }

    /// Number of condition inputs after the latent.
    pub fn condition_dim(&self) -> usize {
        self.condition_dim
    }

    /// Generates images from latent (and condition) vectors.
    ///
    /// # Shapes
    ///
    /// - input: `[batch, latent_dim + condition_dim]`
    /// - output: `[batch, 1, 28, 28]`, values in `[-1, 1]`
    pub fn forward(&self, input: Tensor<2>) -> Tensor<4> {
        let [batch, features] = input.dims();
        // A 1×1 map with a channel per input, channels last.
        let mut x = input.reshape([batch, 1, 1, features]);

        for (index, conv) in self.convs.iter().enumerate() {
            x = conv_transpose2d(x, conv);
            if index == self.convs.len() - 1 {
                break;
            }
            if let Some(norms) = &self.norms {
                x = channels_last::batch_norm(x, &norms[index]);
            }
            x = channels_last::relu(x);
        }

        to_channels_first(channels_last::tanh(x))
    }

    /// Folds the BatchNorm layers into the convolutions for inference.
    ///
    /// The result computes what this generator computes with its running statistics, and loads
    /// into a generator built with `batch_norm: false`. A generator without BatchNorm is
    /// returned unchanged.
    pub fn fold_batch_norm(self) -> Self {
        let Some(norms) = self.norms else {
            return self;
        };
        let [c0, c1, c2, c3] = self.convs;
        let [n0, n1, n2] = norms;
        Generator {
            convs: [
                fold_conv_transpose2d(c0, &n0),
                fold_conv_transpose2d(c1, &n1),
                fold_conv_transpose2d(c2, &n2),
                c3,
            ],
            norms: None,
            activation: self.activation,
            latent_dim: self.latent_dim,
            condition_dim: self.condition_dim,
        }
    }
}

/// Configuration of the [`Discriminator`].
#[derive(Config, Debug)]
pub struct DiscriminatorConfig {
    /// Output channels of the two hidden convolutions.
    #[config(default = "[16, 32]")]
    pub hidden_channels: [usize; 2],
    /// Whether the first convolution also has BatchNorm.
    #[config(default = false)]
    pub input_batch_norm: bool,
    /// Negative slope of the LeakyReLU activations.
    #[config(default = 0.2)]
    pub negative_slope: f64,
    /// Standard deviation of the normal initialisation of the convolution weights.
    #[config(default = 0.02)]
    pub init_std: f64,
}

/// Scores 28×28 images with one logit each: high for real digits, low for generated ones.
///
/// Layers: Conv k4 s2 (28→13 px) and k4 s2 (→5), each followed by LeakyReLU, then Conv k5 (→1)
/// to the logit. Only the second convolution has BatchNorm: after the first, BatchNorm would
/// subtract each batch's mean and so hide a uniform brightness offset, such as a gray background,
/// from the discriminator. `input_batch_norm` adds it back.
#[derive(Module, Debug)]
pub struct Discriminator {
    convs: [Conv2d; 3],
    input_norm: Option<BatchNorm>,
    norm: BatchNorm,
    activation: LeakyRelu,
}

impl DiscriminatorConfig {
    /// Initializes a discriminator with weights drawn from N(0, `init_std`).
    pub fn init(&self, device: &Device) -> Discriminator {
        let [c1, c2] = self.hidden_channels;
        let init = Initializer::Normal {
            mean: 0.0,
            std: self.init_std,
        };
        let layer = |channels: [usize; 2], kernel: usize, stride: usize| {
            Conv2dConfig::new(channels, [kernel, kernel])
                .with_stride([stride, stride])
                .with_initializer(init.clone())
                .init(device)
        };

        Discriminator {
            convs: [layer([1, c1], 4, 2), layer([c1, c2], 4, 2), layer([c2, 1], 5, 1)],
            input_norm: self.input_batch_norm.then(|| batch_norm(c1, self.init_std, device)),
            norm: batch_norm(c2, self.init_std, device),
            activation: LeakyReluConfig::new()
                .with_negative_slope(self.negative_slope)
                .init(),
        }
    }
}

impl Discriminator {
    /// Scores a batch of images.
    ///
    /// # Shapes
    ///
    /// - input: `[batch, 1, 28, 28]`, values in `[-1, 1]`
    /// - output: `[batch]` logits
    pub fn forward(&self, images: Tensor<4>) -> Tensor<1> {
        let [batch, _, height, width] = images.dims();
        debug_assert_eq!((height, width), (IMAGE_SIDE, IMAGE_SIDE));

        let mut x = conv2d(to_channels_last(images), &self.convs[0]);
        if let Some(norm) = &self.input_norm {
            x = channels_last::batch_norm(x, norm);
        }
        let x = channels_last::leaky_relu(x, &self.activation);
        let x = channels_last::leaky_relu(channels_last::batch_norm(conv2d(x, &self.convs[1]), &self.norm), &self.activation);
        conv2d(x, &self.convs[2]).reshape([batch])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tolerance};

    #[test]
    fn generator_maps_latents_to_images() {
        let device = Device::flex();
        let generator = GeneratorConfig::new().init(&device);
        let latent = Tensor::<2>::random([3, 64], Distribution::Normal(0.0, 1.0), &device);

        let images = generator.forward(latent);

        assert_eq!(images.dims(), [3, 1, 28, 28]);
        let values = images.into_data().try_to_vec::<f32>().unwrap();
        assert!(values.iter().all(|v| (-1.0..=1.0).contains(v)));
    }

    #[test]
    fn conditional_generator_takes_extra_inputs() {
        let device = Device::flex();
        let generator = GeneratorConfig::new().with_condition_dim(10).init(&device);
        let input = Tensor::<2>::zeros([2, 74], &device);
        assert_eq!(generator.forward(input).dims(), [2, 1, 28, 28]);
    }

    #[test]
    fn discriminator_gives_one_logit_per_image() {
        let device = Device::flex();
        let discriminator = DiscriminatorConfig::new().init(&device);
        let images = Tensor::<4>::random([5, 1, 28, 28], Distribution::Default, &device);
        assert_eq!(discriminator.forward(images).dims(), [5]);
    }

    #[test]
    fn folded_generator_matches_batch_norm_inference() {
        let device = Device::flex();
        device.seed(11);
        let generator = GeneratorConfig::new().init(&device);
        // Give the running statistics values that differ from their identity defaults.
        let mut generator = generator;
        if let Some(norms) = &mut generator.norms {
            for norm in norms.iter_mut() {
                let [channels] = norm.gamma.dims();
                let mean = Tensor::<1>::random([channels], Distribution::Normal(0.0, 0.5), &device);
                let var =
                    Tensor::<1>::random([channels], Distribution::Uniform(0.01, 3.0), &device);
                norm.running_mean.update(mean);
                norm.running_var.update(var);
            }
        }
        let latent = Tensor::<2>::random([4, 64], Distribution::Normal(0.0, 1.0), &device);

        let expected = generator.forward(latent.clone()).into_data();
        let folded = generator.fold_batch_norm();
        assert!(folded.norms.is_none());
        let actual = folded.forward(latent).into_data();

        actual.assert_approx_eq::<f32>(&expected, Tolerance::absolute(1e-4));
    }

    #[test]
    fn exported_generator_loads_with_same_output() {
        let device = Device::flex();
        device.seed(5);
        let config = GeneratorConfig::new();
        let generator = config.init(&device);
        let latent = Tensor::<2>::random([8, 64], Distribution::Normal(0.0, 1.0), &device);
        let expected = generator.valid().forward(latent.clone()).into_data();

        for storage in [StorageType::Int8, StorageType::F16] {
            let file = export_generator(ModelKind::Dcgan, &config, &generator, storage).unwrap();
            let (loaded_config, loaded) = load_generator(&file, ModelKind::Dcgan, &device).unwrap();

            assert!(!loaded_config.batch_norm);
            let actual = loaded.forward(latent.clone()).into_data();
            actual.assert_approx_eq::<f32>(&expected, Tolerance::absolute(2e-2));
        }
    }

    #[test]
    fn generator_file_of_other_kind_is_rejected() {
        let device = Device::flex();
        let config = GeneratorConfig::new();
        let file = export_generator(ModelKind::Dcgan, &config, &config.init(&device), StorageType::Int8).unwrap();

        let error = load_generator(&file, ModelKind::Cgan, &device).unwrap_err();

        assert!(matches!(error, WeightsError::Kind { found: ModelKind::Dcgan, expected: ModelKind::Cgan }));
    }
}
