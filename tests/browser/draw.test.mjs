// Browser tests of the Draw part: strokes drawn with pointer events, Clear, Undo, the bundled
// test digits and the autoencoder's reconstruction against the native reference.
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
import { REPO_ROOT, readBundledDigits, readReference } from './lib/fixtures.mjs';
import { startStaticServer } from './lib/server.mjs';

const DIST_DIR = resolve(process.env.DIST_DIR ?? join(REPO_ROOT, 'dist'));
const WEIGHTS_PATH = '/weights/autoencoder.bin';
const DIGITS_PATH = '/assets/test-digits-images-idx3-ubyte.gz';

const TEST_TIMEOUT_MS = 4 * STATE_TIMEOUT_MS;

/** Minimum standard deviation, in gray levels, of a 28×28 picture that shows a digit. */
const MIN_DIGIT_DEVIATION = 20;

/**
 * Limits on the difference between the page's reconstruction of a bundled test digit and the
 * native burn-flex reference, in gray levels of 255 (`mean`, `max`) and in the reconstruction
 * error (`error`, mean squared error per pixel). Measured with the autoencoder.bin of December 5
 * on this suite's headless Chromium, both backends drew every gray level exactly as the reference
 * (mean 0, max 0). The errors differed by at most 7e-9, which is float rounding in a sum of 784
 * terms. The limits leave room for a pixel that lands next to a gray-level boundary and rounds
 * the other way, more so on WebGPU, which sums in its own order.
 */
const REFERENCE_TOLERANCE = {
  cpu: { mean: 0.05, max: 1, error: 1e-6 },
  webgpu: { mean: 0.1, max: 2, error: 1e-6 },
};

/** A 7 and a bar across it, as fractions of the canvas from its top-left corner. */
const SEVEN = [[0.25, 0.2], [0.75, 0.2], [0.45, 0.85]];
const BAR = [[0.35, 0.52], [0.68, 0.52]];

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

/** Draws one stroke through `points` (fractions of the drawing canvas) with the mouse. */
async function drawStroke(page, points) {
  const box = await page.locator('canvas#draw-canvas').boundingBox();
  const at = ([x, y]) => [box.x + x * box.width, box.y + y * box.height];
  await page.mouse.move(...at(points[0]));
  await page.mouse.down();
  for (const point of points.slice(1)) {
    await page.mouse.move(...at(point), { steps: 8 });
  }
  await page.mouse.up();
}

/** Waits until the drawing has `strokes` strokes and the Draw part has caught up with it. */
async function waitForDrawing(opened, strokes) {
  await waitUntil(
    opened,
    `the drawing has ${strokes} strokes and section#draw is ready`,
    (count) => document.querySelector('canvas#draw-canvas')?.dataset.strokes === String(count)
      && document.getElementById('draw')?.dataset.state === 'ready',
    strokes,
  );
}

/** Returns the shown input, reconstruction and error text. */
async function readDraw(page) {
  const input = await readPicture(page, 'canvas#draw-input', 28, 28);
  const reconstruction = await readPicture(page, 'canvas#draw-reconstruction', 28, 28);
  const error = page.locator('#reconstruction-error');
  return {
    input: input.gray,
    inputZoom: input.zoom,
    reconstruction: reconstruction.gray,
    reconstructionZoom: reconstruction.zoom,
    errorText: (await error.textContent()).trim(),
    errorValue: await error.getAttribute('data-value'),
  };
}

function assertEmpty(shown, when) {
  assert.equal(shown.errorText, '', `${when}: #reconstruction-error shows "${shown.errorText}"`);
  assert.equal(shown.errorValue, null, `${when}: #reconstruction-error has data-value ${shown.errorValue}`);
  assert.equal(standardDeviation(shown.reconstruction), 0, `${when}: canvas#draw-reconstruction is not blank`);
  assert.equal(standardDeviation(shown.input), 0, `${when}: canvas#draw-input is not blank`);
}

function assertReconstructed(shown, when) {
  assert.ok(Number.isInteger(shown.reconstructionZoom), `${when}: canvas#draw-reconstruction is not a scaled 28×28 picture`);
  const inputDeviation = standardDeviation(shown.input);
  assert.ok(inputDeviation > MIN_DIGIT_DEVIATION,
    `${when}: the model input has a standard deviation of ${inputDeviation.toFixed(2)}, expected above ${MIN_DIGIT_DEVIATION}`);
  const deviation = standardDeviation(shown.reconstruction);
  assert.ok(deviation > MIN_DIGIT_DEVIATION,
    `${when}: the reconstruction has a standard deviation of ${deviation.toFixed(2)}, expected above ${MIN_DIGIT_DEVIATION}`);
  assert.match(shown.errorText, /^\d+\.\d{4}$/, `${when}: #reconstruction-error shows "${shown.errorText}"`);
  assert.ok(Number.isFinite(Number(shown.errorValue)), `${when}: data-value ${shown.errorValue} is not a finite number`);
}

