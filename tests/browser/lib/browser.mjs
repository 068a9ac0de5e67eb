// Chromium helpers for the browser tests: launching a headless browser with a fresh profile,
// recording console output, waiting on the page state and reading the digit grid.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

/** Chromium binary; set CHROMIUM_PATH to use another one. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * Maximum wait, in milliseconds, for the page to reach a state. Compiling the wasm and running the
 * first batch on WebGPU through SwiftShader takes tens of seconds on a small CI machine, so the
 * default is generous. BROWSER_TEST_TIMEOUT_MS overrides it.
 */
export const STATE_TIMEOUT_MS = Number(process.env.BROWSER_TEST_TIMEOUT_MS ?? 240_000);

/** Digits per grid side, digit side and gap between digits, in grid pixels. */
export const GRID_SIDE = 8;
export const DIGIT_SIDE = 28;
export const GAP = 2;

/** Side of the unscaled grid picture: 8 digits of 28 pixels and 7 gaps of 2 pixels. */
export const GRID_PIXELS = GRID_SIDE * DIGIT_SIDE + (GRID_SIDE - 1) * GAP;

const BASE_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // Every host name except 127.0.0.1 fails to resolve, so the page cannot reach another host.
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
];

/**
 * Launches headless Chromium with a fresh profile in a temporary folder.
 *
 * With `webgpu` set, `--enable-unsafe-webgpu` gives the page a WebGPU adapter (SwiftShader on a
 * machine without a GPU). Without it `navigator.gpu` exists but `requestAdapter()` returns null,
 * which makes the page fall back to the CPU. Returns `{ context, close }`.
 */
export async function launchBrowser({ webgpu }) {
  const profileDir = await mkdtemp(join(tmpdir(), 'digits-chromium-'));
  const args = webgpu ? [...BASE_ARGS, '--enable-unsafe-webgpu'] : BASE_ARGS;
  let context;
  try {
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args,
      acceptDownloads: true,
      viewport: { width: 1280, height: 1024 },
    });
  } catch (error) {
    await rm(profileDir, { recursive: true, force: true });
    throw new Error(`launching ${CHROMIUM_PATH} failed (run make tools to install it): ${error.message}`);
  }

  return {
    context,
    async close() {
      await context.close();
      await rm(profileDir, { recursive: true, force: true });
    },
  };
}

/**
 * Opens `url` in a new page and records its console messages and uncaught errors.
 *
 * Returns `{ page, log, pageErrors, describe() }`. `log` lists every console message and failed
 * request as text, `pageErrors` lists uncaught exceptions, and `describe()` returns the page
 * state, URL, error text and the log, for failure messages.
 */
export async function openPage(context, url) {
  const page = await context.newPage();
  const log = [];
  const pageErrors = [];

  page.on('console', (message) => {
    log.push(`console.${message.type()}: ${message.text()}`);
  });
  page.on('pageerror', (error) => {
    pageErrors.push(error.message);
    log.push(`uncaught: ${error.message}`);
  });
  page.on('requestfailed', (request) => {
    log.push(`request failed: ${request.url()} (${request.failure()?.errorText})`);
  });
  page.on('response', (response) => {
    if (response.status() >= 400) {
      log.push(`HTTP ${response.status()}: ${response.url()}`);
    }
  });

  const describe = async () => {
    let snapshot;
    try {
      snapshot = await page.evaluate(() => ({
        state: document.body?.dataset.state ?? '(no body)',
        parts: Object.fromEntries([...document.querySelectorAll('section.part')].map((part) => [part.id, part.dataset.state])),
        backend: document.querySelector('#backend')?.dataset.backend ?? '(no #backend)',
        errors: [...document.querySelectorAll('[role=alert]')].map((alert) => `${alert.id}: ${alert.textContent}`),
      }));
    } catch (error) {
      snapshot = { unavailable: error.message };
    }
    const lines = log.length === 0 ? '  (none)' : log.map((line) => `  ${line}`).join('\n');
    return `page ${page.url()}\npage snapshot: ${JSON.stringify(snapshot)}\nconsole and network log:\n${lines}`;
  };

  await page.goto(url, { waitUntil: 'load', timeout: STATE_TIMEOUT_MS });
  return { page, log, pageErrors, describe };
}

/**
 * Runs `body` with a `track` function for opened pages. When `body` throws, the error is
 * rethrown with each tracked page's state and console log appended.
 */
export async function withDiagnostics(body) {
  const opened = [];
  const track = (page) => {
    opened.push(page);
    return page;
  };
  try {
    await body(track);
  } catch (error) {
    const details = await Promise.all(opened.map((page) => page.describe()));
    if (details.length === 0) {
      throw error;
    }
    throw new Error(`${error.message}\n\n${details.join('\n\n')}`, { cause: error });
  }
}

/**
 * Waits until `document.body.dataset.state` is one of `states`, then returns it.
 * Throws with the page description when the wait times out.
 */
export async function waitForState(opened, states, timeout = STATE_TIMEOUT_MS) {
  try {
    await opened.page.waitForFunction(
      (expected) => expected.includes(document.body?.dataset.state),
      states,
      { timeout, polling: 100 },
    );
  } catch (error) {
    throw new Error(
      `timed out after ${timeout} ms waiting for data-state in [${states}]: ${error.message}\n${await opened.describe()}`,
    );
  }
  return opened.page.evaluate(() => document.body.dataset.state);
}

