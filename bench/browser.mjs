// Measures the page that Trunk built in headless Chromium, once on the CPU backend and once on
// WebGPU: the cold load (time from navigation start to data-state="ready", with every request
// made until then) and the time of each batch of 64 digits that the page reports in #timing.
// Run `make bench-browser`, or `node bench/browser.mjs --help` for the options.
//
// CHROMIUM_PATH picks the browser and BROWSER_TEST_TIMEOUT_MS sets the wait for each page state,
// as for the browser tests whose helpers this script uses.

import { existsSync } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { formatBinary, formatBytes, formatMillis, markdownTable } from './lib/format.mjs';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SCRIPT = 'bench/browser.mjs';

const BACKENDS = ['cpu', 'webgpu'];
const DEFAULT_RUNS = 20;

/** Clicks at the start of each backend's series that are timed but not reported. */
const WARMUP_CLICKS = 3;

/** Seed in the page URL, so every run draws the same first grid. */
const SEED = 1;

/** Text of #timing after each batch, such as "64 digits in 12.3 ms". */
const TIMING_PATTERN = /^(\d+) digits in (\d+(?:\.\d+)?) ms$/;

const USAGE = `Usage: node ${SCRIPT} [--dist DIR] [--runs N] [--json FILE] [--backends LIST]

Serves the built page on 127.0.0.1 and measures it in headless Chromium with a fresh profile for
each backend: the time from navigation start to data-state="ready" with the requests made until
then, and the batch time in #timing over N clicks on Generate, of which the first ${WARMUP_CLICKS} are
warm-up and not reported. Prints Markdown tables.

Options:
  --dist DIR        folder built by Trunk (default: DIST_DIR, or dist/ at the repository root)
  --runs N          clicks on Generate per backend, warm-up included (default: ${DEFAULT_RUNS}, minimum: ${WARMUP_CLICKS + 1})
  --json FILE       also write all measurements as JSON to FILE
  --backends LIST   comma-separated backends to measure, from ${BACKENDS.join(', ')} (default: both)
  --help            print this help

Environment: CHROMIUM_PATH (default /usr/bin/chromium), BROWSER_TEST_TIMEOUT_MS (wait for each
page state, default 240000), XDG_RUNTIME_DIR (made in a temporary folder when unset, because
Chromium's software WebGPU needs it).`;

/** An error in the input or the setup, printed without a stack trace. */
class InputError extends Error {}

/** Parses and checks the command line. */
function parseOptions() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        dist: { type: 'string' },
        runs: { type: 'string', default: String(DEFAULT_RUNS) },
        json: { type: 'string' },
        backends: { type: 'string', default: BACKENDS.join(',') },
        help: { type: 'boolean', default: false },
      },
    }));
  } catch (error) {
    throw new InputError(`${error.message}\n\n${USAGE}`);
  }

  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs <= WARMUP_CLICKS) {
    throw new InputError(`invalid --runs ${values.runs}: expected a whole number above ${WARMUP_CLICKS}, the warm-up clicks`);
  }
  const backends = values.backends.split(',').map((name) => name.trim()).filter((name) => name !== '');
  const unknown = backends.filter((name) => !BACKENDS.includes(name));
  if (backends.length === 0 || unknown.length > 0) {
    throw new InputError(`invalid --backends ${values.backends}: expected a comma-separated list of ${BACKENDS.join(', ')}`);
  }
  const distDir = resolve(values.dist ?? process.env.DIST_DIR ?? join(REPO_ROOT, 'dist'));
  return { help: values.help, distDir, runs, json: values.json, backends };
}

/**
 * Imports the browser test helpers. They import playwright-core, which `make tools` installs in
 * tests/browser/node_modules.
 */
async function importHelpers() {
  try {
    const browser = await import('../tests/browser/lib/browser.mjs');
    const server = await import('../tests/browser/lib/server.mjs');
    return { ...browser, ...server };
  } catch (error) {
    if (error.code === 'ERR_MODULE_NOT_FOUND' && error.message.includes('playwright-core')) {
      throw new InputError('playwright-core not found in tests/browser/node_modules: run make tools, which runs npm ci there');
    }
    throw error;
  }
}

/**
 * Runs in every document before the page's scripts (page context, through addInitScript) and
 * records in `window.__benchProbe`:
 * - `readyAt`: performance.now() when body[data-state] first becomes "ready".
 * - `lastReadyAt`: performance.now() of the latest change of body[data-state] to "ready".
 * - `stateChanges`: the number of times the page set body[data-state].
 * - `clickAt`: performance.now() of the latest click on #generate.
 */
