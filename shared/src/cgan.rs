//! Conditional GAN: the DCGAN generator fed a one-hot label after the latent, and a
//! discriminator that scores the image together with ten label planes.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, Initializer, LeakyRelu, LeakyReluConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor, TensorData};

use crate::NUM_CLASSES;
use crate::channels_last::{self, conv2d, to_channels_last};
use crate::dcgan::batch_norm;

/// A digit label that is not 0-9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("digit {0} is out of range: expected 0 to 9")]
pub struct DigitOutOfRange(pub u32);

/// Returns the one-hot rows of `digits`, ten values per digit.
pub fn one_hot(digits: &[u32]) -> Result<Vec<f32>, DigitOutOfRange> {
    let mut rows = vec![0.0; digits.len() * NUM_CLASSES];
    for (row, &digit) in digits.iter().enumerate() {
        if digit as usize >= NUM_CLASSES {
            return Err(DigitOutOfRange(digit));
        }
        rows[row * NUM_CLASSES + digit as usize] = 1.0;
    }
    Ok(rows)
}

/// Concatenates latent rows and the one-hot rows of `digits` into generator inputs.
///
/// `latents` contains `digits.len()` rows of `latent_dim` values; the result has `latent_dim + 10`
/// values per row.
pub fn conditional_inputs(latents: &[f32], latent_dim: usize, digits: &[u32]) -> Result<Vec<f32>, DigitOutOfRange> {
    assert_eq!(latents.len(), digits.len() * latent_dim, "one latent row per digit");
    let labels = one_hot(digits)?;
    let mut inputs = Vec::with_capacity(digits.len() * (latent_dim + NUM_CLASSES));
    for (latent, label) in latents.chunks_exact(latent_dim).zip(labels.chunks_exact(NUM_CLASSES)) {
        inputs.extend_from_slice(latent);
        inputs.extend_from_slice(label);
    }
    Ok(inputs)
}

/// Returns generator inputs with one row of `styles.len() / latent_dim` images per digit 0-9,
/// where column `j` of every row uses latent `j` of `styles`: the style held, the class changed.
pub fn digit_rows(styles: &[f32], latent_dim: usize) -> Vec<f32> {
    let per_digit = styles.len() / latent_dim;
    let latents: Vec<f32> = (0..NUM_CLASSES).flat_map(|_| styles.iter().copied()).collect();
    let digits: Vec<u32> = (0..NUM_CLASSES as u32)
        .flat_map(|digit| std::iter::repeat_n(digit, per_digit))
        .collect();
    conditional_inputs(&latents, latent_dim, &digits).expect("0-9 are digits")
}

/// Configuration of the [`ConditionalDiscriminator`].
#[derive(Config, Debug)]
pub struct ConditionalDiscriminatorConfig {
    /// Channels of the first hidden convolution; the next two have twice and four times as many.
    #[config(default = 16)]
    pub hidden_width: usize,
    /// Negative slope of the LeakyReLU activations.
    #[config(default = 0.2)]
    pub negative_slope: f64,
    /// Standard deviation of the normal initialisation of the convolution weights.
    #[config(default = 0.02)]
    pub init_std: f64,
}

/// Scores an image for a given digit with one logit: high for a real image of that digit.
///
/// Input: the image and ten planes that are 1 for the label's channel and 0 elsewhere (11
/// channels). Layers: Conv k4 s2 p1 (28→14 px, no BatchNorm), Conv k4 s2 p1 (→7) and Conv k3 s2
/// (→3), both with BatchNorm, then Conv k3 (→1) to the logit, LeakyReLU after each hidden layer.
#[derive(Module, Debug)]
pub struct ConditionalDiscriminator {
    convs: [Conv2d; 4],
    norms: [BatchNorm; 2],
    activation: LeakyRelu,
}

impl ConditionalDiscriminatorConfig {
    /// Initializes a discriminator with weights drawn from N(0, `init_std`).
    pub fn init(&self, device: &Device) -> ConditionalDiscriminator {
        let width = self.hidden_width;
        let init = Initializer::Normal {
            mean: 0.0,
            std: self.init_std,
        };
        let layer = |channels: [usize; 2], kernel: usize, stride: usize, padding: usize| {
            Conv2dConfig::new(channels, [kernel, kernel])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(padding, padding, padding, padding))
                .with_initializer(init.clone())
                .init(device)
        };

