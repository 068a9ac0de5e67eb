//! The page's bundled test digits, and the reference reconstructions that the browser tests
//! compare the page against.
//!
//! `tests/fixtures/autoencoder-reference.json` contains the autoencoder's reconstruction of a few
//! bundled test digits, computed here on burn-flex from `web/weights/autoencoder.bin` with each
//! digit's pixels divided by 255 as the input, which is what the page's "Random test digit"
//! button and `?test-digit=N` feed the model. After new autoencoder weights, regenerate it with
//! `UPDATE_FIXTURES=1 cargo test --release -p integration-tests --test autoencoder_reference`.

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use integration_tests::{bundled, root};
use serde_json::{Value, json};
use shared::autoencoder::load_autoencoder;
use shared::mnist::{read_images, read_labels};
use shared::weights::sha256_hex;
use shared::{IMAGE_PIXELS, IMAGE_SIDE};

/// Digits of the bundled sample in the fixture; the browser tests load some of them.
const REFERENCE_DIGITS: [usize; 3] = [0, 42, 99];

/// Largest difference between a fresh reconstruction and the fixture, per pixel in `[0, 1]`.
/// The fixture stores 6 decimals, and other CPUs may sum in another order.
const MAX_PIXEL_DIFFERENCE: f32 = 1e-5;

/// Number of digits in the page's bundled sample.
const BUNDLED_DIGITS: usize = 100;

fn fixture_path() -> PathBuf {
    root().join("tests/fixtures/autoencoder-reference.json")
}

fn bundled_images() -> Vec<u8> {
    read_images(&root().join("web/assets/test-digits-images-idx3-ubyte.gz")).unwrap()
}

fn bundled_labels() -> Vec<u8> {
    read_labels(&root().join("web/assets/test-digits-labels-idx1-ubyte.gz")).unwrap()
}

/// Returns the page's model input for bundled digit `index`: gray levels divided by 255.
fn model_input(images: &[u8], index: usize) -> Vec<f32> {
    images[index * IMAGE_PIXELS..(index + 1) * IMAGE_PIXELS]
        .iter()
        .map(|&gray| f32::from(gray) / 255.0)
        .collect()
}

/// Mean squared error per pixel, summed in the order the page sums it.
fn mean_squared_error(reconstruction: &[f32], target: &[f32]) -> f32 {
    let total: f32 = reconstruction.iter().zip(target).map(|(a, b)| (a - b) * (a - b)).sum();
    total / target.len() as f32
}

fn round6(value: f32) -> f64 {
    (f64::from(value) * 1e6).round() / 1e6
}

/// Formats the fixture as JSON with one image row of 28 values per line, so a diff shows
/// where a reconstruction changed.
fn fixture_text(fixture: &Value) -> String {
    let field = |name: &str| serde_json::to_string(&fixture[name]).unwrap();
    let mut text = format!(
        "{{\n  \"about\": {},\n  \"weights\": {},\n  \"weights_sha256\": {},\n  \"digits\": [\n",
        field("about"),
        field("weights"),
        field("weights_sha256")
    );
    let digits = fixture["digits"].as_array().unwrap();
    for (position, digit) in digits.iter().enumerate() {
        text += &format!(
            "    {{\n      \"index\": {},\n      \"label\": {},\n      \"error\": {},\n      \"reconstruction\": [\n",
            digit["index"], digit["label"], digit["error"]
        );
        let values = digit["reconstruction"].as_array().unwrap();
        let rows: Vec<String> = values
            .chunks(IMAGE_SIDE)
            .map(|row| format!("        {}", row.iter().map(Value::to_string).collect::<Vec<_>>().join(", ")))
            .collect();
        text += &rows.join(",\n");
        text += "\n      ]\n    }";
        text += if position + 1 < digits.len() { ",\n" } else { "\n" };
    }
    text + "  ]\n}\n"
}

