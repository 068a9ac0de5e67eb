//! MNIST IDX image and label files, decompressed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::mnist::{parse_images, parse_labels};

fuzz_target!(|bytes: &[u8]| {
    let _ = parse_images("fuzz-images", bytes);
    let _ = parse_labels("fuzz-labels", bytes);
});
