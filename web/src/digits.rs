//! The bundled sample of real MNIST test digits (`assets/test-digits-*.gz`), fetched once and
//! shared by the Draw and Latent space parts.

use std::cell::RefCell;
use std::rc::Rc;

use flate2::read::GzDecoder;
use shared::IMAGE_PIXELS;
use shared::mnist::{parse_images, parse_labels};

use crate::fetch::fetch_bytes;

/// Path of the images file, relative to the page.
pub const IMAGES_PATH: &str = "assets/test-digits-images-idx3-ubyte.gz";

/// Path of the labels file, relative to the page.
pub const LABELS_PATH: &str = "assets/test-digits-labels-idx1-ubyte.gz";

/// Real MNIST test digits with their labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestDigits {
    images: Vec<u8>,
    labels: Vec<u8>,
}

/// One test digit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestDigit {
    /// Position in the bundled sample, which is also its position in the MNIST test set.
    pub index: usize,
    /// The digit it shows, 0-9.
    pub label: u8,
    /// 784 gray levels, row-major, 0 for the background and 255 for full ink.
    pub pixels: Vec<u8>,
}

impl TestDigit {
    /// Returns the pixels as model input: values in `[0, 1]`, as the models were trained on.
    pub fn model_input(&self) -> Vec<f32> {
        self.pixels.iter().map(|&gray| f32::from(gray) / 255.0).collect()
    }
}

impl TestDigits {
    /// Number of digits.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Returns whether the sample is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Returns digit `index`, or `None` when the sample has no such digit.
    pub fn get(&self, index: usize) -> Option<TestDigit> {
        let label = *self.labels.get(index)?;
        let pixels = self.images.get(index * IMAGE_PIXELS..(index + 1) * IMAGE_PIXELS)?.to_vec();
        Some(TestDigit { index, label, pixels })
    }
}

thread_local! {
    static CACHE: RefCell<Option<Rc<TestDigits>>> = const { RefCell::new(None) };
}

/// Returns the bundled test digits, fetching and checking both files on first use.
pub async fn test_digits() -> Result<Rc<TestDigits>, String> {
    if let Some(digits) = CACHE.with(|cache| cache.borrow().clone()) {
        return Ok(digits);
    }

    let images = fetch_bytes(IMAGES_PATH).await?;
    let images = parse_images(IMAGES_PATH, GzDecoder::new(images.as_slice())).map_err(|error| error.to_string())?;
    let labels = fetch_bytes(LABELS_PATH).await?;
    let labels = parse_labels(LABELS_PATH, GzDecoder::new(labels.as_slice())).map_err(|error| error.to_string())?;
    if images.len() != labels.len() * IMAGE_PIXELS {
        return Err(format!(
            "{IMAGES_PATH} holds {} images but {LABELS_PATH} holds {} labels; publish both files from the same build",
            images.len() / IMAGE_PIXELS,
            labels.len()
        ));
    }
    if labels.is_empty() {
        return Err(format!("{IMAGES_PATH} holds no digits; publish the bundled sample (see web/assets/README.md)"));
    }

    let digits = Rc::new(TestDigits { images, labels });
    CACHE.with(|cache| *cache.borrow_mut() = Some(digits.clone()));
    Ok(digits)
}