/**
 * Reads `canvas#grid` and returns the unscaled grid as gray levels.
 *
 * The page may draw the 238×238 grid scaled up by a whole factor. This samples the center of each
 * scaled pixel and returns `{ zoom, width, height, gray, notGray }`: `gray` is a row-major array of
 * GRID_PIXELS² gray levels, and `notGray` counts sampled pixels whose red, green and blue differ
 * or whose alpha is not 255.
 */
export async function readGrid(page) {
  return page.evaluate((gridPixels) => {
    const canvas = document.querySelector('canvas#grid');
    if (!canvas) {
      throw new Error('canvas#grid is missing');
    }
    const { width, height } = canvas;
    const zoom = width / gridPixels;
    if (width !== height || !Number.isInteger(zoom) || zoom < 1) {
      return { zoom, width, height, gray: [], notGray: 0 };
    }

    const data = canvas.getContext('2d').getImageData(0, 0, width, height).data;
    const gray = new Array(gridPixels * gridPixels);
    let notGray = 0;
    const offset = Math.floor(zoom / 2);
    for (let y = 0; y < gridPixels; y += 1) {
      for (let x = 0; x < gridPixels; x += 1) {
        const index = ((y * zoom + offset) * width + (x * zoom + offset)) * 4;
        const [red, green, blue, alpha] = [data[index], data[index + 1], data[index + 2], data[index + 3]];
        if (red !== green || green !== blue || alpha !== 255) {
          notGray += 1;
        }
        gray[y * gridPixels + x] = red;
      }
    }
    return { zoom, width, height, gray, notGray };
  }, GRID_PIXELS);
}

/** Returns whether grid pixel column or row `index` falls in a gap between digits. */
export function isGap(index) {
  return index % (DIGIT_SIDE + GAP) >= DIGIT_SIDE;
}

/** Returns the gray levels of digit `tile` (0 to 63, row-major) of a grid from readGrid. */
export function tilePixels(gray, tile) {
  const left = (tile % GRID_SIDE) * (DIGIT_SIDE + GAP);
  const top = Math.floor(tile / GRID_SIDE) * (DIGIT_SIDE + GAP);
  const pixels = [];
  for (let y = 0; y < DIGIT_SIDE; y += 1) {
    for (let x = 0; x < DIGIT_SIDE; x += 1) {
      pixels.push(gray[(top + y) * GRID_PIXELS + left + x]);
    }
  }
  return pixels;
}

/** Returns the standard deviation of a list of numbers. */
export function standardDeviation(values) {
  const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
  const variance = values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / values.length;
  return Math.sqrt(variance);
}

/** Returns the mean and maximum absolute difference between two equally long pixel lists. */
export function compareGrids(first, second) {
  let total = 0;
  let max = 0;
  for (let i = 0; i < first.length; i += 1) {
    const difference = Math.abs(first[i] - second[i]);
    total += difference;
    max = Math.max(max, difference);
  }
  return { mean: total / first.length, max };
}

/** Returns the `seed` query parameter of a page URL, or null. */
export function seedOf(url) {
  return new URL(url).searchParams.get('seed');
}

/**
 * Reads a canvas that shows a `width × height` picture scaled up by a whole factor, and returns
 * `{ zoom, gray, notGray }` as readGrid does. `gray` is the gray level at the center of each
 * scaled pixel, row-major, and `notGray` counts the sampled pixels that are not opaque gray. `zoom` is null when the
 * canvas size is not a whole multiple of the picture size.
 */
export async function readPicture(page, selector, width, height) {
  return page.evaluate(({ selector, width, height }) => {
    const canvas = document.querySelector(selector);
    if (!canvas) {
      throw new Error(`${selector} is missing`);
    }
    const zoom = canvas.width / width;
    if (!Number.isInteger(zoom) || zoom < 1 || canvas.height !== height * zoom) {
      return { zoom: null, size: `${canvas.width}×${canvas.height}`, gray: [], notGray: 0 };
    }

    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    const gray = new Array(width * height);
    let notGray = 0;
    const offset = Math.floor(zoom / 2);
    for (let y = 0; y < height; y += 1) {
      for (let x = 0; x < width; x += 1) {
        const index = ((y * zoom + offset) * canvas.width + (x * zoom + offset)) * 4;
        const [red, green, blue, alpha] = [data[index], data[index + 1], data[index + 2], data[index + 3]];
        if (red !== green || green !== blue || alpha !== 255) {
          notGray += 1;
        }
        gray[y * width + x] = red;
      }
    }
    return { zoom, size: `${canvas.width}×${canvas.height}`, gray, notGray };
  }, { selector, width, height });
}

/**
 * Waits until `pageFunction(argument)`, run in the page, returns a truthy value. `what` names the
 * condition in the error thrown on timeout, which also carries the page description.
 */
export async function waitUntil(opened, what, pageFunction, argument = null, timeout = STATE_TIMEOUT_MS) {
  try {
    await opened.page.waitForFunction(pageFunction, argument, { timeout, polling: 50 });
  } catch (error) {
    throw new Error(`timed out after ${timeout} ms waiting until ${what}: ${error.message}\n${await opened.describe()}`);
  }
}
