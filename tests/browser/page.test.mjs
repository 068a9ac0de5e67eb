// Browser tests of the digit generator page built by Trunk into dist/.
//
// Run with `make test` (which builds dist/ first) or `node --test tests/browser/` after
// `trunk build --release`. DIST_DIR serves another folder, CHROMIUM_PATH picks the browser and
// BROWSER_TEST_TIMEOUT_MS sets the wait for each page state.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  GRID_PIXELS,
  GRID_SIDE,
  STATE_TIMEOUT_MS,
  compareGrids,
  isGap,
  launchBrowser,
  openPage,
  readGrid,
  seedOf,
  standardDeviation,
  tilePixels,
  waitForState,
  waitUntil,
  withDiagnostics,
} from './lib/browser.mjs';
import { startStaticServer } from './lib/server.mjs';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DIST_DIR = resolve(process.env.DIST_DIR ?? join(REPO_ROOT, 'dist'));
const WEIGHTS_PATH = '/weights/dcgan.bin';

/** Every test opens pages and waits on them, several times on slow software WebGPU. */
const TEST_TIMEOUT_MS = 4 * STATE_TIMEOUT_MS;

/** Minimum standard deviation of all digit pixels, in gray levels, for a grid of digits. */
const MIN_GRID_DEVIATION = 20;

/** Minimum standard deviation of each digit's pixels, so that no digit is left blank. */
const MIN_DIGIT_DEVIATION = 2;

/**
 * Limits on the difference between WebGPU and CPU grids of one seed, in gray levels of 255. The
 * two backends round floating point differently, so grids are close but not equal.
 */
const MAX_BACKEND_MEAN_DIFFERENCE = 3;
const MAX_BACKEND_PIXEL_DIFFERENCE = 64;

/** Minimum mean difference, in gray levels, between the grids of two different seeds. */
const MIN_NEW_GRID_DIFFERENCE = 5;

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

/** Opens the page with the given query string and waits until it is ready. */
async function openReady(context, track, query) {
  const opened = track(await openPage(context, `${server.url}${query}`));
  const state = await waitForState(opened, ['ready', 'error']);
  assert.equal(state, 'ready', `page /${query} ended in data-state=${state}`);
  return opened;
}

/** Waits until `condition()`, evaluated in this process, is true. Fails with `failure` after a minute. */
async function pollUntil(condition, failure) {
  const deadline = Date.now() + 60_000;
  while (!condition()) {
    assert.ok(Date.now() < deadline, failure);
    await new Promise((resolveWait) => setTimeout(resolveWait, 50));
  }
}

async function backendOf(page) {
  return page.locator('#backend').getAttribute('data-backend');
}

/** Checks that the canvas contains an 8×8 grid of drawn, grayscale digits and returns its pixels. */
async function assertDigitGrid(page) {
  const grid = await readGrid(page);
  assert.equal(grid.width, grid.height, `canvas#grid is ${grid.width}×${grid.height}, expected a square`);
  assert.ok(Number.isInteger(grid.zoom),
    `canvas#grid is ${grid.width}×${grid.height}, expected a whole multiple of ${GRID_PIXELS}×${GRID_PIXELS}`);
  assert.ok(grid.zoom >= 1, `canvas#grid is ${grid.width}×${grid.height}, smaller than ${GRID_PIXELS}×${GRID_PIXELS}`);
  assert.equal(grid.notGray, 0, 'canvas#grid has pixels that are not opaque gray');

  const digitPixels = [];
  const gapPixels = [];
  for (let y = 0; y < GRID_PIXELS; y += 1) {
    for (let x = 0; x < GRID_PIXELS; x += 1) {
      const value = grid.gray[y * GRID_PIXELS + x];
      (isGap(x) || isGap(y) ? gapPixels : digitPixels).push(value);
    }
  }
  const gridDeviation = standardDeviation(digitPixels);
  assert.ok(gridDeviation > MIN_GRID_DEVIATION,
    `digit pixels have a standard deviation of ${gridDeviation.toFixed(2)}, expected above ${MIN_GRID_DEVIATION}`);
  assert.equal(new Set(gapPixels).size, 1, 'the 2-pixel gaps between digits are not one uniform color');

  const blank = [];
  for (let tile = 0; tile < GRID_SIDE * GRID_SIDE; tile += 1) {
    if (standardDeviation(tilePixels(grid.gray, tile)) <= MIN_DIGIT_DEVIATION) {
      blank.push(tile);
    }
  }
  assert.deepEqual(blank, [], `digits ${blank.join(', ')} are blank (standard deviation ≤ ${MIN_DIGIT_DEVIATION})`);
  return grid.gray;
}

