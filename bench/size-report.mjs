// Lists every file of the page that Trunk built, with its size raw, gzip-compressed (level 9) and
// brotli-compressed (quality 11), and totals the files that a visitor downloads before the first
// digits appear. Run `make size-report`, or `node bench/size-report.mjs --help` for the options.

import { existsSync } from 'node:fs';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { dirname, join, posix, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

import { formatBinary, formatBytes, markdownTable } from './lib/format.mjs';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SCRIPT = 'bench/size-report.mjs';

/** Manifest entry whose weights the Generate tab's default view (Random digits) runs. */
const FIRST_VIEW_MODEL_ID = 'dcgan';
const FIRST_VIEW_MODEL_KIND = 'dcgan';

/** Files of the CPU compute worker, which the page starts before its first model. */
const CPU_WORKER_FILES = ['worker.js', 'cpu-worker.js', 'cpu-worker_bg.wasm'];

const USAGE = `Usage: node ${SCRIPT} [--dist DIR] [--json FILE]

Prints a Markdown table of every file in the built page with its size in bytes, gzip-compressed
(level 9) and brotli-compressed (quality 11), and the total of the files the first view downloads.

Options:
  --dist DIR    folder built by Trunk (default: DIST_DIR, or dist/ at the repository root)
  --json FILE   also write the sizes as JSON to FILE
  --help        print this help`;

/** An error in the input, printed without a stack trace. */
class InputError extends Error {}

/** Returns the files under `dir`, recursively, as paths relative to `root` with `/` separators. */
async function listFiles(root, dir = root) {
  const files = [];
  const entries = await readdir(dir, { withFileTypes: true });
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      files.push(...(await listFiles(root, path)));
    } else if (entry.isFile()) {
      files.push(relative(root, path).split(sep).join('/'));
    }
  }
  return files;
}

/** Returns the raw, gzip (level 9) and brotli (quality 11) sizes of `bytes`. */
function compressedSizes(bytes) {
  const gzip = gzipSync(bytes, { level: 9 }).length;
  const brotli = brotliCompressSync(bytes, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 11,
      [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
    },
  }).length;
  return { raw: bytes.length, gzip, brotli };
}

/**
 * Returns the relative `.js`, `.wasm` and `.css` paths quoted in `text` (attributes such as
 * `href="./web-1a2b.js"` and strings in `import` statements), resolved against `baseDir`, which
 * is a dist-relative folder. Absolute URLs with a scheme are skipped.
 */