        ConditionalDiscriminator {
            convs: [
                layer([1 + NUM_CLASSES, width], 4, 2, 1),
                layer([width, 2 * width], 4, 2, 1),
                layer([2 * width, 4 * width], 3, 2, 0),
                layer([4 * width, 1], 3, 1, 0),
            ],
            norms: [2 * width, 4 * width].map(|channels| batch_norm(channels, self.init_std, device)),
            activation: LeakyReluConfig::new().with_negative_slope(self.negative_slope).init(),
        }
    }
}

impl ConditionalDiscriminator {
    /// Scores a batch of images, each for its label.
    ///
    /// # Shapes
    ///
    /// - images: `[batch, 1, 28, 28]`, values in `[-1, 1]`
    /// - labels: `[batch, 10]` one-hot rows
    /// - output: `[batch]` logits
    pub fn forward(&self, images: Tensor<4>, labels: Tensor<2>) -> Tensor<1> {
        let [batch, _, height, width] = images.dims();
        let planes = labels
            .reshape([batch, 1, 1, NUM_CLASSES])
            .expand([batch, height, width, NUM_CLASSES]);
        let x = Tensor::cat(vec![to_channels_last(images), planes], 3);

        let x = channels_last::leaky_relu(conv2d(x, &self.convs[0]), &self.activation);
        let x = channels_last::leaky_relu(channels_last::batch_norm(conv2d(x, &self.convs[1]), &self.norms[0]), &self.activation);
        let x = channels_last::leaky_relu(channels_last::batch_norm(conv2d(x, &self.convs[2]), &self.norms[1]), &self.activation);
        conv2d(x, &self.convs[3]).reshape([batch])
    }
}

/// Builds a `[rows, 10]` one-hot tensor of `digits`.
pub fn labels_tensor(digits: &[u32], device: &Device) -> Result<Tensor<2>, DigitOutOfRange> {
    let rows = one_hot(digits)?;
    Ok(Tensor::from_data(TensorData::new(rows, [digits.len(), NUM_CLASSES]), device))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn one_hot_sets_one_entry_per_row() {
        let rows = one_hot(&[0, 9, 3]).unwrap();
        assert_eq!(rows.len(), 30);
        assert_eq!(rows.iter().sum::<f32>(), 3.0);
        assert_eq!(rows[0], 1.0);
        assert_eq!(rows[19], 1.0);
        assert_eq!(rows[23], 1.0);
    }

    #[test]
    fn one_hot_rejects_digit_ten() {
        assert_eq!(one_hot(&[1, 10]), Err(DigitOutOfRange(10)));
        assert_eq!(DigitOutOfRange(10).to_string(), "digit 10 is out of range: expected 0 to 9");
    }

    #[test]
    fn conditional_inputs_append_labels() {
        let inputs = conditional_inputs(&[0.5, -0.5, 1.0, 2.0], 2, &[1, 0]).unwrap();
        assert_eq!(inputs.len(), 24);
        assert_eq!(&inputs[..3], &[0.5, -0.5, 0.0]);
        assert_eq!(inputs[3], 1.0);
        assert_eq!(&inputs[12..15], &[1.0, 2.0, 1.0]);
    }

    #[test]
    fn digit_rows_share_styles_across_digits() {
        let inputs = digit_rows(&[0.1, 0.2, 0.3, 0.4], 2);
        assert_eq!(inputs.len(), 20 * 12);
        // Row of digit 4, column 1: the second style followed by label 4.
        let row = &inputs[(4 * 2 + 1) * 12..(4 * 2 + 2) * 12];
        assert_eq!(&row[..2], &[0.3, 0.4]);
        assert_eq!(row[2 + 4], 1.0);
        assert_eq!(row[2..].iter().sum::<f32>(), 1.0);
    }

    #[test]
    fn discriminator_scores_image_label_pairs() {
        let device = Device::flex();
        let discriminator = ConditionalDiscriminatorConfig::new().init(&device);
        let images = Tensor::<4>::random([3, 1, 28, 28], Distribution::Default, &device);
        let labels = labels_tensor(&[1, 2, 3], &device).unwrap();
        assert_eq!(discriminator.forward(images, labels).dims(), [3]);
    }

    #[test]
    fn discriminator_output_depends_on_label() {
        let device = Device::flex();
        let discriminator = ConditionalDiscriminatorConfig::new().with_init_std(0.2).init(&device);
        let images = Tensor::<4>::random([1, 1, 28, 28], Distribution::Default, &device);
        let three = discriminator.forward(images.clone(), labels_tensor(&[3], &device).unwrap());
        let seven = discriminator.forward(images, labels_tensor(&[7], &device).unwrap());
        assert_ne!(three.into_data(), seven.into_data());
    }
}
