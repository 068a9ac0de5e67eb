// Compares the storage types of the weights file on every bundled model: file size, gzip size
// and the `trainer eval` metrics of each encoding, side by side.
//
// Usage: node bench/storage.mjs [--weights-dir DIR] [--data-dir DIR] [--trainer PATH] [--json FILE]
//
// Each model in --weights-dir (default web/weights) is re-encoded with `trainer convert` into a
// temporary folder as f16 and int8, and both are measured with `trainer eval --json` on the
// MNIST test set in --data-dir (default data/mnist). The GANs are always measured against the
// classifier in --weights-dir as it is, so only the generator's encoding changes. Convert from
// the most precise files you have: an f16 source gives f16 → int8, and re-encoding int8 files
// as f16 restores no precision. Build the trainer first: cargo build --release -p trainer.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Weights files and the `trainer eval` model argument of each. */
const MODELS = [
  ['dcgan.bin', 'dcgan'],
  ['cgan.bin', 'cgan'],
  ['autoencoder.bin', 'autoencoder'],
  ['vae.bin', 'vae'],
  ['vae-2d.bin', 'vae'],
  ['classifier.bin', 'classifier'],
];

const STORAGES = ['f16', 'int8'];

function parseArgs(argv) {
  const targetDir = process.env.CARGO_TARGET_DIR ?? join(REPO_ROOT, 'target');
  const options = {
    weightsDir: join(REPO_ROOT, 'web', 'weights'),
    dataDir: join(REPO_ROOT, 'data', 'mnist'),
    trainer: join(targetDir, 'release', 'trainer'),
    json: null,
  };
  const names = { '--weights-dir': 'weightsDir', '--data-dir': 'dataDir', '--trainer': 'trainer', '--json': 'json' };
  for (let i = 0; i < argv.length; i += 2) {
    const key = names[argv[i]];
    if (!key || argv[i + 1] === undefined) {
      throw new Error(`unknown option or missing value: ${argv[i]}; see the usage at the top of bench/storage.mjs`);
    }
    options[key] = resolve(argv[i + 1]);
  }
  if (!existsSync(options.trainer)) {
    throw new Error(`${options.trainer} not found: run cargo build --release -p trainer, or pass --trainer PATH`);
  }
  return options;
}

function trainer(options, args) {
  return execFileSync(options.trainer, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
}

function measure(options, model, file) {
  const args = ['eval', model, '--weights', file, '--data-dir', options.dataDir, '--json'];
  if (model === 'dcgan' || model === 'cgan') {
    args.push('--classifier', join(options.weightsDir, 'classifier.bin'));
  }
  const evaluation = JSON.parse(trainer(options, args));
  const bytes = readFileSync(file);
  return {
    bytes: bytes.length,
    gzipBytes: gzipSync(bytes, { level: 9 }).length,
    metrics: Object.fromEntries(evaluation.metrics.map((metric) => [metric.name, metric.value])),
  };
}

function main() {
  const options = parseArgs(process.argv.slice(2));
  const scratch = mkdtempSync(join(tmpdir(), 'storage-bench-'));
  const results = [];
  try {
    for (const [name, model] of MODELS) {
      const source = join(options.weightsDir, name);
      if (!existsSync(source) || !statSync(source).isFile()) {
        console.error(`skipping ${name}: not in ${options.weightsDir}`);
        continue;
      }
      for (const storage of STORAGES) {
        const file = join(scratch, `${storage}-${name}`);
        trainer(options, ['convert', '--weights', source, '--storage', storage, '--out', file]);
        console.error(`measuring ${name} as ${storage}`);
        results.push({ name, storage, ...measure(options, model, file) });
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }

  console.log('| file | storage | bytes | gzip bytes | metrics |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const result of results) {
    const metrics = Object.entries(result.metrics)
      .map(([metric, value]) => `${metric} ${Number(value.toPrecision(5))}`)
      .join(', ');
    console.log(`| ${result.name} | ${result.storage} | ${result.bytes} | ${result.gzipBytes} | ${metrics} |`);
  }
  if (options.json) {
    writeFileSync(options.json, `${JSON.stringify(results, null, 2)}\n`);
  }
}

try {
  main();
} catch (error) {
  console.error(`storage benchmark failed: ${error.message}`);
  process.exit(1);
}
