// Browser tests of the Latent space part: VAE samples, the animated interpolation, the 2-D
// latent map with the digit under the pointer, and the drawing's marker, on both backends.
//
// Run with `make test` or `node --test tests/browser/` after `trunk build --release`. DIST_DIR
// serves another folder; see page.test.mjs for the other variables.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';

import {
  STATE_TIMEOUT_MS,
  compareGrids,
  launchBrowser,
  openPage,
  readPicture,
  standardDeviation,
  waitForState,
  waitUntil,
  withDiagnostics,
} from './lib/browser.mjs';
import { REPO_ROOT } from './lib/fixtures.mjs';
import { startStaticServer } from './lib/server.mjs';

const DIST_DIR = resolve(process.env.DIST_DIR ?? join(REPO_ROOT, 'dist'));

const TEST_TIMEOUT_MS = 4 * STATE_TIMEOUT_MS;

/** Cells per side of the latent map, and pixels per side of its pictures. */
const MAP_CELLS = 16;
const DIGIT_SIDE = 28;
const MAP_PIXELS = MAP_CELLS * DIGIT_SIDE;

/** Side of the 8×8 sample grid: 8 digits and 7 gaps of 2 pixels. */
const GRID_PIXELS = 8 * DIGIT_SIDE + 7 * 2;

/** Minimum standard deviation, in gray levels, of a picture that shows digits. */
const MIN_DEVIATION = 20;

/** Minimum mean difference, in gray levels, between the digits under two distant points. */
const MIN_PROBE_DIFFERENCE = 5;

/**
 * Limits on the difference between the digit under the center of a map cell and that cell, in
 * gray levels. Both decode the same latent, one alone and one in a batch of 256, so they differ
 * only by rounding, and by the pointer position landing up to a pixel off the cell's center.
 */
const MAX_CELL_MEAN_DIFFERENCE = 3;

let server;

before(async () => {
  if (!existsSync(join(DIST_DIR, 'index.html'))) {
    throw new Error(`${DIST_DIR}/index.html not found: run trunk build --release (make test does it) or set DIST_DIR`);
  }
  server = await startStaticServer(DIST_DIR);
});

after(async () => {
  await server?.close();
});

/** Opens the page with the given query string and waits until the shown part is ready. */
async function openReady(context, track, query) {
  const opened = track(await openPage(context, `${server.url}${query}`));
  const state = await waitForState(opened, ['ready', 'error']);
  assert.equal(state, 'ready', `page /${query} ended in data-state=${state}`);
  return opened;
}

/** Returns the gray levels of cell (column, row) of the map picture. */
function mapCell(gray, column, row) {
  const pixels = [];
  for (let y = 0; y < DIGIT_SIDE; y += 1) {
    for (let x = 0; x < DIGIT_SIDE; x += 1) {
      pixels.push(gray[(row * DIGIT_SIDE + y) * MAP_PIXELS + column * DIGIT_SIDE + x]);
    }
  }
  return pixels;
}

/**
 * Moves the mouse to a point of the map given as fractions of its size, waits until the digit
 * under it is decoded, and returns `{ latent, gray }`.
 */
async function hover(opened, x, y) {
  const before = await opened.page.locator('canvas#latent-probe').getAttribute('data-latent');
  // The mouse reaches only the visible part of the page, and the map sits below the fold.
  const map = opened.page.locator('canvas#latent-map');
  await map.scrollIntoViewIfNeeded();
  const box = await map.boundingBox();
  await opened.page.mouse.move(box.x + x * box.width, box.y + y * box.height);
  await waitUntil(opened, `the digit under (${x}, ${y}) is decoded`,
    (previous) => {
      const probe = document.querySelector('canvas#latent-probe');
      return probe?.dataset.state === 'ready' && probe.dataset.latent !== undefined && probe.dataset.latent !== previous;
    },
    before);
  const latent = await opened.page.locator('canvas#latent-probe').getAttribute('data-latent');
  const picture = await readPicture(opened.page, 'canvas#latent-probe', DIGIT_SIDE, DIGIT_SIDE);
  return { latent: latent.split(',').map(Number), gray: picture.gray };
}

