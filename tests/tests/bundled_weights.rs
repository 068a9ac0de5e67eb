//! The weights bundled with the page load, produce varied digits, and agree across backends.

use burn::tensor::Device;
use integration_tests::{bundled, generate, wgpu_device};
use shared::dcgan::load_generator;
use shared::weights::{ModelKind, sha256_hex};
use shared::IMAGE_PIXELS;

fn std_dev(values: &[f32]) -> f32 {
    let mean = values.iter().sum::<f32>() / values.len() as f32;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / values.len() as f32).sqrt()
}

#[test]
fn bundled_dcgan_draws_varied_digits() {
    let device = Device::flex();
    let (_, generator) = load_generator(&bundled("dcgan.bin"), ModelKind::Dcgan, &device).unwrap();

    let pixels = generate(&generator, 42, 64, &device);

    let images: Vec<&[f32]> = pixels.chunks_exact(IMAGE_PIXELS).collect();
    assert_eq!(images.len(), 64);
    for (index, image) in images.iter().enumerate() {
        // A digit is mostly background (-1) with strokes near +1: its spread is large.
        assert!(std_dev(image) > 0.3, "image {index} is nearly uniform");
        let ink = image.iter().filter(|&&v| v > 0.0).count();
        assert!((20..500).contains(&ink), "image {index} has {ink} ink pixels");
    }

    // A collapsed generator draws the same digit for every latent.
    let mut total = 0.0;
    for pair in images.windows(2) {
        total += pair[0].iter().zip(pair[1]).map(|(a, b)| (a - b).abs()).sum::<f32>() / IMAGE_PIXELS as f32;
    }
    let mean_difference = total / 63.0;
    assert!(mean_difference > 0.15, "neighbouring digits differ by only {mean_difference}");
}

#[test]
fn bundled_card_names_the_weights_digest() {
    let weights = bundled("dcgan.bin");
    let card = String::from_utf8(bundled("dcgan.md")).unwrap();
    assert!(card.contains(&sha256_hex(&weights)), "the model card does not match dcgan.bin");
}

#[test]
fn cpu_and_wgpu_draw_the_same_digits() {
    let Some(gpu) = wgpu_device() else { return };
    let cpu = Device::flex();
    let weights = bundled("dcgan.bin");
    let (_, on_cpu) = load_generator(&weights, ModelKind::Dcgan, &cpu).unwrap();
    let (_, on_gpu) = load_generator(&weights, ModelKind::Dcgan, &gpu).unwrap();

    let expected = generate(&on_cpu, 7, 16, &cpu);
    let actual = generate(&on_gpu, 7, 16, &gpu);

    let max = expected.iter().zip(&actual).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(max < 1e-2, "the backends differ by up to {max}");
}
