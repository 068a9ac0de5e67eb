// Browser test of a site written by `trainer publish`: served from a sub-path with the site's
// Content-Security-Policy as a header, the page must load its content-hashed weights through the
// manifest, draw digits and log no CSP violation.
//
// Needs dist/ (trunk build --release) and the trainer binary that `cargo test --release` builds
// (make test runs it first); CARGO_TARGET_DIR is honoured and TRAINER_BIN overrides the path.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { STATE_TIMEOUT_MS, launchBrowser, openPage, waitForState, withDiagnostics } from './lib/browser.mjs';
import { startStaticServer } from './lib/server.mjs';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DIST_DIR = resolve(process.env.DIST_DIR ?? join(REPO_ROOT, 'dist'));
const PREFIX = '/mnist/digits/';
const TRAINER_BIN = resolve(
  process.env.TRAINER_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(REPO_ROOT, 'target'), 'release', 'trainer'),
);

let workDir;
let site;
let server;

before(async () => {
  if (!existsSync(join(DIST_DIR, 'index.html'))) {
    throw new Error(`${DIST_DIR}/index.html not found: run trunk build --release (make test does it) or set DIST_DIR`);
  }
  if (!existsSync(TRAINER_BIN)) {
    throw new Error(`${TRAINER_BIN} not found: run cargo test --release (make test does it) or set TRAINER_BIN`);
  }
  workDir = await mkdtemp(join(tmpdir(), 'digits-publish-'));
  site = join(workDir, 'site');
  execFileSync(TRAINER_BIN, ['publish', '--page', DIST_DIR, '--out', site], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, RUST_LOG: 'warn' },
  });
  const policy = (await readFile(join(site, 'csp.txt'), 'utf8')).trim();
  server = await startStaticServer(site, { prefix: PREFIX, headers: { 'Content-Security-Policy': policy } });
});

after(async () => {
  await server?.close();
  if (workDir) {
    await rm(workDir, { recursive: true, force: true });
  }
});

test('published site has hashed weights and a manifest', async () => {
  const files = await readdir(join(site, 'weights'));
  assert.ok(files.includes('manifest.json'), `weights/ lists ${files.join(', ')}`);
  assert.ok(files.some((name) => /^dcgan\.[0-9a-f]{16}\.bin$/.test(name)), `no hashed dcgan weights in ${files.join(', ')}`);
  assert.ok(!files.includes('dcgan.bin'), 'the unhashed dcgan.bin was published');

  const html = await readFile(join(site, 'index.html'), 'utf8');
  assert.match(html, /<meta http-equiv="Content-Security-Policy" content="[^"]*'wasm-unsafe-eval'/);
  assert.doesNotMatch(html, /unsafe-inline/);
});

test('published site works from a sub-path under its policy', { timeout: 4 * STATE_TIMEOUT_MS }, async () => {
  const browser = await launchBrowser({ webgpu: false });
  try {
    await withDiagnostics(async (track) => {
      const opened = track(await openPage(browser.context, `${server.url}?backend=cpu`));
      const state = await waitForState(opened, ['ready', 'error']);
      assert.equal(state, 'ready', `the published page ended in data-state=${state}`);

      const violations = opened.log.filter((line) => /Content Security Policy|Content-Security-Policy|Refused to/i.test(line));
      assert.deepEqual(violations, [], 'the page broke its Content-Security-Policy');
      assert.deepEqual(opened.pageErrors, [], 'the page threw uncaught errors');

      const weights = server.requests.filter((path) => path.startsWith(`${PREFIX}weights/`));
      assert.ok(weights.includes(`${PREFIX}weights/manifest.json`), `requests: ${weights.join(', ')}`);
      assert.ok(weights.some((path) => /dcgan\.[0-9a-f]{16}\.bin$/.test(path)), `requests: ${weights.join(', ')}`);
      // Every request stays under the sub-path. The inline icon keeps Chromium from requesting
      // /favicon.ico from the origin's root.
      const outside = server.requests.filter((path) => !path.startsWith(PREFIX));
      assert.deepEqual(outside, [], `requests left ${PREFIX}`);
    });
  } finally {
    await browser.close();
  }
});