/** Checks the samples, the interpolation, the map and the hover of a ready Latent space part. */
async function assertLatentSpace(opened) {
  const samples = await readPicture(opened.page, 'canvas#vae-samples', GRID_PIXELS, GRID_PIXELS);
  assert.ok(Number.isInteger(samples.zoom), `canvas#vae-samples is ${samples.size}, not a scaled ${GRID_PIXELS}-pixel grid`);
  assert.equal(samples.notGray, 0, 'canvas#vae-samples has pixels that are not opaque gray');
  assert.ok(standardDeviation(samples.gray) > MIN_DEVIATION, 'canvas#vae-samples is nearly uniform');

  const strip = await opened.page.evaluate(() => {
    const canvas = document.querySelector('canvas#interpolation-strip');
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    return { width: canvas.width, height: canvas.height, red: [...data.filter((_, i) => i % 4 === 0)] };
  });
  assert.deepEqual([strip.width, strip.height], [12 * 28 + 11 * 2, 2 * 28 + 2], 'canvas#interpolation-strip is not 2 rows of 12 frames');
  assert.ok(standardDeviation(strip.red) > MIN_DEVIATION, 'the interpolation frames are nearly uniform');

  const firstFrame = await opened.page.locator('canvas#interpolation').getAttribute('data-frame');
  await waitUntil(opened, 'the interpolation animates',
    (frame) => document.querySelector('canvas#interpolation')?.dataset.frame !== frame, firstFrame);
  await opened.page.locator('button#interpolation-play').click();
  const stopped = await opened.page.locator('canvas#interpolation').getAttribute('data-frame');
  await opened.page.waitForTimeout(400);
  assert.equal(await opened.page.locator('canvas#interpolation').getAttribute('data-frame'), stopped, 'Stop did not stop the animation');
  assert.equal(await opened.page.locator('button#interpolation-play').textContent(), 'Play');

  const map = await readPicture(opened.page, 'canvas#latent-map', MAP_PIXELS, MAP_PIXELS);
  assert.equal(map.zoom, 1, `canvas#latent-map is ${map.size}, expected ${MAP_PIXELS}×${MAP_PIXELS}`);
  assert.ok(standardDeviation(map.gray) > MIN_DEVIATION, 'canvas#latent-map is nearly uniform');

  // Hovering two distant points decodes two different digits.
  const low = await hover(opened, 0.1, 0.9);
  const high = await hover(opened, 0.9, 0.1);
  assert.ok(low.latent[0] < 0, `the bottom-left point decoded z = (${low.latent}), expected a negative first coordinate`);
  assert.ok(low.latent[1] < 0, `the bottom-left point decoded z = (${low.latent}), expected a negative second coordinate`);
  assert.ok(high.latent[0] > 0, `the top-right point decoded z = (${high.latent}), expected a positive first coordinate`);
  assert.ok(high.latent[1] > 0, `the top-right point decoded z = (${high.latent}), expected a positive second coordinate`);
  const difference = compareGrids(low.gray, high.gray).mean;
  assert.ok(difference > MIN_PROBE_DIFFERENCE,
    `the digits under two distant points differ by a mean of ${difference.toFixed(2)}, expected above ${MIN_PROBE_DIFFERENCE}`);

  // The center of a cell decodes the cell's own latent, so the probe matches the map there.
  for (const [column, row] of [[3, 12], [11, 4]]) {
    const probe = await hover(opened, (column + 0.5) / MAP_CELLS, (row + 0.5) / MAP_CELLS);
    const cell = mapCell(map.gray, column, row);
    const cellDifference = compareGrids(probe.gray, cell).mean;
    assert.ok(cellDifference <= MAX_CELL_MEAN_DIFFERENCE,
      `the digit under the center of cell (${column}, ${row}) differs from the cell by a mean of ${cellDifference.toFixed(2)}`);
  }
}

