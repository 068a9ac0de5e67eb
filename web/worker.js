// Starts a compute worker of the page. The page creates it as `worker.js?build=NAME`, where NAME
// is cpu-worker or gpu-worker, and posts `{ module }`: that build's wasm module, compiled once by
// the page for all its workers. The worker loads the build's wasm-bindgen glue (no-modules
// target) by URL, which a Content-Security-Policy of 'self' allows. The Rust code then takes
// over the messages (web/src/worker.rs) and announces itself with a ready message.
'use strict';

const build = new URL(self.location.href).searchParams.get('build');

const reportFailure = (error) => {
  const header = JSON.stringify({ Failed: { error: `${build}: starting the worker failed (${error}); check that worker.js, ${build}.js and ${build}_bg.wasm come from one build, then retry` } });
  self.postMessage({ id: 0, header });
};

self.onmessage = (event) => {
  self.onmessage = null;
  try {
    if (build !== 'cpu-worker' && build !== 'gpu-worker') {
      throw new Error(`unknown build ${JSON.stringify(build)}`);
    }
    // Defines the global wasm_bindgen.
    importScripts(`./${build}.js`);
    wasm_bindgen({ module_or_path: event.data.module }).catch(reportFailure);
  } catch (error) {
    reportFailure(error);
  }
};