#[test]
fn bundled_test_digits_match_the_fixture() {
    let fixture = root().join("tests/fixtures/mnist");
    let test_images = read_images(&fixture.join("t10k-images-idx3-ubyte.gz")).unwrap();
    let test_labels = read_labels(&fixture.join("t10k-labels-idx1-ubyte.gz")).unwrap();

    let images = bundled_images();
    let labels = bundled_labels();

    assert_eq!(labels.len(), BUNDLED_DIGITS, "web/assets holds {} labels", labels.len());
    assert_eq!(images.len(), BUNDLED_DIGITS * IMAGE_PIXELS, "web/assets holds the wrong number of images");
    assert_eq!(labels, test_labels[..BUNDLED_DIGITS], "bundled labels differ; run sh web/make-test-digits.sh");
    assert!(
        images == test_images[..BUNDLED_DIGITS * IMAGE_PIXELS],
        "bundled images differ from the first {BUNDLED_DIGITS} fixture digits; run sh web/make-test-digits.sh"
    );
}

#[test]
fn autoencoder_reconstructs_bundled_digits_as_recorded() {
    let weights = bundled("autoencoder.bin");
    let device = Device::flex();
    let (_, autoencoder) = load_autoencoder(&weights, &device).unwrap();
    let images = bundled_images();
    let labels = bundled_labels();

    let inputs: Vec<f32> = REFERENCE_DIGITS.iter().flat_map(|&index| model_input(&images, index)).collect();
    let batch = Tensor::<4>::from_data(
        TensorData::new(inputs.clone(), [REFERENCE_DIGITS.len(), 1, IMAGE_SIDE, IMAGE_SIDE]),
        &device,
    );
    let output = autoencoder.forward(batch).into_data().try_to_vec::<f32>().unwrap();

    let digits: Vec<Value> = REFERENCE_DIGITS
        .iter()
        .enumerate()
        .map(|(position, &index)| {
            let pixels = &output[position * IMAGE_PIXELS..(position + 1) * IMAGE_PIXELS];
            let target = &inputs[position * IMAGE_PIXELS..(position + 1) * IMAGE_PIXELS];
            json!({
                "index": index,
                "label": labels[index],
                "error": mean_squared_error(pixels, target),
                "reconstruction": pixels.iter().map(|&p| round6(p)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let actual = json!({
        "about": "Autoencoder reconstructions of bundled test digits (web/assets), input = gray levels / 255. \
                  Written by tests/tests/autoencoder_reference.rs with UPDATE_FIXTURES=1.",
        "weights": "web/weights/autoencoder.bin",
        "weights_sha256": sha256_hex(&weights),
        "digits": digits,
    });

    let path = fixture_path();
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        let text = fixture_text(&actual);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("failed to write {}: {e}", path.display()));
        eprintln!("wrote {}", path.display());
        return;
    }

    let regenerate = "regenerate it with UPDATE_FIXTURES=1 cargo test --release -p integration-tests --test autoencoder_reference";
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("failed to read {}: {e}; {regenerate}", path.display()));
    let expected: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is invalid JSON: {e}; {regenerate}", path.display()));
    assert_eq!(
        expected["weights_sha256"], actual["weights_sha256"],
        "{} was made from other autoencoder weights than web/weights/autoencoder.bin; {regenerate}",
        path.display()
    );

    for (expected, actual) in expected["digits"].as_array().unwrap().iter().zip(actual["digits"].as_array().unwrap()) {
        let index = &actual["index"];
        assert_eq!(expected["index"], *index, "{} lists other digits; {regenerate}", path.display());
        let pixels = |digit: &Value| -> Vec<f32> {
            digit["reconstruction"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect()
        };
        let error_difference = (expected["error"].as_f64().unwrap() - actual["error"].as_f64().unwrap()).abs();
        assert!(
            error_difference <= f64::from(MAX_PIXEL_DIFFERENCE),
            "the reconstruction error of test digit {index} differs from {} by {error_difference}; {regenerate}",
            path.display()
        );
        let (want, got) = (pixels(expected), pixels(actual));
        assert_eq!(want.len(), IMAGE_PIXELS, "digit {index} of {} has {} pixels", path.display(), want.len());
        let max = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(
            max <= MAX_PIXEL_DIFFERENCE,
            "the reconstruction of test digit {index} differs from {} by up to {max}; if the model code changed on purpose, {regenerate}",
            path.display()
        );
    }
}