for (const backend of ['cpu', 'webgpu']) {
  test(`latent space works on ${backend}`, { timeout: TEST_TIMEOUT_MS }, async () => {
    const browser = await launchBrowser({ webgpu: backend === 'webgpu' });
    const firstRequest = server.requests.length;
    try {
      await withDiagnostics(async (track) => {
        const opened = await openReady(browser.context, track, `?tab=latent&seed=3&backend=${backend}`);
        assert.equal(await opened.page.locator('#backend').getAttribute('data-backend'), backend);
        await assertLatentSpace(opened);
        assert.deepEqual(opened.pageErrors, [], 'the page threw uncaught errors');

        const requested = server.requests.slice(firstRequest);
        for (const used of ['/weights/vae.bin', '/weights/vae-2d.bin']) {
          assert.ok(requested.includes(used), `the page never requested ${used}`);
        }
        for (const unused of ['/weights/dcgan.bin', '/weights/autoencoder.bin']) {
          assert.ok(!requested.includes(unused), `the Latent space tab requested ${unused}, which it does not use`);
        }
      });
    } finally {
      await browser.close();
    }
  });
}

test('seed reproduces the vae samples', { timeout: TEST_TIMEOUT_MS }, async () => {
  const browser = await launchBrowser({ webgpu: false });
  try {
    await withDiagnostics(async (track) => {
      const read = async (query) => {
        const opened = await openReady(browser.context, track, query);
        return (await readPicture(opened.page, 'canvas#vae-samples', GRID_PIXELS, GRID_PIXELS)).gray;
      };
      const first = await read('?tab=latent&seed=7');
      const again = await read('?tab=latent&seed=7');
      assert.equal(compareGrids(first, again).max, 0, 'two loads of ?seed=7 decoded different samples');

      const opened = await openReady(browser.context, track, '?tab=latent&seed=7');
      await opened.page.locator('button#latent-generate').click();
      await waitUntil(opened, 'New samples set a new seed and decoded it',
        () => new URL(location.href).searchParams.get('seed') !== '7' && document.body.dataset.state === 'ready');
      const renewed = (await readPicture(opened.page, 'canvas#vae-samples', GRID_PIXELS, GRID_PIXELS)).gray;
      const difference = compareGrids(first, renewed).mean;
      assert.ok(difference > 5, `New samples changed the grid by a mean of only ${difference.toFixed(2)}`);
    });
  } finally {
    await browser.close();
  }
});