function referencedAssets(text, baseDir) {
  const pattern = /["'](\.{0,2}\/?[\w@.\/-]+\.(?:js|wasm|css))["']/g;
  const paths = [];
  for (const match of text.matchAll(pattern)) {
    const path = posix.normalize(posix.join(baseDir, match[1].replace(/^\//, '')));
    if (!paths.includes(path)) {
      paths.push(path);
    }
  }
  return paths;
}

/** Returns the relative modules that a JS file imports, as dist-relative paths. */
function importedModules(text, modulePath) {
  const pattern = /\b(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g;
  const baseDir = posix.dirname(modulePath);
  return [...text.matchAll(pattern)].map((match) => posix.normalize(posix.join(baseDir, match[1])));
}

/**
 * Returns the dist-relative paths of the files the page fetches before it shows its first digits,
 * in the order the page needs them. This is the only place that decides what "first view" means:
 *
 * 1. `index.html`.
 * 2. The stylesheet, JS glue and wasm module that index.html references. Trunk puts content hashes
 *    in these names, so they are read from index.html, together with the relative modules that
 *    the JS files import (wasm-bindgen snippets, if any).
 * 3. The CPU compute worker, which the page starts before its first model (web/src/pool.rs):
 *    `worker.js`, `cpu-worker.js` and `cpu-worker_bg.wasm`. Trunk names worker files without a
 *    hash. The WebGPU worker (`gpu-worker.js`, `gpu-worker_bg.wasm`) is fetched only after the
 *    first digits, and only in a browser with a WebGPU adapter, so it is left out.
 * 4. `weights/manifest.json`, which the page reads before any weights (web/src/registry.rs).
 * 5. The weights file of the manifest entry with id `dcgan`: the Generate tab opens first and its
 *    default view, Random digits, runs the DCGAN (web/src/app.rs, web/src/view.rs). The page looks
 *    the entry up by id, and this function also checks that its kind is `dcgan`.
 *
 * The conditional GAN, autoencoder and VAE weights, the test digits and the model cards are
 * fetched only when the visitor picks another view or tab, so they are left out.
 */
export async function firstViewFiles(distDir) {
  const indexHtml = await readFile(join(distDir, 'index.html'), 'utf8');
  const files = ['index.html'];
  const pending = referencedAssets(indexHtml, '.');
  while (pending.length > 0) {
    const path = pending.shift();
    if (files.includes(path)) {
      continue;
    }
    if (!existsSync(join(distDir, path))) {
      throw new InputError(`${distDir}/index.html or a module it imports references ${path}, which is missing from the dist folder: rebuild it with make build`);
    }
    files.push(path);
    if (path.endsWith('.js')) {
      pending.push(...importedModules(await readFile(join(distDir, path), 'utf8'), path));
    }
  }

  for (const path of CPU_WORKER_FILES) {
    if (!existsSync(join(distDir, path))) {
      throw new InputError(`${distDir}/${path}, which the page starts its CPU worker with, is missing: rebuild the dist folder with make build`);
    }
    files.push(path);
  }

  const manifestPath = 'weights/manifest.json';
  let manifest;
  try {
    manifest = JSON.parse(await readFile(join(distDir, manifestPath), 'utf8'));
  } catch (error) {
    throw new InputError(`reading ${distDir}/${manifestPath} failed (${error.message}): rebuild the dist folder with make build`);
  }
  files.push(manifestPath);

  const entry = (manifest.models ?? []).find((model) => model.id === FIRST_VIEW_MODEL_ID);
  if (entry === undefined) {
    throw new InputError(`${distDir}/${manifestPath} has no model with id "${FIRST_VIEW_MODEL_ID}", which the Generate tab loads first`);
  }
  if (entry.kind !== FIRST_VIEW_MODEL_KIND) {
    throw new InputError(`${distDir}/${manifestPath}: model "${FIRST_VIEW_MODEL_ID}" has kind "${entry.kind}", expected "${FIRST_VIEW_MODEL_KIND}"`);
  }
  const weightsPath = posix.join('weights', entry.file);
  if (!existsSync(join(distDir, weightsPath))) {
    throw new InputError(`${distDir}/${weightsPath}, named by ${manifestPath} for model "${FIRST_VIEW_MODEL_ID}", is missing: rebuild the dist folder with make build`);
  }
  files.push(weightsPath);
  return files;
}

/** Adds up the raw, gzip and brotli sizes of `rows`. */
function sumSizes(rows) {
  return rows.reduce(
    (total, row) => ({ raw: total.raw + row.raw, gzip: total.gzip + row.gzip, brotli: total.brotli + row.brotli }),
    { raw: 0, gzip: 0, brotli: 0 },
  );
}

/** Returns the three size cells of a totals row: bytes and binary units. */
function totalCells(total) {
  return [total.raw, total.gzip, total.brotli].map((bytes) => `**${formatBytes(bytes)}** (${formatBinary(bytes)})`);
}

/** Renders the report as Markdown. */
function renderReport({ distDir, files, firstView, total, firstViewTotal }) {
  const bySize = [...files].sort((a, b) => b.raw - a.raw || a.path.localeCompare(b.path));
  const fileRows = bySize.map((file) => [
    `\`${file.path}\``,
    formatBytes(file.raw),
    formatBytes(file.gzip),
    formatBytes(file.brotli),
    firstView.includes(file.path) ? 'yes' : '',
  ]);
  fileRows.push([`**all ${files.length} files**`, ...totalCells(total), '']);

  const byPath = new Map(files.map((file) => [file.path, file]));
  const firstViewRows = firstView.map((path, index) => {
    const file = byPath.get(path);
    return [String(index + 1), `\`${path}\``, formatBytes(file.raw), formatBytes(file.gzip), formatBytes(file.brotli)];
  });
  firstViewRows.push(['', `**first view, ${firstView.length} files**`, ...totalCells(firstViewTotal)]);

  return [
    `## Size of the built page`,
    '',
    `Folder: \`${distDir}\`. Sizes in bytes; gzip is level 9 and brotli is quality 11 (Node.js ${process.version} zlib).`,
    '',
    markdownTable(['file', 'bytes', 'gzip', 'brotli', 'first view'], fileRows, [1, 2, 3]),
    '',
    '### First view',
    '',
    'The files the page fetches before it shows the first grid of digits: index.html, the files it references,',
    'the CPU worker, the weights manifest and the DCGAN weights that the Generate tab runs by default.',
    '',
    markdownTable(['#', 'file', 'bytes', 'gzip', 'brotli'], firstViewRows, [0, 2, 3, 4]),
  ].join('\n');
}

async function main() {
  let options;
  try {
    ({ values: options } = parseArgs({
      options: {
        dist: { type: 'string' },
        json: { type: 'string' },
        help: { type: 'boolean', default: false },
      },
    }));
  } catch (error) {
    throw new InputError(`${error.message}\n\n${USAGE}`);
  }
  if (options.help) {
    console.log(USAGE);
    return;
  }

  const distDir = resolve(options.dist ?? process.env.DIST_DIR ?? join(REPO_ROOT, 'dist'));
  if (!existsSync(join(distDir, 'index.html'))) {
    throw new InputError(`${distDir}/index.html not found: run make build first, or pass --dist DIR`);
  }

  const paths = (await listFiles(distDir)).sort();
  console.error(`${SCRIPT}: compressing ${paths.length} files from ${distDir} (brotli quality 11 takes tens of seconds for a large wasm file)`);
  const files = [];
  for (const path of paths) {
    files.push({ path, ...compressedSizes(await readFile(join(distDir, path))) });
  }
  const firstView = await firstViewFiles(distDir);
  const total = sumSizes(files);
  const firstViewTotal = sumSizes(files.filter((file) => firstView.includes(file.path)));
  const report = { distDir, files, firstView, total, firstViewTotal };

  console.log(renderReport(report));
  if (options.json) {
    await writeFile(options.json, `${JSON.stringify(report, null, 2)}\n`);
    console.error(`${SCRIPT}: wrote ${options.json}`);
  }
}

try {
  await main();
} catch (error) {
  console.error(`${SCRIPT}: error: ${error instanceof InputError ? error.message : error.stack}`);
  process.exitCode = 1;
}