function installProbe() {
  const probe = { readyAt: null, lastReadyAt: null, stateChanges: 0, clickAt: null };
  window.__benchProbe = probe;

  const observer = new MutationObserver((records) => {
    const body = document.body;
    const bodyChanges = records.filter((record) => record.target === body && record.attributeName === 'data-state').length;
    if (bodyChanges === 0) {
      return;
    }
    probe.stateChanges += bodyChanges;
    if (body.dataset.state === 'ready') {
      const now = performance.now();
      probe.readyAt ??= now;
      probe.lastReadyAt = now;
    }
  });
  observer.observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-state'] });

  document.addEventListener('click', (event) => {
    if (event.target instanceof Element && event.target.closest('#generate')) {
      probe.clickAt = performance.now();
    }
  }, true);
}

/** Returns the probe, the page state and the texts that the bench reads, from the page. */
function readPage(page) {
  return page.evaluate(() => {
    const navigation = performance.getEntriesByType('navigation')[0];
    return {
      probe: { ...window.__benchProbe },
      state: document.body?.dataset.state ?? null,
      timing: document.querySelector('#timing')?.textContent.trim() ?? '',
      backend: document.querySelector('#backend')?.dataset.backend ?? null,
      notice: document.querySelector('#notice')?.textContent.trim() ?? '',
      error: document.querySelector('#error')?.textContent.trim() ?? '',
      timeOrigin: performance.timeOrigin,
      domContentLoaded: navigation?.domContentLoadedEventEnd ?? null,
      loadEvent: navigation?.loadEventEnd ?? null,
      userAgent: navigator.userAgent,
    };
  });
}

/** Returns the batch time in milliseconds from a #timing text, or throws naming the text. */
function parseTiming(text) {
  const match = TIMING_PATTERN.exec(text);
  if (!match) {
    throw new Error(`#timing reads "${text}", expected "<count> digits in <time> ms"`);
  }
  return { digits: Number(match[1]), millis: Number(match[2]) };
}

/**
 * Returns the median, 90th percentile, minimum and maximum of `values`. The median of an even count
 * is the mean of the two middle values, and the 90th percentile is the nearest-rank value
 * (the smallest value with at least 90 % of the values at or below it).
 */
function summarize(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
  const p90 = sorted[Math.ceil(0.9 * sorted.length) - 1];
  return { count: sorted.length, median, p90, min: sorted[0], max: sorted[sorted.length - 1] };
}

/**
 * Describes the requests the page made, from Playwright's request objects: URL path, resource
 * type, HTTP status, response body bytes and the time, in milliseconds after navigation start,
 * at which the response finished. Chromium reports no body size for the scripts that a worker
 * imports. For a successful response without one, the size of the file in `distDir` counts,
 * which equals the body because the server sends files uncompressed.
 */
async function describeRequests(requests, serverUrl, timeOrigin, distDir) {
  const described = [];
  for (const request of requests) {
    const response = await request.response().catch(() => null);
    const sizes = await request.sizes().catch(() => null);
    const timing = request.timing();
    const url = new URL(request.url());
    const path = request.url().startsWith(serverUrl) ? `${url.pathname}${url.search}` : request.url();
    let bytes = sizes?.responseBodySize ?? null;
    if (!bytes && response?.status() === 200 && request.url().startsWith(serverUrl)) {
      const served = join(distDir, decodeURIComponent(url.pathname), url.pathname.endsWith('/') ? 'index.html' : '');
      bytes = await stat(served).then((file) => file.size, () => bytes);
    }
    described.push({
      path,
      type: request.resourceType(),
      status: response?.status() ?? (request.failure()?.errorText ?? 'no response'),
      bytes,
      finishedAt: timing.responseEnd >= 0 ? timing.startTime + timing.responseEnd - timeOrigin : null,
    });
  }
  return described;
}

/**
 * Opens the page on `backend` in a fresh Chromium profile, waits until it is ready, and clicks
 * Generate `runs` times. Returns the cold load and generation measurements.
 */