test('cpu fallback draws a grid', { timeout: TEST_TIMEOUT_MS }, async () => {
  const browser = await launchBrowser({ webgpu: false });
  try {
    await withDiagnostics(async (track) => {
      const opened = await openReady(browser.context, track, '');
      assert.equal(await backendOf(opened.page), 'cpu');
      assert.notEqual((await opened.page.locator('#backend').textContent()).trim(), '', '#backend has no label');
      assert.match(await opened.page.locator('#timing').textContent(), /\d+(\.\d+)?\s*ms/);
      assert.match(seedOf(opened.page.url()) ?? '', /^\d+$/, 'the URL has no ?seed= after the first grid');
      await assertDigitGrid(opened.page);
      assert.deepEqual(opened.pageErrors, [], 'the page threw uncaught errors');
    });
  } finally {
    await browser.close();
  }
});

test('first view fetches each file once', { timeout: TEST_TIMEOUT_MS }, async () => {
  const browser = await launchBrowser({ webgpu: false });
  try {
    const fetched = new Map();
    browser.context.on('request', (request) => {
      const path = new URL(request.url()).pathname;
      fetched.set(path, (fetched.get(path) ?? 0) + 1);
    });
    let workers = 0;
    let icon = null;
    await withDiagnostics(async (track) => {
      const opened = await openReady(browser.context, track, '');
      workers = opened.page.workers().length;
      icon = await opened.page.evaluate(() => document.querySelector('link[rel~="icon"]')?.getAttribute('href') ?? null);
    });

    // Each worker loads its script and the small JavaScript glue of its build itself; the
    // server forbids caching, so those come once per worker. The wasm file is fetched once.
    const perWorker = ['/worker.js', '/cpu-worker.js'];
    const allowed = (path) => (perWorker.includes(path) ? workers : 1);
    const repeated = [...fetched].filter(([path, count]) => count > allowed(path)).map(([path, count]) => `${path} ×${count}`);
    assert.deepEqual(repeated, [], `the first view fetched files more than once: ${repeated.join(', ')}`);
    assert.ok(fetched.has('/weights/manifest.json'), 'the first view did not fetch weights/manifest.json');
    // Without an icon of its own, a browser requests /favicon.ico from the host, a 404 on most
    // static hosts. An inline icon costs no request.
    assert.ok(icon?.startsWith('data:image/svg+xml,'), `the page declares no inline icon: ${icon}`);
    assert.ok(!fetched.has('/favicon.ico'), 'the browser requested /favicon.ico');
  } finally {
    await browser.close();
  }
});

test('browser without wasm simd gets a message', { timeout: TEST_TIMEOUT_MS }, async () => {
  const browser = await launchBrowser({ webgpu: false });
  try {
    // Stands in for a browser whose WebAssembly lacks SIMD: the probe does not validate and the
    // page's wasm file does not compile, so the app never starts.
    await browser.context.addInitScript(() => {
      const reject = () => Promise.reject(new WebAssembly.CompileError('no SIMD in this stand-in browser'));
      WebAssembly.validate = () => false;
      WebAssembly.compile = reject;
      WebAssembly.compileStreaming = reject;
      WebAssembly.instantiate = reject;
      WebAssembly.instantiateStreaming = reject;
    });
    await withDiagnostics(async (track) => {
      const opened = track(await openPage(browser.context, server.url));
      const state = await waitForState(opened, ['ready', 'error']);

      assert.equal(state, 'error');
      assert.match(await opened.page.locator('body').textContent(), /lacks WebAssembly SIMD/);
    });
  } finally {
    await browser.close();
  }
});