test('strokes, undo and clear update the reconstruction', { timeout: TEST_TIMEOUT_MS }, async () => {
  const browser = await launchBrowser({ webgpu: false });
  const firstRequest = server.requests.length;
  try {
    await withDiagnostics(async (track) => {
      const opened = await openReady(browser.context, track, '?tab=draw');
      assertEmpty(await readDraw(opened.page), 'before drawing');

      await drawStroke(opened.page, SEVEN);
      await waitForDrawing(opened, 1);
      const seven = await readDraw(opened.page);
      assertReconstructed(seven, 'after one stroke');

      await drawStroke(opened.page, BAR);
      await waitForDrawing(opened, 2);
      const crossed = await readDraw(opened.page);
      assertReconstructed(crossed, 'after two strokes');
      const change = compareGrids(seven.input, crossed.input).mean;
      assert.ok(change > 1, `the second stroke changed the model input by a mean of only ${change.toFixed(2)}`);

      await opened.page.locator('button#draw-undo').click();
      await waitForDrawing(opened, 1);
      const undone = await readDraw(opened.page);
      assert.equal(compareGrids(seven.input, undone.input).max, 0, 'Undo did not restore the model input of one stroke');
      assert.equal(compareGrids(seven.reconstruction, undone.reconstruction).max, 0,
        'Undo did not restore the reconstruction of one stroke');
      assert.equal(undone.errorText, seven.errorText);

      await opened.page.locator('button#draw-clear').click();
      await waitForDrawing(opened, 0);
      assertEmpty(await readDraw(opened.page), 'after Clear');
      assert.deepEqual(opened.pageErrors, [], 'the page threw uncaught errors');

      const requested = server.requests.slice(firstRequest);
      assert.ok(requested.includes(WEIGHTS_PATH), `the page never requested ${WEIGHTS_PATH}`);
      for (const other of ['/weights/dcgan.bin', '/weights/vae.bin', '/weights/vae-2d.bin']) {
        assert.ok(!requested.includes(other), `the Draw tab requested ${other}, which it does not use`);
      }
    });
  } finally {
    await browser.close();
  }
});

test('pen pointer events draw a stroke', { timeout: TEST_TIMEOUT_MS }, async () => {
  const browser = await launchBrowser({ webgpu: false });
  try {
    await withDiagnostics(async (track) => {
      const opened = await openReady(browser.context, track, '?tab=draw');

      // Synthetic pen events: setPointerCapture fails for a pointer the browser does not know,
      // which the page must survive.
      await opened.page.evaluate(() => {
        const canvas = document.querySelector('canvas#draw-canvas');
        const box = canvas.getBoundingClientRect();
        const send = (type, x, y) => canvas.dispatchEvent(new PointerEvent(type, {
          bubbles: true,
          pointerId: 7,
          pointerType: 'pen',
          isPrimary: true,
          button: type === 'pointermove' ? -1 : 0,
          buttons: type === 'pointerup' ? 0 : 1,
          clientX: box.left + x * box.width,
          clientY: box.top + y * box.height,
        }));
        send('pointerdown', 0.5, 0.15);
        for (let step = 1; step <= 20; step += 1) {
          send('pointermove', 0.5, 0.15 + step * 0.035);
        }
        send('pointerup', 0.5, 0.85);
      });
      await waitForDrawing(opened, 1);
      assertReconstructed(await readDraw(opened.page), 'after a pen stroke');
      assert.deepEqual(opened.pageErrors, [], 'the page threw uncaught errors');
    });
  } finally {
    await browser.close();
  }
});