async function measureBackend(helpers, serverUrl, distDir, backend, runs) {
  const browser = await helpers.launchBrowser({ webgpu: backend === 'webgpu' });
  try {
    const { context } = browser;
    await context.addInitScript(installProbe);
    const requests = [];
    context.on('request', (request) => requests.push(request));

    const url = `${serverUrl}?backend=${backend}&seed=${SEED}`;
    const opened = await helpers.openPage(context, url);
    const state = await helpers.waitForState(opened, ['ready', 'error']);
    const loaded = await readPage(opened.page);
    if (state !== 'ready') {
      throw new Error(`the page at ${url} ended in data-state=${state} instead of ready: ${loaded.error}\n${await opened.describe()}`);
    }

    const readyEpoch = loaded.timeOrigin + loaded.probe.readyAt;
    const untilReady = requests.filter((request) => request.timing().startTime <= readyEpoch);
    const requestList = await describeRequests(untilReady, serverUrl, loaded.timeOrigin, distDir);
    const cold = {
      readyMs: loaded.probe.readyAt,
      domContentLoadedMs: loaded.domContentLoaded,
      loadEventMs: loaded.loadEvent,
      firstBatchMs: parseTiming(loaded.timing).millis,
      requests: requestList,
      totalBytes: requestList.reduce((sum, request) => sum + (request.bytes ?? 0), 0),
    };

    const batches = [];
    for (let click = 1; click <= runs; click += 1) {
      batches.push(await timeOneBatch(helpers, opened, click, runs));
    }
    const measured = batches.slice(WARMUP_CLICKS);
    const finished = await readPage(opened.page);

    return {
      backend,
      url,
      chromium: /(?:Headless)?Chrome\/([\d.]+)/.exec(loaded.userAgent)?.[1] ?? loaded.userAgent,
      ranOn: loaded.backend,
      ranOnAfterBatches: finished.backend,
      notice: finished.notice || loaded.notice,
      cold,
      batches,
      generation: {
        warmupClicks: WARMUP_CLICKS,
        digits: measured[0].digits,
        batch: summarize(measured.map((batch) => batch.millis)),
        clickToReady: summarize(measured.map((batch) => batch.clickToReadyMs)),
      },
    };
  } finally {
    await browser.close();
  }
}

/**
 * Clicks Generate once, waits until the page has changed body[data-state] and is ready again, and
 * returns the batch time from #timing and the click-to-ready time that the probe measured.
 */
async function timeOneBatch(helpers, opened, click, runs) {
  const before = await readPage(opened.page);
  await opened.page.locator('button#generate').click({ timeout: helpers.STATE_TIMEOUT_MS });
  await helpers.waitUntil(
    opened,
    `batch ${click} of ${runs} finished (body data-state changed and is ready or error)`,
    (changes) => window.__benchProbe.stateChanges > changes && ['ready', 'error'].includes(document.body.dataset.state),
    before.probe.stateChanges,
  );

  const after = await readPage(opened.page);
  if (after.state !== 'ready') {
    throw new Error(`batch ${click} of ${runs} ended in data-state=${after.state}: ${after.error}\n${await opened.describe()}`);
  }
  const { digits, millis } = parseTiming(after.timing);
  return {
    click,
    digits,
    millis,
    timing: after.timing,
    clickToReadyMs: after.probe.lastReadyAt - after.probe.clickAt,
  };
}

/** Renders the measurements as Markdown. */
function renderReport(report) {
  const { results, failures } = report;
  const ranOn = (result) => {
    const fellBack = result.ranOn !== result.backend || result.ranOnAfterBatches !== result.backend;
    const backends = result.ranOn === result.ranOnAfterBatches ? result.ranOn : `${result.ranOn}, then ${result.ranOnAfterBatches}`;
    return fellBack ? `**${backends}** (fallback)` : backends;
  };

  const lines = [
    '## Browser benchmark',
    '',
    `Headless Chromium ${results[0]?.chromium ?? '(not started)'}, Node.js ${process.version}, ${report.machine}.`,
    `Page \`${report.distDir}\` served on 127.0.0.1 without compression, URL \`/?backend=<backend>&seed=${SEED}\`, a fresh browser profile per backend.`,
  ];

  if (results.length > 0) {
    lines.push(
      '',
      '### Cold load',
      '',
      'Times from navigation start, measured in the page: DOMContentLoaded and load events, and the first `data-state="ready"` on the body',
      '(first grid drawn). Bytes are response bodies of the requests made until ready. "First batch" is the `#timing` of that first grid.',
      '',
      markdownTable(
        ['backend', 'ran on', 'DOMContentLoaded', 'load event', 'ready', 'requests', 'bytes until ready', 'first batch'],
        results.map((result) => [
          result.backend,
          ranOn(result),
          formatMillis(result.cold.domContentLoadedMs),
          formatMillis(result.cold.loadEventMs),
          formatMillis(result.cold.readyMs),
          String(result.cold.requests.length),
          `${formatBytes(result.cold.totalBytes)} (${formatBinary(result.cold.totalBytes)})`,
          formatMillis(result.cold.firstBatchMs),
        ]),
        [2, 3, 4, 5, 6, 7],
      ),
      '',
      `### Generation: ${results[0].generation.digits} digits per batch`,
      '',
      `Batch time as \`#timing\` reports it, over ${plural(report.runs - WARMUP_CLICKS, 'click')} on Generate after ${WARMUP_CLICKS} warm-up clicks.`,
      '"Click to ready" is measured in the page from the click to `data-state="ready"`, so it includes drawing the grid.',
      '',
      markdownTable(
        ['backend', 'ran on', 'median', 'p90', 'min', 'max', 'click to ready, median'],
        results.map((result) => {
          const { batch, clickToReady } = result.generation;
          return [
            result.backend,
            ranOn(result),
            formatMillis(batch.median),
            formatMillis(batch.p90),
            formatMillis(batch.min),
            formatMillis(batch.max),
            formatMillis(clickToReady.median),
          ];
        }),
        [2, 3, 4, 5, 6],
      ),
    );
  }

  for (const result of results) {
    if (result.notice) {
      lines.push('', `Notice on the ${result.backend} page: ${result.notice}`);
    }
    lines.push(
      '',
      `### Requests until ready: ${result.backend}`,
      '',
      markdownTable(
        ['#', 'path', 'type', 'status', 'bytes', 'finished at'],
        result.cold.requests.map((request, index) => [
          String(index + 1),
          `\`${request.path}\``,
          request.type,
          String(request.status),
          request.bytes === null ? 'n/a' : formatBytes(request.bytes),
          formatMillis(request.finishedAt),
        ]),
        [0, 4, 5],
      ),
    );
  }

  for (const failure of failures) {
    lines.push('', `**${failure.backend}: not measured.** ${failure.message.split('\n')[0]}`);
  }
  return lines.join('\n');
}