test('test digit interpolation names both digits', { timeout: TEST_TIMEOUT_MS }, async () => {
  const browser = await launchBrowser({ webgpu: false });
  try {
    await withDiagnostics(async (track) => {
      const opened = await openReady(browser.context, track, '?tab=latent&seed=5&between=test-digits');
      assert.equal(await opened.page.locator('select#interpolation-ends').inputValue(), 'test-digits');
      assert.match(await opened.page.locator('#interpolation-caption').textContent(),
        /test digit #\d+ \(a \d\) to test digit #\d+ \(a \d\)/);

      await opened.page.locator('select#interpolation-ends').selectOption('samples');
      await waitUntil(opened, 'the interpolation between samples is decoded',
        () => /first sample/.test(document.querySelector('#interpolation-caption')?.textContent ?? '')
          && document.body.dataset.state === 'ready');
      assert.equal(new URL(opened.page.url()).searchParams.get('between'), 'samples');
    });
  } finally {
    await browser.close();
  }
});

test('drawing is marked on the map', { timeout: TEST_TIMEOUT_MS }, async () => {
  const browser = await launchBrowser({ webgpu: false });
  try {
    await withDiagnostics(async (track) => {
      const opened = await openReady(browser.context, track, '?tab=draw&test-digit=0');
      await waitUntil(opened, 'test digit 0 is reconstructed',
        () => document.querySelector('#reconstruction-error')?.dataset.value !== undefined);
      assert.equal(await opened.page.locator('#latent-marker').getAttribute('data-position'), null,
        'the map marked the drawing before the Latent space tab was shown');

      await opened.page.locator('button#tab-latent').click();
      assert.equal(new URL(opened.page.url()).searchParams.get('tab'), 'latent');
      await waitUntil(opened, 'the drawing is marked on the map',
        () => document.body.dataset.state === 'ready'
          && document.querySelector('#latent-marker')?.dataset.position !== undefined);

      const position = (await opened.page.locator('#latent-marker').getAttribute('data-position')).split(',').map(Number);
      for (const fraction of position) {
        assert.ok(fraction > 0, `the marker lies at (${position}), left of or above the map`);
        assert.ok(fraction < 1, `the marker lies at (${position}), right of or below the map`);
      }
      const red = await opened.page.evaluate(([x, y]) => {
        const canvas = document.querySelector('canvas#latent-map');
        const left = Math.round(x * canvas.width);
        const top = Math.round(y * canvas.height);
        const data = canvas.getContext('2d').getImageData(left - 20, top - 20, 41, 41).data;
        let count = 0;
        for (let i = 0; i < data.length; i += 4) {
          count += data[i] > 200 && data[i + 1] < 120 && data[i + 2] < 120 ? 1 : 0;
        }
        return count;
      }, position);
      assert.ok(red > 20, `the map shows ${red} red pixels around the marker, expected a cross`);

      // Clearing the drawing removes the marker.
      await opened.page.locator('button#tab-draw').click();
      await opened.page.locator('button#draw-clear').click();
      await opened.page.locator('button#tab-latent').click();
      await waitUntil(opened, 'the marker is gone',
        () => document.querySelector('#latent-marker')?.dataset.position === undefined);
    });
  } finally {
    await browser.close();
  }
});

test('tabs load their weights lazily', { timeout: TEST_TIMEOUT_MS }, async () => {
  const browser = await launchBrowser({ webgpu: false });
  const firstRequest = server.requests.length;
  try {
    await withDiagnostics(async (track) => {
      const opened = await openReady(browser.context, track, '?seed=2');
      let requested = server.requests.slice(firstRequest);
      assert.ok(requested.includes('/weights/dcgan.bin'), 'the Generate tab did not request dcgan.bin');
      for (const unused of ['/weights/autoencoder.bin', '/weights/vae.bin', '/weights/vae-2d.bin']) {
        assert.ok(!requested.includes(unused), `the Generate tab requested ${unused}`);
      }

      await opened.page.locator('button#tab-latent').click();
      assert.equal(await waitForState(opened, ['ready', 'error']), 'ready');
      requested = server.requests.slice(firstRequest);
      assert.ok(requested.includes('/weights/vae.bin'), 'the Latent space tab did not request vae.bin');
      assert.ok(!requested.includes('/weights/autoencoder.bin'), 'the Latent space tab requested autoencoder.bin');

      // Back on Generate, the grid is still there and nothing reloads.
      const count = server.requests.length;
      await opened.page.locator('button#tab-generate').click();
      assert.equal(await waitForState(opened, ['ready', 'error']), 'ready');
      assert.deepEqual(server.requests.slice(count), [], 'returning to Generate fetched files again');
      assert.equal(await opened.page.locator('section#generate-part').getAttribute('data-state'), 'ready');
    });
  } finally {
    await browser.close();
  }
});

test('missing vae weights show retry', { timeout: TEST_TIMEOUT_MS }, async () => {
  const path = '/weights/vae-2d.bin';
  const browser = await launchBrowser({ webgpu: false });
  server.failPath(path);
  try {
    await withDiagnostics(async (track) => {
      const opened = track(await openPage(browser.context, `${server.url}?tab=latent`));
      assert.equal(await waitForState(opened, ['ready', 'error']), 'error');
      assert.match(await opened.page.locator('#latent-error').textContent(), /vae-2d\.bin/);

      server.restorePath(path);
      await opened.page.locator('button#latent-retry').click();
      await opened.page.waitForFunction(() => document.body.dataset.state !== 'error', null,
        { timeout: STATE_TIMEOUT_MS, polling: 100 });
      assert.equal(await waitForState(opened, ['ready', 'error']), 'ready', 'retry did not recover');
      const map = await readPicture(opened.page, 'canvas#latent-map', MAP_PIXELS, MAP_PIXELS);
      assert.ok(standardDeviation(map.gray) > MIN_DEVIATION, 'canvas#latent-map is nearly uniform after Retry');
    });
  } finally {
    server.restorePath(path);
    await browser.close();
  }
});