for (const backend of ['cpu', 'webgpu']) {
  test(`test digits match the native reference on ${backend}`, { timeout: TEST_TIMEOUT_MS }, async () => {
    const reference = await readReference(DIST_DIR);
    const digits = await readBundledDigits();
    const tolerance = REFERENCE_TOLERANCE[backend];
    const browser = await launchBrowser({ webgpu: backend === 'webgpu' });
    try {
      await withDiagnostics(async (track) => {
        for (const expected of reference.digits) {
          const query = `?tab=draw&backend=${backend}&test-digit=${expected.index}`;
          const opened = await openReady(browser.context, track, query);
          await waitUntil(opened, `test digit ${expected.index} is loaded and reconstructed`,
            (index) => document.querySelector('#test-digit')?.dataset.index === String(index)
              && document.getElementById('draw')?.dataset.state === 'ready'
              && document.querySelector('#reconstruction-error')?.dataset.value !== undefined,
            expected.index);
          assert.equal(await opened.page.locator('#backend').getAttribute('data-backend'), backend);
          assert.match(await opened.page.locator('#test-digit').textContent(), new RegExp(`#${expected.index} \\(a ${expected.label}\\)`));

          const shown = await readDraw(opened.page);
          assert.equal(compareGrids(shown.input, digits.images[expected.index]).max, 0,
            `the model input of test digit ${expected.index} is not the digit itself`);

          const wanted = expected.reconstruction.map((value) => Math.round(Math.min(Math.max(value, 0), 1) * 255));
          const difference = compareGrids(shown.reconstruction, wanted);
          console.log(`test digit ${expected.index} on ${backend}: mean ${difference.mean.toFixed(3)}, max ${difference.max} gray levels, `
            + `error ${shown.errorValue} vs ${expected.error}`);
          assert.ok(difference.mean <= tolerance.mean,
            `test digit ${expected.index}: mean difference ${difference.mean.toFixed(3)} above ${tolerance.mean}`);
          assert.ok(difference.max <= tolerance.max,
            `test digit ${expected.index}: max difference ${difference.max} above ${tolerance.max}`);
          const errorDifference = Math.abs(Number(shown.errorValue) - expected.error);
          assert.ok(errorDifference <= tolerance.error,
            `test digit ${expected.index}: error ${shown.errorValue} differs from ${expected.error} by ${errorDifference}`);
          await opened.page.close();
        }
      });
    } finally {
      await browser.close();
    }
  });
}

test('backend select reloads the autoencoder', { timeout: TEST_TIMEOUT_MS }, async () => {
  const browser = await launchBrowser({ webgpu: true });
  try {
    await withDiagnostics(async (track) => {
      const opened = await openReady(browser.context, track, '?tab=draw&test-digit=0&backend=webgpu');
      await waitUntil(opened, 'test digit 0 is reconstructed',
        () => document.querySelector('#reconstruction-error')?.dataset.value !== undefined);
      assert.equal(await opened.page.locator('#backend').getAttribute('data-backend'), 'webgpu');
      const onGpu = await readDraw(opened.page);

      await opened.page.locator('select#backend-select').selectOption('cpu');
      await waitUntil(opened, 'the Draw part runs on the CPU',
        () => document.querySelector('#backend')?.dataset.backend === 'cpu'
          && document.getElementById('draw')?.dataset.state === 'ready');
      assert.equal(new URL(opened.page.url()).searchParams.get('backend'), 'cpu');
      const onCpu = await readDraw(opened.page);
      assertReconstructed(onCpu, 'after switching to the CPU');
      const difference = compareGrids(onGpu.reconstruction, onCpu.reconstruction);
      assert.ok(difference.max <= REFERENCE_TOLERANCE.webgpu.max,
        `the CPU and WebGPU reconstructions differ by up to ${difference.max} gray levels`);
    });
  } finally {
    await browser.close();
  }
});

test('random test digit loads a digit', { timeout: TEST_TIMEOUT_MS }, async () => {
  const digits = await readBundledDigits();
  const browser = await launchBrowser({ webgpu: false });
  try {
    await withDiagnostics(async (track) => {
      const opened = await openReady(browser.context, track, '?tab=draw');
      await opened.page.locator('button#draw-random').click();
      await waitUntil(opened, 'a test digit is loaded and reconstructed',
        () => document.querySelector('#test-digit')?.dataset.index !== undefined
          && document.getElementById('draw')?.dataset.state === 'ready'
          && document.querySelector('#reconstruction-error')?.dataset.value !== undefined);

      const index = Number(await opened.page.locator('#test-digit').getAttribute('data-index'));
      assert.ok(Number.isInteger(index), `data-index ${index} is not a whole number`);
      assert.ok(index >= 0, `data-index ${index} is negative`);
      assert.ok(index < digits.labels.length, `data-index ${index} is past the ${digits.labels.length} bundled digits`);
      assert.equal(new URL(opened.page.url()).searchParams.get('test-digit'), String(index));
      const shown = await readDraw(opened.page);
      assertReconstructed(shown, `test digit ${index}`);
      assert.equal(compareGrids(shown.input, digits.images[index]).max, 0, 'the model input is not the test digit');

      // A stroke on top goes through the canvas and the preprocessing instead.
      await drawStroke(opened.page, BAR);
      await waitForDrawing(opened, 1);
      assertReconstructed(await readDraw(opened.page), 'a stroke over the test digit');

      await opened.page.locator('button#draw-clear').click();
      await waitUntil(opened, 'Clear removed the test digit',
        () => document.querySelector('#test-digit')?.dataset.index === undefined
          && document.getElementById('draw')?.dataset.state === 'ready');
      assertEmpty(await readDraw(opened.page), 'after Clear');
    });
  } finally {
    await browser.close();
  }
});

