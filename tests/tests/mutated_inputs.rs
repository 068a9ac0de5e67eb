//! Mutation tests of every decoder of outside bytes: the bundled weights files, the manifest and
//! the MNIST IDX files, with random byte flips, insertions and truncations. Each mutated input
//! must give a value or a typed error, never a panic.

use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};

use burn::tensor::Device;
use integration_tests::{bundled, root};
use shared::autoencoder::load_autoencoder;
use shared::dcgan::load_generator;
use shared::latent::SeededRng;
use shared::manifest::Manifest;
use shared::mnist::{parse_images, parse_labels};
use shared::vae::load_vae;
use shared::weights::{ModelKind, assemble, decode};

/// Mutated inputs per decoder.
const CASES: usize = 300;

/// Returns `original` with a few random edits: flipped bytes, a truncation, an inserted run of
/// bytes, or a header length field set to an extreme value.
fn mutate(original: &[u8], rng: &mut SeededRng) -> Vec<u8> {
    let mut bytes = original.to_vec();
    match rng.next_below(4) {
        0 => {
            for _ in 0..1 + rng.next_below(8) {
                if bytes.is_empty() {
                    break;
                }
                let at = rng.next_below(bytes.len() as u64) as usize;
                bytes[at] ^= 1 << rng.next_below(8);
            }
        }
        1 => bytes.truncate(rng.next_below(bytes.len() as u64 + 1) as usize),
        2 => {
            let at = rng.next_below(bytes.len() as u64 + 1) as usize;
            let run: Vec<u8> = (0..1 + rng.next_below(64)).map(|_| rng.next_u64() as u8).collect();
            bytes.splice(at..at, run);
        }
        _ => {
            // Length and count fields sit in the first 16 bytes of both formats.
            let at = 4 * rng.next_below(4) as usize;
            let value = [u32::MAX, u32::MAX / 2, 0, 1 << 31][rng.next_below(4) as usize];
            if bytes.len() >= at + 4 {
                bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
            }
        }
    }
    bytes
}

/// Runs `decode` on `CASES` mutations of `original` and fails on the first panic.
fn assert_no_panic(name: &str, original: &[u8], seed: u64, decode: impl Fn(&[u8])) {
    let mut rng = SeededRng::new(seed);
    for case in 0..CASES {
        let input = mutate(original, &mut rng);
        let result = catch_unwind(AssertUnwindSafe(|| decode(&input)));
        assert!(result.is_ok(), "{name}: mutation {case} (seed {seed}) panicked");
    }
}

#[test]
fn mutated_weights_never_panic() {
    let device = Device::flex();
    for (file, seed) in [("dcgan.bin", 1), ("autoencoder.bin", 2), ("vae.bin", 3)] {
        let original = bundled(file);
        assert_no_panic(file, &original, seed, |bytes| {
            let _ = decode(bytes);
            let _ = load_generator(bytes, ModelKind::Dcgan, &device);
            let _ = load_autoencoder(bytes, &device);
            let _ = load_vae(bytes, &device);
        });
    }
}

/// Returns `file` with `payload` in place of its own, and the header's length and checksum set
/// to match, as a crafted file would have them.
fn with_payload(file: &[u8], payload: &[u8]) -> Vec<u8> {
    let (header, _) = decode(file).unwrap();
    assemble(header.kind, header.config, header.storage, payload).unwrap()
}

#[test]
fn mutated_payloads_with_valid_checksums_never_panic() {
    let device = Device::flex();
    for (file, seed) in [("dcgan.bin", 7), ("autoencoder.bin", 8), ("vae-2d.bin", 9)] {
        let original = bundled(file);
        let (_, payload) = decode(&original).unwrap();
        assert_no_panic(file, payload, seed, |mutated| {
            let crafted = with_payload(&original, mutated);
            let _ = load_generator(&crafted, ModelKind::Dcgan, &device);
            let _ = load_autoencoder(&crafted, &device);
            let _ = load_vae(&crafted, &device);
        });
    }
}

#[test]
fn mutated_manifest_never_panics() {
    let original = std::fs::read(root().join("web/weights/manifest.json")).unwrap();
    assert!(Manifest::parse(&original).is_ok(), "the bundled manifest itself is valid");
    assert_no_panic("manifest.json", &original, 4, |bytes| {
        let _ = Manifest::parse(bytes);
    });
}

#[test]
fn mutated_idx_files_never_panic() {
    let fixture = root().join("tests/fixtures/mnist");
    let gunzip = |name: &str| {
        let mut bytes = Vec::new();
        let file = std::fs::File::open(fixture.join(name)).unwrap();
        flate2::read::GzDecoder::new(file).read_to_end(&mut bytes).unwrap();
        bytes
    };
    let images = gunzip("t10k-images-idx3-ubyte.gz");
    let labels = gunzip("t10k-labels-idx1-ubyte.gz");

    assert_no_panic("images", &images, 5, |bytes| {
        let _ = parse_images("images", bytes);
    });
    assert_no_panic("labels", &labels, 6, |bytes| {
        let _ = parse_labels("labels", bytes);
    });
}