test('page moves to webgpu after the first grid', { timeout: TEST_TIMEOUT_MS }, async () => {
  const browser = await launchBrowser({ webgpu: true });
  try {
    await withDiagnostics(async (track) => {
      const opened = await openReady(browser.context, track, '');
      await waitUntil(opened, 'the page runs on WebGPU', () => document.querySelector('#backend')?.dataset.backend === 'webgpu');

      await opened.page.locator('button#generate').click();
      assert.equal(await waitForState(opened, ['ready', 'error']), 'ready', 'generating on WebGPU failed');
      assert.equal(await backendOf(opened.page), 'webgpu');
      assert.match(await opened.page.locator('#timing').textContent(), /\d+(\.\d+)?\s*ms/);
      await assertDigitGrid(opened.page);
      assert.equal((await opened.page.locator('#notice').textContent()).trim(), '', 'a notice appeared');
      assert.deepEqual(opened.pageErrors, [], 'the page threw uncaught errors');
    });
  } finally {
    await browser.close();
  }
});

test('picking cpu cancels the move to webgpu', { timeout: TEST_TIMEOUT_MS }, async () => {
  const browser = await launchBrowser({ webgpu: true });
  const gpuBuild = '/gpu-worker_bg.wasm';
  try {
    server.holdPath(gpuBuild);
    const failed = [];
    browser.context.on('requestfailed', (request) => failed.push(new URL(request.url()).pathname));
    await withDiagnostics(async (track) => {
      const opened = await openReady(browser.context, track, '');
      await pollUntil(() => server.requests.includes(gpuBuild), `the page never requested ${gpuBuild}`);

      await opened.page.locator('select#backend-select').selectOption('cpu');
      await pollUntil(() => failed.includes(gpuBuild), `picking the CPU did not cancel ${gpuBuild}`);
      server.restorePath(gpuBuild);

      await opened.page.locator('button#generate').click();
      assert.equal(await waitForState(opened, ['ready', 'error']), 'ready');
      assert.equal(await backendOf(opened.page), 'cpu');
      assert.equal((await opened.page.locator('#notice').textContent()).trim(), '', 'the cancelled download left a notice');
    });
  } finally {
    server.restorePath(gpuBuild);
    await browser.close();
  }
});

test('cpu work runs in workers without the webgpu build', { timeout: TEST_TIMEOUT_MS }, async () => {
  const browser = await launchBrowser({ webgpu: false });
  try {
    const fetched = [];
    browser.context.on('request', (request) => fetched.push(new URL(request.url()).pathname));
    await withDiagnostics(async (track) => {
      const opened = await openReady(browser.context, track, '');
      const cores = await opened.page.evaluate(() => navigator.hardwareConcurrency);
      const workers = opened.page.workers().map((worker) => new URL(worker.url()).search);
      assert.deepEqual(workers, Array(Math.min(Math.max(cores, 1), 4)).fill('?build=cpu-worker'));
      await waitUntil(opened, 'the notice says why WebGPU is unused', () => /WebGPU/.test(document.querySelector('#notice')?.textContent ?? ''));
    });

    assert.ok(fetched.includes('/cpu-worker_bg.wasm'), `the page did not fetch the CPU worker: ${fetched.join(', ')}`);
    const gpuFiles = fetched.filter((path) => path.startsWith('/gpu-worker'));
    assert.deepEqual(gpuFiles, [], 'a browser without a WebGPU adapter fetched the WebGPU worker');
  } finally {
    await browser.close();
  }
});

for (const workerPath of ['/cpu-worker_bg.wasm', '/worker.js']) {
  test(`missing ${workerPath.slice(1)} shows retry`, { timeout: TEST_TIMEOUT_MS }, async () => {
    const browser = await launchBrowser({ webgpu: false });
    try {
      server.failPath(workerPath);
      await withDiagnostics(async (track) => {
        const opened = track(await openPage(browser.context, `${server.url}?seed=2`));
        assert.equal(await waitForState(opened, ['ready', 'error']), 'error');
        assert.match(await opened.page.locator('#error').textContent(), new RegExp(workerPath.slice(1).replace('.', '\\.')));
        assert.doesNotMatch(await opened.page.locator('#backend').textContent(), /starting/, 'the header still says starting after the failure');

        server.restorePath(workerPath);
        await opened.page.locator('button#retry').click();
        assert.equal(await waitForState(opened, ['ready', 'error']), 'ready', 'retry did not recover');
        await assertDigitGrid(opened.page);
      });
    } finally {
      server.restorePath(workerPath);
      await browser.close();
    }
  });
}

