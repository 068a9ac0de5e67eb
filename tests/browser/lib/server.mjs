// Static file server for the browser tests: serves one folder (the Trunk output) on 127.0.0.1
// at an ephemeral port, and lets a test make a path return 404 or serve a different body.

import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, resolve, sep } from 'node:path';

/** Content types by file extension; anything else is served as application/octet-stream. */
const MIME_TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.bin': 'application/octet-stream',
};

/** Returns the content type for a file path from its extension. */
export function contentType(filePath) {
  return MIME_TYPES[extname(filePath).toLowerCase()] ?? 'application/octet-stream';
}

/**
 * Starts a server for the files under `root` and returns a handle with these members. With
 * `prefix` (such as `/digits/`) the files are served under that sub-path only, and `headers` are
 * added to every response (for example a Content-Security-Policy).
 *
 * - `url`: the base URL with the prefix, ending in `/`.
 * - `requests`: every request path, in order.
 * - `failPath(path)`: return 404 for a URL path such as `/weights/dcgan.bin`.
 * - `overridePath(path, body)`: serve `body` for a URL path in place of the file.
 * - `holdPath(path)`: keep requests for a URL path waiting without a response until
 *   `restorePath`.
 * - `restorePath(path)`: undo `failPath`, `overridePath` and `holdPath` for a URL path. Waiting
 *   requests then get their response.
 * - `close()`: stop the server.
 */
export async function startStaticServer(root, { prefix = '/', headers = {} } = {}) {
  const rootDir = resolve(root);
  const send = (response, request, status, type, body) => sendWith(headers, response, request, status, type, body);
  const failing = new Set();
  const overrides = new Map();
  const waiting = new Map();
  const requests = [];

  const server = createServer(async (request, response) => {
    let urlPath;
    try {
      urlPath = decodeURIComponent(new URL(request.url, 'http://127.0.0.1').pathname);
    } catch {
      send(response, request, 400, 'text/plain; charset=utf-8', `invalid request path ${request.url}\n`);
      return;
    }
    requests.push(urlPath);
    if (!urlPath.startsWith(prefix)) {
      send(response, request, 404, 'text/plain; charset=utf-8', `${urlPath} is outside ${prefix}\n`);
      return;
    }

    if (request.method !== 'GET' && request.method !== 'HEAD') {
      send(response, request, 405, 'text/plain; charset=utf-8', `method ${request.method} not allowed\n`);
      return;
    }
    if (waiting.has(urlPath)) {
      await new Promise((release) => waiting.get(urlPath).push(release));
    }
    if (failing.has(urlPath)) {
      send(response, request, 404, 'text/plain; charset=utf-8', `${urlPath} not found (made to fail by the test)\n`);
      return;
    }
    if (overrides.has(urlPath)) {
      send(response, request, 200, contentType(urlPath), overrides.get(urlPath));
      return;
    }

    const filePath = await resolveFile(rootDir, `/${urlPath.slice(prefix.length)}`);
    if (filePath === null) {
      send(response, request, 404, 'text/plain; charset=utf-8', `${urlPath} not found\n`);
      return;
    }
    try {
      send(response, request, 200, contentType(filePath), await readFile(filePath));
    } catch (error) {
      console.error(`static server: reading ${filePath} for ${urlPath} failed: ${error.message}`);
      send(response, request, 500, 'text/plain; charset=utf-8', `reading ${urlPath} failed: ${error.message}\n`);
    }
  });

  await new Promise((resolveListen, rejectListen) => {
    server.once('error', rejectListen);
    server.listen(0, '127.0.0.1', resolveListen);
  });
  const { port } = server.address();

  return {
    url: `http://127.0.0.1:${port}${prefix}`,
    requests,
    failPath(path) {
      failing.add(path);
    },
    overridePath(path, body) {
      overrides.set(path, Buffer.from(body));
    },
    holdPath(path) {
      waiting.set(path, []);
    },
    restorePath(path) {
      failing.delete(path);
      overrides.delete(path);
      for (const release of waiting.get(path) ?? []) {
        release();
      }
      waiting.delete(path);
    },
    close() {
      for (const path of [...waiting.keys()]) {
        this.restorePath(path);
      }
      server.closeAllConnections();
      return new Promise((resolveClose) => server.close(() => resolveClose()));
    },
  };
}

/**
 * Maps a URL path to a file under `rootDir`, or returns null when there is none.
 * A path ending in `/` serves that folder's index.html. Paths that would leave `rootDir` are
 * rejected.
 */
async function resolveFile(rootDir, urlPath) {
  const relative = urlPath.endsWith('/') ? `${urlPath}index.html` : urlPath;
  const filePath = normalize(join(rootDir, relative));
  if (filePath !== rootDir && !filePath.startsWith(rootDir + sep)) {
    return null;
  }
  try {
    const info = await stat(filePath);
    return info.isFile() ? filePath : null;
  } catch {
    return null;
  }
}

function sendWith(headers, response, request, status, type, body) {
  response.writeHead(status, {
    ...headers,
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
  });
  response.end(request.method === 'HEAD' ? undefined : body);
}
