//! Convolutional autoencoder for 28×28 digits: two strided convolutions down to a small code
//! and two transposed convolutions back.
//!
//! [`ConvEncoder`] and [`ConvDecoder`] are also the body of the variational autoencoder in
//! [`crate::vae`].

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{Linear, LinearConfig, Relu};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};

use crate::IMAGE_SIDE;
use crate::channels_last::{self, PixelLoss, conv_transpose2d, conv2d, relu, to_channels_first, to_channels_last};
use crate::weights::{self, ModelKind, StorageType, WeightsError, check_dims};

/// Side of the feature maps after the two strided convolutions: 28 → 14 → 7.
const FEATURE_SIDE: usize = IMAGE_SIDE / 4;

/// Configuration of the [`Autoencoder`].
#[derive(Config, Debug)]
pub struct AutoencoderConfig {
    /// Output channels of the two encoder convolutions; the decoder mirrors them.
    #[config(default = "[16, 32]")]
    pub channels: [usize; 2],
    /// Size of the code between encoder and decoder.
    #[config(default = 32)]
    pub code_dim: usize,
}

impl AutoencoderConfig {
    /// Initializes an autoencoder with Burn's default (Kaiming uniform) weights.
    pub fn init(&self, device: &Device) -> Autoencoder {
        let features = self.channels[1] * FEATURE_SIDE * FEATURE_SIDE;
        Autoencoder {
            encoder: ConvEncoder::new(self.channels, device),
            code: LinearConfig::new(features, self.code_dim).init(device),
            decoder: ConvDecoder::new(self.channels, self.code_dim, device),
        }
    }

    /// Checks the sizes, as read from a file, before anything is allocated.
    pub fn validate(&self) -> Result<(), String> {
        check_dims("channels", &self.channels)?;
        check_dims("code_dim", &[self.code_dim])
    }
}

/// Compresses a digit to `code_dim` numbers and draws it back from them.
///
/// Encoder: Conv k4 s2 p1 (28→14 px), Conv k4 s2 p1 (→7), each with ReLU, then a linear layer to
/// the code. Decoder: a linear layer back to the 7×7 maps with ReLU, ConvTranspose k4 s2 p1 (→14)
/// with ReLU and ConvTranspose k4 s2 p1 (→28) with a sigmoid.
#[derive(Module, Debug)]
pub struct Autoencoder {
    encoder: ConvEncoder,
    code: Linear,
    decoder: ConvDecoder,
}

impl Autoencoder {
    /// Size of the code.
    pub fn code_dim(&self) -> usize {
        self.decoder.code_dim()
    }

    /// Encodes images to codes.
    ///
    /// # Shapes
    ///
    /// - images: `[batch, 1, 28, 28]`, values in `[0, 1]`
    /// - output: `[batch, code_dim]`
    pub fn encode(&self, images: Tensor<4>) -> Tensor<2> {
        channels_last::linear_from_maps(self.encoder.forward(images), &self.code)
    }

    /// Decodes codes to images.
    ///
    /// # Shapes
    ///
    /// - codes: `[batch, code_dim]`
    /// - output: `[batch, 1, 28, 28]`, values in `[0, 1]`
    pub fn decode(&self, codes: Tensor<2>) -> Tensor<4> {
        sigmoid(self.decoder.forward(codes))
    }

    /// Encodes and decodes images to pixel logits, for a cross-entropy loss.
    ///
    /// # Shapes
    ///
    /// - images: `[batch, 1, 28, 28]`, values in `[0, 1]`
    /// - output: `[batch, 1, 28, 28]` logits
    pub fn logits(&self, images: Tensor<4>) -> Tensor<4> {
        self.decoder.forward(self.encode(images))
    }

    /// Encodes and decodes images.
    ///
    /// # Shapes
    ///
    /// - images: `[batch, 1, 28, 28]`, values in `[0, 1]`
    /// - output: `[batch, 1, 28, 28]`, values in `[0, 1]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<4> {
        self.decode(self.encode(images))
    }
}