test('missing page bundle names the file', { timeout: TEST_TIMEOUT_MS }, async () => {
  const names = await readdir(DIST_DIR);
  const bundle = [/^web-[0-9a-f]+_bg\.wasm$/, /^web-[0-9a-f]+\.js$/].map((pattern) => names.find((name) => pattern.test(name)));
  for (const name of bundle) {
    assert.ok(name, `dist/ has no page bundle file among ${names.join(', ')}`);
    const browser = await launchBrowser({ webgpu: false });
    try {
      server.failPath(`/${name}`);
      await withDiagnostics(async (track) => {
        const opened = track(await openPage(browser.context, `${server.url}?seed=2`));
        assert.equal(await waitForState(opened, ['ready', 'error']), 'error', `the page started without ${name}`);
        const text = await opened.page.locator('body').textContent();
        assert.match(text, /could not start/);
        assert.ok(text.includes(name), `the message does not name ${name}: ${text}`);
      });
    } finally {
      server.restorePath(`/${name}`);
      await browser.close();
    }
  }
});

test('seed matches across backends', { timeout: TEST_TIMEOUT_MS }, async () => {
  const browser = await launchBrowser({ webgpu: true });
  try {
    await withDiagnostics(async (track) => {
      const onGpu = await openReady(browser.context, track, '?seed=42&backend=webgpu');
      assert.equal(await backendOf(onGpu.page), 'webgpu');
      assert.equal(seedOf(onGpu.page.url()), '42');
      const gpuGrid = await assertDigitGrid(onGpu.page);

      const onCpu = await openReady(browser.context, track, '?seed=42&backend=cpu');
      assert.equal(await backendOf(onCpu.page), 'cpu', '?backend=cpu did not force the CPU');
      assert.equal(seedOf(onCpu.page.url()), '42');
      const cpuGrid = await assertDigitGrid(onCpu.page);

      const difference = compareGrids(gpuGrid, cpuGrid);
      assert.ok(difference.mean < MAX_BACKEND_MEAN_DIFFERENCE,
        `mean difference ${difference.mean.toFixed(3)} is not below ${MAX_BACKEND_MEAN_DIFFERENCE}`);
      assert.ok(difference.max <= MAX_BACKEND_PIXEL_DIFFERENCE,
        `max difference ${difference.max} is above ${MAX_BACKEND_PIXEL_DIFFERENCE}`);
    });
  } finally {
    await browser.close();
  }
});

test('seed reproduces the grid', { timeout: TEST_TIMEOUT_MS }, async () => {
  const browser = await launchBrowser({ webgpu: false });
  try {
    await withDiagnostics(async (track) => {
      const first = await assertDigitGrid((await openReady(browser.context, track, '?seed=7')).page);
      const again = await assertDigitGrid((await openReady(browser.context, track, '?seed=7')).page);
      const other = await assertDigitGrid((await openReady(browser.context, track, '?seed=8')).page);

      assert.equal(compareGrids(first, again).max, 0, 'two loads of ?seed=7 drew different grids');
      const difference = compareGrids(first, other).mean;
      assert.ok(difference > MIN_NEW_GRID_DIFFERENCE,
        `?seed=7 and ?seed=8 differ by a mean of ${difference.toFixed(2)}, expected above ${MIN_NEW_GRID_DIFFERENCE}`);
    });
  } finally {
    await browser.close();
  }
});

