# Builds, serves and tests the workspace. `make test` is the single command that checks
# everything: Rust tests, the shared crate on wasm, the Trunk build and the browser tests.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

# Tools installed by scripts/install-tools.sh: wasm-opt comes from the npm package binaryen in
# tests/browser and must win over any other wasm-opt on PATH; trunk and wasm-bindgen come from
# cargo install.
CARGO_BIN := $(or $(CARGO_HOME),$(HOME)/.cargo)/bin
export PATH := $(CURDIR)/tests/browser/node_modules/.bin:$(CARGO_BIN):$(PATH)

# Trunk checks crates.io for a newer release on every run unless told not to. Trunk.toml's
# offline setting does not cover this check.
export TRUNK_SKIP_VERSION_CHECK := true

# Trunk builds with `cargo build --offline` (Trunk.toml sets offline), so fetch the crates that
# only the wasm target uses first.
TRUNK_RELEASE_BUILD := cargo fetch && trunk build --release

.PHONY: tools build serve test bench-browser size-report

tools:
	bash scripts/install-tools.sh

# Writes the page to dist/.
build: tools
	$(TRUNK_RELEASE_BUILD)

# Serves the page at http://127.0.0.1:8080 (set in Trunk.toml) and rebuilds on changes.
serve: tools
	cargo fetch
	trunk serve --release

# Chromium's software WebGPU (and wgpu) need XDG_RUNTIME_DIR, so a private one is made when unset.
test: tools
	cargo test --release
	cargo check -p shared --target wasm32-unknown-unknown --release
	$(TRUNK_RELEASE_BUILD)
	XDG_RUNTIME_DIR="$${XDG_RUNTIME_DIR:-$$(mktemp -d)}" node --test tests/browser/*.test.mjs

# Prints the page's cold load time, requests and batch times on the CPU and WebGPU as Markdown.
bench-browser: build
	XDG_RUNTIME_DIR="$${XDG_RUNTIME_DIR:-$$(mktemp -d)}" node bench/browser.mjs

# Prints the raw, gzip and brotli size of every file in dist/ and of the first view as Markdown.
size-report: build
	node bench/size-report.mjs