test('invalid test digit shows a notice', { timeout: TEST_TIMEOUT_MS }, async () => {
  const browser = await launchBrowser({ webgpu: false });
  try {
    await withDiagnostics(async (track) => {
      for (const value of ['abc', '100']) {
        const opened = await openReady(browser.context, track, `?tab=draw&test-digit=${value}`);
        await waitUntil(opened, '#draw-notice names the value', () => document.querySelector('#draw-notice')?.textContent !== '');
        assert.match(await opened.page.locator('#draw-notice').textContent(), new RegExp(value));
        assertEmpty(await readDraw(opened.page), `?test-digit=${value}`);
        await opened.page.close();
      }
    });
  } finally {
    await browser.close();
  }
});

test('missing autoencoder weights show retry', { timeout: TEST_TIMEOUT_MS }, async () => {
  const browser = await launchBrowser({ webgpu: false });
  server.failPath(WEIGHTS_PATH);
  try {
    await withDiagnostics(async (track) => {
      const opened = track(await openPage(browser.context, `${server.url}?tab=draw`));
      assert.equal(await waitForState(opened, ['ready', 'error']), 'error');
      assert.match(await opened.page.locator('#draw-error').textContent(), /autoencoder\.bin/);

      server.restorePath(WEIGHTS_PATH);
      await opened.page.locator('button#draw-retry').click();
      await opened.page.waitForFunction(() => document.body.dataset.state !== 'error', null,
        { timeout: STATE_TIMEOUT_MS, polling: 100 });
      assert.equal(await waitForState(opened, ['ready', 'error']), 'ready', 'retry did not recover');

      await drawStroke(opened.page, SEVEN);
      await waitForDrawing(opened, 1);
      assertReconstructed(await readDraw(opened.page), 'after Retry');
    });
  } finally {
    server.restorePath(WEIGHTS_PATH);
    await browser.close();
  }
});

test('missing test digits fail a test digit url', { timeout: TEST_TIMEOUT_MS }, async () => {
  const browser = await launchBrowser({ webgpu: false });
  try {
    server.failPath(DIGITS_PATH);
    await withDiagnostics(async (track) => {
      const opened = track(await openPage(browser.context, `${server.url}?tab=draw&test-digit=3`));
      assert.equal(await waitForState(opened, ['ready', 'error']), 'error');
      assert.match(await opened.page.locator('#draw-error').textContent(), /test-digits-images-idx3-ubyte\.gz/);

      server.restorePath(DIGITS_PATH);
      await opened.page.locator('button#draw-retry').click();
      await waitUntil(opened, 'Retry loaded test digit 3',
        () => document.querySelector('#test-digit')?.dataset.index === '3'
          && document.getElementById('draw')?.dataset.state === 'ready');
    });
  } finally {
    server.restorePath(DIGITS_PATH);
    await browser.close();
  }
});

test('missing test digits show retry', { timeout: TEST_TIMEOUT_MS }, async () => {
  const browser = await launchBrowser({ webgpu: false });
  try {
    await withDiagnostics(async (track) => {
      const opened = await openReady(browser.context, track, '?tab=draw');
      server.failPath(DIGITS_PATH);
      await opened.page.locator('button#draw-random').click();
      assert.equal(await waitForState(opened, ['error']), 'error');
      assert.match(await opened.page.locator('#draw-error').textContent(), /test-digits-images-idx3-ubyte\.gz/);

      server.restorePath(DIGITS_PATH);
      await opened.page.locator('button#draw-retry').click();
      await waitUntil(opened, 'Retry loaded a test digit',
        () => document.querySelector('#test-digit')?.dataset.index !== undefined
          && document.getElementById('draw')?.dataset.state === 'ready'
          && document.querySelector('#reconstruction-error')?.dataset.value !== undefined);
      assertReconstructed(await readDraw(opened.page), 'after Retry');
    });
  } finally {
    server.restorePath(DIGITS_PATH);
    await browser.close();
  }
});