test('generate draws a new grid', { timeout: TEST_TIMEOUT_MS }, async () => {
  const browser = await launchBrowser({ webgpu: false });
  try {
    await withDiagnostics(async (track) => {
      const opened = await openReady(browser.context, track, '?seed=5');
      const before = await assertDigitGrid(opened.page);

      await opened.page.locator('button#generate').click();
      await opened.page.waitForFunction(
        () => new URL(location.href).searchParams.get('seed') !== '5' && document.body.dataset.state !== 'loading',
        null,
        { timeout: STATE_TIMEOUT_MS, polling: 100 },
      );
      assert.equal(await waitForState(opened, ['ready', 'error']), 'ready');
      const newSeed = seedOf(opened.page.url());
      assert.match(newSeed ?? '', /^\d+$/, `the new ?seed= is ${newSeed}, expected an integer`);

      const after = await assertDigitGrid(opened.page);
      const difference = compareGrids(before, after).mean;
      assert.ok(difference > MIN_NEW_GRID_DIFFERENCE,
        `the new grid differs by a mean of ${difference.toFixed(2)}, expected above ${MIN_NEW_GRID_DIFFERENCE}`);

      // The seed in the URL must be the one that drew the grid.
      const reloaded = await openReady(browser.context, track, `?seed=${newSeed}`);
      const reloadedGrid = await assertDigitGrid(reloaded.page);
      assert.equal(compareGrids(after, reloadedGrid).max, 0, `loading ?seed=${newSeed} drew a different grid`);
    });
  } finally {
    await browser.close();
  }
});

test('backend select switches backend', { timeout: TEST_TIMEOUT_MS }, async () => {
  const browser = await launchBrowser({ webgpu: true });
  try {
    await withDiagnostics(async (track) => {
      const opened = await openReady(browser.context, track, '?seed=3&backend=webgpu');
      const select = opened.page.locator('select#backend-select');
      assert.equal(await backendOf(opened.page), 'webgpu');
      assert.equal(await select.inputValue(), 'webgpu');

      for (const target of ['cpu', 'webgpu']) {
        await select.selectOption(target);
        await opened.page.waitForFunction(
          (expected) => document.querySelector('#backend')?.dataset.backend === expected
            && document.body.dataset.state !== 'loading',
          target,
          { timeout: STATE_TIMEOUT_MS, polling: 100 },
        );
        assert.equal(await waitForState(opened, ['ready', 'error']), 'ready', `switching to ${target} failed`);
        assert.equal(await select.inputValue(), target);
        await assertDigitGrid(opened.page);
      }
    });
  } finally {
    await browser.close();
  }
});

