//! A small convolutional MNIST classifier: the reference network of the quality metrics and
//! the page's "reads as" label.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};

use crate::channels_last::{self, conv2d, max_pool2d, to_channels_first, to_channels_last};
use crate::weights::{self, ModelKind, StorageType, WeightsError, check_dims};
use crate::{IMAGE_SIDE, NUM_CLASSES};

/// Configuration of the [`Classifier`].
#[derive(Config, Debug)]
pub struct ClassifierConfig {
    /// Output channels of the two convolutions.
    #[config(default = "[32, 64]")]
    pub channels: [usize; 2],
    /// Size of the hidden layer, whose activations are the features of the Fréchet distance.
    #[config(default = 128)]
    pub hidden: usize,
    /// Dropout probability before the output layer, active in training only.
    #[config(default = 0.3)]
    pub dropout: f64,
}

impl ClassifierConfig {
    /// Initializes a classifier with Burn's default weights.
    pub fn init(&self, device: &Device) -> Classifier {
        let conv = |io: [usize; 2]| {
            Conv2dConfig::new(io, [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .init(device)
        };
        let side = IMAGE_SIDE / 4;
        Classifier {
            convs: [conv([1, self.channels[0]]), conv(self.channels)],
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            hidden: LinearConfig::new(self.channels[1] * side * side, self.hidden).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            output: LinearConfig::new(self.hidden, NUM_CLASSES).init(device),
            activation: Relu::new(),
        }
    }

    /// Checks the sizes, as read from a file, before anything is allocated.
    pub fn validate(&self) -> Result<(), String> {
        check_dims("channels", &self.channels)?;
        check_dims("hidden", &[self.hidden])?;
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout is {}, expected 0 to below 1", self.dropout));
        }
        Ok(())
    }
}

/// Reads a digit: Conv 3×3 + ReLU + MaxPool 2 twice (28→14→7 px), a hidden linear layer with
/// ReLU, dropout, and a linear layer to 10 logits.
#[derive(Module, Debug)]
pub struct Classifier {
    convs: [Conv2d; 2],
    pool: MaxPool2d,
    hidden: Linear,
    dropout: Dropout,
    output: Linear,
    activation: Relu,
}

impl Classifier {
    /// Returns the hidden layer's activations (after ReLU), the features of the Fréchet
    /// distance.
    ///
    /// # Shapes
    ///
    /// - images: `[batch, 1, 28, 28]`, values in `[0, 1]`
    /// - output: `[batch, hidden]`
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        let x = to_channels_last(images);
        // Pooling before the ReLU gives the same values and gradients as after it, on a quarter
        // of the pixels.
        let x = self.activation.forward(max_pool2d(conv2d(x, &self.convs[0]), &self.pool));
        let x = self.activation.forward(max_pool2d(conv2d(x, &self.convs[1]), &self.pool));
        let x = to_channels_first(x).flatten(1, 3);
        self.activation.forward(channels_last::linear(x, &self.hidden))
    }

    /// Returns the class logits.
    ///
    /// # Shapes
    ///
    /// - images: `[batch, 1, 28, 28]`, values in `[0, 1]`
    /// - output: `[batch, 10]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        channels_last::linear(self.dropout.forward(self.features(images)), &self.output)
    }

    /// Returns the class probabilities: `[batch, 10]`.
    pub fn probabilities(&self, images: Tensor<4>) -> Tensor<2> {
        softmax(self.forward(images), 1)
    }
}

/// Serializes a trained classifier into a weights file with tensors stored as `storage`.
pub fn export_classifier(
    config: &ClassifierConfig,
    model: &Classifier,
    storage: StorageType,
) -> Result<Vec<u8>, WeightsError> {
    let config = serde_json::to_value(config).map_err(|e| WeightsError::Config(e.to_string()))?;
    weights::encode(ModelKind::Classifier, config, model.valid(), storage)
}

/// Loads a classifier from a weights file onto `device`.
pub fn load_classifier(file: &[u8], device: &Device) -> Result<(ClassifierConfig, Classifier), WeightsError> {
    weights::load(file, ModelKind::Classifier, device, |config: &ClassifierConfig, cpu| {
        config.validate()?;
        Ok(config.init(cpu))
    })
}

/// Returns the index of the largest value of each row of `[rows, classes]` values.
pub fn argmax_rows(values: &[f32], classes: usize) -> Vec<usize> {
    values
        .chunks(classes)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best })
                .0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tolerance};

    #[test]
    fn classifier_shapes() {
        let device = Device::flex();
        let model = ClassifierConfig::new().init(&device);
        let images = Tensor::<4>::random([3, 1, 28, 28], Distribution::Default, &device);

        assert_eq!(model.features(images.clone()).dims(), [3, 128]);
        assert_eq!(model.forward(images.clone()).dims(), [3, 10]);
        let sums = model.probabilities(images).sum_dim(1).into_data().try_to_vec::<f32>().unwrap();
        assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5), "{sums:?}");
    }

    #[test]
    fn exported_classifier_loads_with_same_output() {
        let device = Device::flex();
        device.seed(4);
        let config = ClassifierConfig::new();
        let model = config.init(&device);
        let images = Tensor::<4>::random([2, 1, 28, 28], Distribution::Default, &device);
        let expected = model.probabilities(images.clone()).into_data();

        for storage in [StorageType::Int8, StorageType::F16] {
            let file = export_classifier(&config, &model, storage).unwrap();
            let (_, loaded) = load_classifier(&file, &device).unwrap();

            let actual = loaded.probabilities(images.clone()).into_data();
            actual.assert_approx_eq::<f32>(&expected, Tolerance::absolute(1e-2));
        }
    }

    #[test]
    fn argmax_picks_largest_per_row() {
        assert_eq!(argmax_rows(&[0.1, 0.7, 0.2, 0.9, 0.05, 0.05], 3), vec![1, 0]);
    }

    #[test]
    fn invalid_dropout_is_rejected() {
        assert!(ClassifierConfig::new().with_dropout(1.5).validate().is_err());
    }
}
