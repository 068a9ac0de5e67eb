//! Measures what 8-bit weights would cost a generator in quality: every weight matrix is rounded
//! to 8-bit integers with one scale per output channel (symmetric, scale = max |w| / 127), and
//! the Fréchet distance of its digits to the test set is compared with the f16 weights'.
//!
//! Usage: `cargo run --release -p trainer --example quantize -- WEIGHTS KIND CLASSIFIER DATA_DIR`
//! with KIND `dcgan` or `cgan`. Prints both distances, the distance between the two generators'
//! digits, the largest pixel difference and the payload sizes.

use anyhow::{Context, Result, bail};
use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, Tensor, TensorData};
use shared::classifier::load_classifier;
use shared::dcgan::load_generator;
use shared::mnist::{Mnist, Split};
use shared::weights::ModelKind;
use trainer::eval::{features_of, generated_features};
use trainer::metrics::{Gaussian, frechet_distance};

const SAMPLES: usize = 10_000;

/// Rounds every weight tensor of two or more dimensions to 8 bits per value with one scale per
/// output channel, and counts the bytes that storage would take.
struct Quantize {
    bytes: usize,
}

impl ModuleMapper for Quantize {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let dims = tensor.dims();
        if D < 2 {
            // Biases stay in f16.
            self.bytes += 2 * dims.iter().product::<usize>();
            return Param::from_mapped_value(id, tensor, mapper);
        }

        // Conv2d weights are [out, in, k, k] and ConvTranspose2d weights [in, out, k, k]; the
        // generator has only transposed convolutions, so dimension 1 is the output channel.
        let channel_dim = 1;
        let values = tensor.to_data().convert::<f32>().try_to_vec::<f32>().expect("float weights");
        let channels = dims[channel_dim];
        let inner: usize = dims[channel_dim + 1..].iter().product();
        let mut max = vec![0.0f32; channels];
        for (index, value) in values.iter().enumerate() {
            let channel = (index / inner) % channels;
            max[channel] = max[channel].max(value.abs());
        }
        let quantized: Vec<f32> = values
            .iter()
            .enumerate()
            .map(|(index, value)| {
                let scale = max[(index / inner) % channels] / 127.0;
                if scale == 0.0 { 0.0 } else { (value / scale).round().clamp(-127.0, 127.0) * scale }
            })
            .collect();
        self.bytes += values.len() + 4 * channels;
        let device = tensor.device();
        Param::from_mapped_value(id, Tensor::from_data(TensorData::new(quantized, dims), &device), mapper)
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [weights, kind, classifier, data_dir] = args.as_slice() else {
        bail!("usage: quantize WEIGHTS dcgan|cgan CLASSIFIER DATA_DIR");
    };
    let kind = match kind.as_str() {
        "dcgan" => ModelKind::Dcgan,
        "cgan" => ModelKind::Cgan,
        other => bail!("unknown model {other}: expected dcgan or cgan"),
    };
    let device = Device::flex();
    let file = std::fs::read(weights).with_context(|| format!("failed to read {weights}"))?;
    let (_, generator) = load_generator(&file, kind, &device)?;
    let (_, classifier) = load_classifier(&std::fs::read(classifier)?, &device)?;
    let test = Mnist::load(data_dir.as_ref(), Split::Test)?;

    let mut quantize = Quantize { bytes: 0 };
    let quantized = generator.clone().map(&mut quantize);

    let test_gaussian = Gaussian::fit(&features_of(&classifier, &test, test.len(), &device)?, 128);
    let (original, _) = generated_features(&generator, &classifier, SAMPLES, 0, &device)?;
    let (rounded, _) = generated_features(&quantized, &classifier, SAMPLES, 0, &device)?;
    let original_gaussian = Gaussian::fit(&original, 128);
    let rounded_gaussian = Gaussian::fit(&rounded, 128);

    let probe = shared::latent::normal_latents(1, 64, generator.latent_dim() + generator.condition_dim());
    let input = Tensor::<2>::from_data(TensorData::new(probe, [64, generator.latent_dim() + generator.condition_dim()]), &device);
    let a = generator.forward(input.clone()).into_data().try_to_vec::<f32>().unwrap_or_default();
    let b = quantized.forward(input).into_data().try_to_vec::<f32>().unwrap_or_default();
    let max_difference = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);

    println!("model {kind}, {SAMPLES} digits, seed 0");
    println!("f16 weights:  Fréchet distance to the test set {:.3}", frechet_distance(&original_gaussian, &test_gaussian));
    println!("8-bit weights: Fréchet distance to the test set {:.3}", frechet_distance(&rounded_gaussian, &test_gaussian));
    println!("f16 vs 8-bit digits: Fréchet distance {:.3}", frechet_distance(&original_gaussian, &rounded_gaussian));
    println!("largest pixel difference on 64 digits: {max_difference:.4} (pixels in [-1, 1])");
    println!("payload: f16 {} bytes, 8-bit with per-channel f32 scales {} bytes", file.len(), quantize.bytes);
    Ok(())
}