/// The convolutional half of an encoder: two strided convolutions with ReLU.
#[derive(Module, Debug)]
pub struct ConvEncoder {
    convs: [Conv2d; 2],
    activation: Relu,
}

impl ConvEncoder {
    /// Creates the two convolutions, 1 → `channels[0]` → `channels[1]`.
    pub fn new(channels: [usize; 2], device: &Device) -> Self {
        let layer = |io: [usize; 2]| {
            Conv2dConfig::new(io, [4, 4])
                .with_stride([2, 2])
                .with_padding(burn::nn::PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        Self {
            convs: [layer([1, channels[0]]), layer(channels)],
            activation: Relu::new(),
        }
    }

    /// Number of values per image in the output, the input size of the linear layer that
    /// follows, which reads them flattened channels first.
    pub fn features(&self) -> usize {
        let [channels, ..] = self.convs[1].weight.dims();
        channels * FEATURE_SIDE * FEATURE_SIDE
    }

    /// Returns channels-last feature maps, for [`channels_last::linear_from_maps`].
    ///
    /// # Shapes
    ///
    /// - images: `[batch, 1, 28, 28]`
    /// - output: `[batch, 7, 7, channels[1]]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<4> {
        let x = to_channels_last(images);
        let x = relu(conv2d(x, &self.convs[0]));
        relu(conv2d(x, &self.convs[1]))
    }
}

/// A decoder mirroring [`ConvEncoder`]: a linear layer to 7×7 maps, then two transposed
/// convolutions to one 28×28 map of logits.
#[derive(Module, Debug)]
pub struct ConvDecoder {
    linear: Linear,
    convs: [ConvTranspose2d; 2],
    activation: Relu,
}

impl ConvDecoder {
    /// Creates the layers for codes of `code_dim`, mirroring an encoder with `channels`.
    pub fn new(channels: [usize; 2], code_dim: usize, device: &Device) -> Self {
        let layer = |io: [usize; 2]| {
            ConvTranspose2dConfig::new(io, [4, 4])
                .with_stride([2, 2])
                .with_padding([1, 1])
                .init(device)
        };
        Self {
            linear: LinearConfig::new(code_dim, channels[1] * FEATURE_SIDE * FEATURE_SIDE).init(device),
            convs: [layer([channels[1], channels[0]]), layer([channels[0], 1])],
            activation: Relu::new(),
        }
    }

    /// Size of the codes it takes.
    pub fn code_dim(&self) -> usize {
        self.linear.weight.dims()[0]
    }

