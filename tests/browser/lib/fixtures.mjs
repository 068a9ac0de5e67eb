// Reference data for the browser tests: the bundled test digits and the native autoencoder
// reconstructions in tests/fixtures/autoencoder-reference.json.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

/** The repository root. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Pixels of one MNIST digit. */
export const DIGIT_PIXELS = 28 * 28;

/** The reference reconstructions, written by tests/tests/autoencoder_reference.rs. */
export const REFERENCE_PATH = join(REPO_ROOT, 'tests/fixtures/autoencoder-reference.json');

/**
 * Reads the page's bundled test digits from web/assets and returns `{ images, labels }`:
 * `images[i]` is an array of 784 gray levels, `labels[i]` the digit it shows.
 */
export async function readBundledDigits() {
  const images = gunzipSync(await readFile(join(REPO_ROOT, 'web/assets/test-digits-images-idx3-ubyte.gz')));
  const labels = gunzipSync(await readFile(join(REPO_ROOT, 'web/assets/test-digits-labels-idx1-ubyte.gz')));
  const count = labels.readUInt32BE(4);
  if (images.readUInt32BE(4) !== count || images.length !== 16 + count * DIGIT_PIXELS) {
    throw new Error('web/assets holds images and labels of different counts; run sh web/make-test-digits.sh');
  }
  return {
    images: Array.from({ length: count }, (_, i) => [...images.subarray(16 + i * DIGIT_PIXELS, 16 + (i + 1) * DIGIT_PIXELS)]),
    labels: [...labels.subarray(8, 8 + count)],
  };
}

/**
 * Reads the reference reconstructions and checks that they were made from the autoencoder
 * weights in `distDir`. Returns the parsed fixture.
 */
export async function readReference(distDir) {
  const reference = JSON.parse(await readFile(REFERENCE_PATH, 'utf8'));
  const weights = await readFile(join(distDir, 'weights/autoencoder.bin'));
  const digest = createHash('sha256').update(weights).digest('hex');
  if (digest !== reference.weights_sha256) {
    throw new Error(
      `${REFERENCE_PATH} was made from other weights than ${distDir}/weights/autoencoder.bin (SHA-256 ${digest}); `
        + 'rebuild dist/ from web/weights, or regenerate the fixture with '
        + 'UPDATE_FIXTURES=1 cargo test --release -p integration-tests --test autoencoder_reference',
    );
  }
  return reference;
}

