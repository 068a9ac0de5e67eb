//! The weights bundled with the page load, produce varied digits, and agree across backends.

use burn::tensor::Device;
use integration_tests::{bundled, generate, root, wgpu_device};
use shared::dcgan::load_generator;
use shared::weights::{ModelKind, StorageType, decode, sha256_hex};
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
fn every_bundled_card_names_its_weights_digest_and_storage() {
    for entry in shared::manifest::Manifest::parse(&bundled("manifest.json")).unwrap().models {
        let weights = bundled(&entry.file);
        let card_name = entry.card.as_deref().unwrap_or_else(|| panic!("{} has no card", entry.file));
        let card = String::from_utf8(bundled(card_name)).unwrap();
        let (header, _) = decode(&weights).unwrap();

        assert!(card.contains(&sha256_hex(&weights)), "{card_name} does not match {}", entry.file);
        assert!(card.contains(&format!("| storage | {}", header.storage)), "{card_name} names no storage");
    }
}

#[test]
fn bundled_weights_use_the_smallest_storage() {
    for name in ["dcgan.bin", "cgan.bin", "autoencoder.bin", "vae.bin", "vae-2d.bin", "classifier.bin"] {
        let (header, _) = decode(&bundled(name)).unwrap();
        assert_eq!(header.storage, StorageType::Int8, "{name}: run `trainer convert --weights web/weights/{name} --storage int8`");
    }
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

#[test]
fn bundled_cgan_draws_the_requested_classes_differently() {
    let device = Device::flex();
    let (config, generator) = load_generator(&bundled("cgan.bin"), ModelKind::Cgan, &device).unwrap();
    let styles = shared::latent::normal_latents(3, 8, config.latent_dim);
    let rows = shared::cgan::digit_rows(&styles, config.latent_dim);
    let input = burn::tensor::Tensor::<2>::from_data(
        burn::tensor::TensorData::new(rows, [80, config.latent_dim + 10]),
        &device,
    );

    let pixels = generator.forward(input).into_data().try_to_vec::<f32>().unwrap();

    // The mean image of each digit's row: a 1 and an 8 look nothing alike.
    let means: Vec<Vec<f32>> = pixels
        .chunks_exact(8 * IMAGE_PIXELS)
        .map(|row| {
            (0..IMAGE_PIXELS)
                .map(|p| row.chunks_exact(IMAGE_PIXELS).map(|image| image[p]).sum::<f32>() / 8.0)
                .collect()
        })
        .collect();
    let distance = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / IMAGE_PIXELS as f32;
    assert!(distance(&means[1], &means[8]) > 0.2, "rows of 1 and 8 look alike");
    assert!(distance(&means[0], &means[1]) > 0.2, "rows of 0 and 1 look alike");
}

#[test]
fn manifest_matches_bundled_files() {
    let manifest = shared::manifest::Manifest::parse(&bundled("manifest.json")).unwrap();
    for entry in &manifest.models {
        let bytes = bundled(&entry.file);
        assert!(
            entry.verify(&bytes).is_ok(),
            "{} changed since the manifest was written; run `trainer manifest`",
            entry.file
        );
    }

    let listed: Vec<&str> = manifest.models.iter().map(|entry| entry.file.as_str()).collect();
    for file in std::fs::read_dir(root().join("web/weights")).unwrap() {
        let name = file.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".bin") {
            assert!(listed.contains(&name.as_str()), "{name} is missing from manifest.json; run `trainer manifest`");
        }
    }
}