    /// Decodes codes to pixel logits; apply a sigmoid for pixels in `[0, 1]`.
    ///
    /// # Shapes
    ///
    /// - codes: `[batch, code_dim]`
    /// - output: `[batch, 1, 28, 28]` logits
    pub fn forward(&self, codes: Tensor<2>) -> Tensor<4> {
        let [channels, ..] = self.convs[0].weight.dims();
        let x = relu(channels_last::linear_to_maps(codes, &self.linear, [channels, FEATURE_SIDE, FEATURE_SIDE]));
        let x = relu(conv_transpose2d(x, &self.convs[0]));
        to_channels_first(conv_transpose2d(x, &self.convs[1]))
    }
}

/// Serializes a trained autoencoder into a weights file with tensors stored as `storage`.
pub fn export_autoencoder(
    config: &AutoencoderConfig,
    model: &Autoencoder,
    storage: StorageType,
) -> Result<Vec<u8>, WeightsError> {
    let config = serde_json::to_value(config).map_err(|e| WeightsError::Config(e.to_string()))?;
    weights::encode(ModelKind::Autoencoder, config, model.valid(), storage)
}

/// Loads an autoencoder from a weights file onto `device`.
pub fn load_autoencoder(file: &[u8], device: &Device) -> Result<(AutoencoderConfig, Autoencoder), WeightsError> {
    weights::load(file, ModelKind::Autoencoder, device, |config: &AutoencoderConfig, cpu| {
        config.validate()?;
        Ok(config.init(cpu))
    })
}

/// Mean squared error per pixel between two image batches with values in `[0, 1]`.
pub fn mse(reconstruction: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    (reconstruction - target).square().mean()
}

/// Mean squared error per pixel between the images that pixel `logits` stand for and `target`:
/// [`mse`] of `sigmoid(logits)`, in one kernel each way on burn-flex. No gradient flows into
/// `target`.
pub fn mse_of_logits(logits: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    let [_, channels, height, width] = logits.dims();
    let per_image = channels_last::pixel_loss(logits, target, PixelLoss::SquaredError);
    per_image.mean().div_scalar((channels * height * width) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tolerance};

    #[test]
    fn autoencoder_keeps_image_shape() {
        let device = Device::flex();
        let model = AutoencoderConfig::new().init(&device);
        let images = Tensor::<4>::random([3, 1, 28, 28], Distribution::Default, &device);

        assert_eq!(model.encode(images.clone()).dims(), [3, 32]);
        let output = model.forward(images);

        assert_eq!(output.dims(), [3, 1, 28, 28]);
        let values = output.into_data().try_to_vec::<f32>().unwrap();
        assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn code_size_follows_config() {
        let device = Device::flex();
        let model = AutoencoderConfig::new().with_code_dim(5).with_channels([4, 8]).init(&device);
        assert_eq!(model.code_dim(), 5);
        assert_eq!(model.encoder.features(), 8 * 7 * 7);
        let codes = Tensor::<2>::zeros([2, 5], &device);
        assert_eq!(model.decode(codes).dims(), [2, 1, 28, 28]);
    }

    #[test]
    fn exported_autoencoder_loads_with_same_output() {
        let device = Device::flex();
        device.seed(3);
        let config = AutoencoderConfig::new();
        let model = config.init(&device);
        let images = Tensor::<4>::random([4, 1, 28, 28], Distribution::Default, &device);
        let expected = model.forward(images.clone()).into_data();

        for storage in [StorageType::Int8, StorageType::F16] {
            let file = export_autoencoder(&config, &model, storage).unwrap();
            let (_, loaded) = load_autoencoder(&file, &device).unwrap();

            let actual = loaded.forward(images.clone()).into_data();
            actual.assert_approx_eq::<f32>(&expected, Tolerance::absolute(1e-2));
        }
    }

    #[test]
    fn oversized_config_is_rejected_before_allocation() {
        let config = AutoencoderConfig::new().with_code_dim(1 << 30);
        assert!(config.validate().unwrap_err().contains("code_dim"));
    }

    #[test]
    fn mse_of_identical_images_is_zero() {
        let device = Device::flex();
        let images = Tensor::<4>::random([2, 1, 28, 28], Distribution::Default, &device);
        let zero: f32 = mse(images.clone(), images.clone()).into_scalar();
        assert_eq!(zero, 0.0);
        let shifted: f32 = mse(images.clone().add_scalar(0.5), images).into_scalar();
        assert!((shifted - 0.25).abs() < 1e-6, "{shifted}");
    }

    #[test]
    fn mse_of_logits_matches_mse_of_sigmoid() {
        let device = Device::flex().autodiff();
        let logits = Tensor::<4>::random([3, 1, 28, 28], Distribution::Normal(0.0, 4.0), &device);
        let target = Tensor::<4>::random([3, 1, 28, 28], Distribution::Default, &device);

        let run = |loss: &dyn Fn(Tensor<4>) -> Tensor<1>| {
            let x = logits.clone().require_grad();
            let value = loss(x.clone());
            let grad = x.grad(&value.backward()).expect("logits gradient");
            (value.into_data(), grad.into_data())
        };
        let (value, grad) = run(&|x| mse_of_logits(x, target.clone()));
        let (expected, expected_grad) = run(&|x| mse(sigmoid(x), target.clone()));

        value.assert_approx_eq::<f32>(&expected, Tolerance::absolute(1e-6));
        grad.assert_approx_eq::<f32>(&expected_grad, Tolerance::absolute(1e-8));
    }
}