/** Returns `count` and `noun`, with an "s" unless the count is 1, such as `7 clicks`. */
function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

/** Describes the CPU of this machine, for the report header. */
function describeMachine() {
  const cores = cpus();
  return `${cores[0]?.model.trim() ?? 'unknown CPU'}, ${cores.length} logical cores`;
}

async function main() {
  const options = parseOptions();
  if (options.help) {
    console.log(USAGE);
    return;
  }
  if (!existsSync(join(options.distDir, 'index.html'))) {
    throw new InputError(`${options.distDir}/index.html not found: run make build first, or pass --dist DIR`);
  }
  const helpers = await importHelpers();
  if (!existsSync(helpers.CHROMIUM_PATH)) {
    throw new InputError(`Chromium not found at ${helpers.CHROMIUM_PATH}: run make tools to install it, or set CHROMIUM_PATH`);
  }

  // Chromium's software WebGPU needs XDG_RUNTIME_DIR, so a private one is made when it is unset.
  let runtimeDir = null;
  if (!process.env.XDG_RUNTIME_DIR) {
    runtimeDir = await mkdtemp(join(tmpdir(), 'digits-bench-runtime-'));
    process.env.XDG_RUNTIME_DIR = runtimeDir;
  }

  const server = await helpers.startStaticServer(options.distDir);
  const results = [];
  const failures = [];
  try {
    for (const backend of options.backends) {
      console.error(`${SCRIPT}: measuring ${backend}: cold load and ${options.runs} clicks on Generate`);
      try {
        const result = await measureBackend(helpers, server.url, options.distDir, backend, options.runs);
        if (result.ranOn !== backend || result.ranOnAfterBatches !== backend) {
          console.error(`${SCRIPT}: warning: ${backend} was requested but the page ran on ${result.ranOn}`
            + ` (after the batches: ${result.ranOnAfterBatches}); notice: ${result.notice || '(none)'}`);
        }
        results.push(result);
      } catch (error) {
        console.error(`${SCRIPT}: measuring ${backend} failed: ${error.message}`);
        failures.push({ backend, message: error.message });
      }
    }
  } finally {
    await server.close();
    if (runtimeDir !== null) {
      await rm(runtimeDir, { recursive: true, force: true });
    }
  }

  const report = {
    date: new Date().toISOString(),
    machine: describeMachine(),
    node: process.version,
    distDir: options.distDir,
    runs: options.runs,
    warmupClicks: WARMUP_CLICKS,
    seed: SEED,
    results,
    failures,
  };
  console.log(renderReport(report));
  if (options.json) {
    await writeFile(options.json, `${JSON.stringify(report, null, 2)}\n`);
    console.error(`${SCRIPT}: wrote ${options.json}`);
  }
  if (failures.length > 0) {
    throw new InputError(`${failures.map((failure) => failure.backend).join(' and ')} not measured; see the messages above`);
  }
}

try {
  await main();
} catch (error) {
  console.error(`${SCRIPT}: error: ${error instanceof InputError ? error.message : error.stack}`);
  process.exitCode = 1;
}
