//! The page's `weights/manifest.json`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::manifest::Manifest;

fuzz_target!(|bytes: &[u8]| {
    let _ = Manifest::parse(bytes);
});