test('download saves the grid as png', { timeout: TEST_TIMEOUT_MS }, async () => {
  const browser = await launchBrowser({ webgpu: false });
  try {
    await withDiagnostics(async (track) => {
      const opened = await openReady(browser.context, track, '?seed=11');
      const canvasSize = await opened.page.evaluate(() => {
        const canvas = document.querySelector('canvas#grid');
        return { width: canvas.width, height: canvas.height };
      });

      const [download] = await Promise.all([
        opened.page.waitForEvent('download', { timeout: STATE_TIMEOUT_MS }),
        opened.page.locator('a#download').click(),
      ]);
      assert.match(download.suggestedFilename(), /\.png$/i);
      const png = await readFile(await download.path());

      const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      assert.ok(png.subarray(0, 8).equals(signature), 'the download is not a PNG file');
      // The IHDR chunk follows the signature: 4 bytes length, "IHDR", then width and height.
      const size = { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
      const unscaled = { width: GRID_PIXELS, height: GRID_PIXELS };
      assert.ok(
        (size.width === canvasSize.width && size.height === canvasSize.height)
          || (size.width === unscaled.width && size.height === unscaled.height),
        `the PNG is ${size.width}×${size.height}, expected the canvas size ${canvasSize.width}×${canvasSize.height} or ${GRID_PIXELS}×${GRID_PIXELS}`,
      );
    });
  } finally {
    await browser.close();
  }
});

test('missing weights show retry', { timeout: TEST_TIMEOUT_MS }, async () => {
  const browser = await launchBrowser({ webgpu: false });
  server.failPath(WEIGHTS_PATH);
  try {
    await withDiagnostics(async (track) => {
      const opened = track(await openPage(browser.context, `${server.url}?seed=1`));
      assert.equal(await waitForState(opened, ['ready', 'error']), 'error');
      assert.match(await opened.page.locator('#error').textContent(), /dcgan\.bin/);
      const retry = opened.page.locator('button#retry');
      assert.ok(await retry.isVisible(), 'button#retry is not visible');

      server.restorePath(WEIGHTS_PATH);
      await retry.click();
      await opened.page.waitForFunction(() => document.body.dataset.state !== 'error', null,
        { timeout: STATE_TIMEOUT_MS, polling: 100 });
      assert.equal(await waitForState(opened, ['ready', 'error']), 'ready', 'retry did not recover');
      await assertDigitGrid(opened.page);
    });
  } finally {
    server.restorePath(WEIGHTS_PATH);
    await browser.close();
  }
});

test('corrupt weights show an error', { timeout: TEST_TIMEOUT_MS }, async () => {
  const weights = await readFile(join(DIST_DIR, WEIGHTS_PATH));
  const cases = [
    { name: 'text instead of weights', body: 'this is not a weights file\n' },
    { name: 'truncated file', body: weights.subarray(0, Math.floor(weights.length / 2)) },
    { name: 'empty file', body: '' },
  ];

  const browser = await launchBrowser({ webgpu: false });
  try {
    for (const { name, body } of cases) {
      server.overridePath(WEIGHTS_PATH, body);
      await withDiagnostics(async (track) => {
        const opened = track(await openPage(browser.context, `${server.url}?seed=1`));
        const state = await waitForState(opened, ['ready', 'error']);
        assert.equal(state, 'error', `${name}: data-state is ${state}`);
        assert.match(await opened.page.locator('#error').textContent(), /dcgan\.bin/, `${name}: #error does not name the file`);
        assert.ok(await opened.page.locator('button#retry').isVisible(), `${name}: button#retry is not visible`);
        await opened.page.close();
      });
    }
  } finally {
    server.restorePath(WEIGHTS_PATH);
    await browser.close();
  }
});

test('digit select redraws the grid', { timeout: TEST_TIMEOUT_MS }, async () => {
  const browser = await launchBrowser({ webgpu: false });
  try {
    await withDiagnostics(async (track) => {
      const opened = await openReady(browser.context, track, '?view=digit&digit=3&seed=9');
      assert.equal(await opened.page.locator('select#view').inputValue(), 'digit');
      const threes = await assertDigitGrid(opened.page);

      await opened.page.locator('select#digit').selectOption('8');
      await opened.page.waitForFunction(
        () => new URL(location.href).searchParams.get('digit') === '8' && document.body.dataset.state !== 'loading',
        null,
        { timeout: STATE_TIMEOUT_MS, polling: 100 },
      );
      assert.equal(await waitForState(opened, ['ready', 'error']), 'ready', 'choosing digit 8 failed');
      const eights = await assertDigitGrid(opened.page);

      const difference = compareGrids(threes, eights).mean;
      assert.ok(difference > MIN_NEW_GRID_DIFFERENCE,
        `the grids of 3 and 8 differ by a mean of ${difference.toFixed(2)}, expected above ${MIN_NEW_GRID_DIFFERENCE}`);
    });
  } finally {
    await browser.close();
  }
});

test('rows view draws one row per digit', { timeout: TEST_TIMEOUT_MS }, async () => {
  const browser = await launchBrowser({ webgpu: false });
  try {
    await withDiagnostics(async (track) => {
      const opened = await openReady(browser.context, track, '?view=rows&seed=4');
      const size = await opened.page.evaluate(() => {
        const canvas = document.querySelector('canvas#grid');
        return { width: canvas.width, height: canvas.height };
      });
      // 8 columns and 10 rows of 28-pixel digits with 2-pixel gaps, scaled by a whole zoom.
      const zoom = size.width / 238;
      assert.ok(Number.isInteger(zoom), `canvas#grid is ${size.width} px wide, expected a multiple of 238`);
      assert.equal(size.height, 298 * zoom, `canvas#grid is ${size.width}×${size.height}, expected 10 rows`);
      assert.match(await opened.page.locator('#timing').textContent(), /^80 digits/);
    });
  } finally {
    await browser.close();
  }
});
