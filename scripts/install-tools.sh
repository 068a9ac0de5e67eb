#!/usr/bin/env bash
# Installs the tools that `make test` needs, skipping each one that is already present:
#   - the wasm32-unknown-unknown Rust target,
#   - trunk (pinned below) and wasm-bindgen-cli (the wasm-bindgen version in Cargo.lock),
#   - the browser test packages in tests/browser (playwright-core and binaryen, whose wasm-opt
#     Trunk uses), installed with `npm ci` from the committed package-lock.json,
#   - Debian packages for headless Chromium with software WebGPU.
#
# Safe to run again; it only prints what it checks when everything is in place.
# Needs rustup, cargo, Node.js 20 or newer with npm, and apt-get (as root or through sudo) when a
# Debian package is missing.

set -euo pipefail

TRUNK_VERSION=0.21.14
NODE_MIN_MAJOR=20
APT_PACKAGES=(chromium chromium-driver mesa-vulkan-drivers)

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BROWSER_TESTS="$REPO_ROOT/tests/browser"
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$BROWSER_TESTS/node_modules/.bin:$CARGO_BIN:$PATH"

log() {
  printf 'install-tools: %s\n' "$*"
}

fail() {
  printf 'install-tools: error: %s\n' "$*" >&2
  exit 1
}

# Prints the version of package $1 recorded in Cargo.lock.
locked_version() {
  awk -v name="$1" '
    $0 == "name = \"" name "\"" { found = 1; next }
    found && /^version = / { gsub(/"/, "", $3); print $3; exit }
  ' "$REPO_ROOT/Cargo.lock"
}

install_rust_target() {
  command -v rustup >/dev/null || fail "rustup not found; install Rust from https://rustup.rs"
  if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    log "rust target wasm32-unknown-unknown: present"
  else
    log "rust target wasm32-unknown-unknown: installing"
    rustup target add wasm32-unknown-unknown
  fi
}

install_trunk() {
  local found
  found="$(trunk --version 2>/dev/null || true)"
  if [[ "$found" == "trunk $TRUNK_VERSION" ]]; then
    log "trunk $TRUNK_VERSION: present"
  else
    log "trunk $TRUNK_VERSION: installing (found: ${found:-none}; takes several minutes)"
    cargo install trunk --version "$TRUNK_VERSION" --locked
  fi
}

install_wasm_bindgen() {
  [[ -f "$REPO_ROOT/Cargo.lock" ]] || fail "Cargo.lock not found in $REPO_ROOT; run cargo generate-lockfile"
  local wanted found
  wanted="$(locked_version wasm-bindgen)"
  [[ -n "$wanted" ]] || fail "wasm-bindgen not found in Cargo.lock"
  # The CLI must match the library version exactly, or wasm-bindgen rejects the wasm file.
  # Trunk.toml pins the same version under [tools].
  grep -qx "wasm_bindgen = \"$wanted\"" "$REPO_ROOT/Trunk.toml" \
    || fail "Trunk.toml [tools] wasm_bindgen does not match Cargo.lock's wasm-bindgen $wanted; update Trunk.toml"

  found="$(wasm-bindgen --version 2>/dev/null || true)"
  if [[ "$found" == "wasm-bindgen $wanted" ]]; then
    log "wasm-bindgen-cli $wanted: present"
  else
    log "wasm-bindgen-cli $wanted: installing (found: ${found:-none}; takes several minutes)"
    # Without --locked, so cargo resolves the CLI's dependencies against current crates.io.
    cargo install wasm-bindgen-cli --version "$wanted"
  fi
}

install_apt_packages() {
  local missing=()
  local package
  for package in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$package")
    fi
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    log "apt packages ${APT_PACKAGES[*]}: present"
    return
  fi

  command -v apt-get >/dev/null || fail "missing ${missing[*]} and apt-get not found; install them by hand"
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || fail "missing ${missing[*]}; installing needs root or sudo"
    sudo=(sudo)
  fi
  log "apt packages ${missing[*]}: installing"
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

install_node_packages() {
  command -v node >/dev/null || fail "node not found; install Node.js $NODE_MIN_MAJOR or newer"
  command -v npm >/dev/null || fail "npm not found; install it with Node.js $NODE_MIN_MAJOR or newer"
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  ((major >= NODE_MIN_MAJOR)) || fail "Node.js $(node --version) is too old; install $NODE_MIN_MAJOR or newer"

  # npm writes node_modules/.package-lock.json on every install, so one older than
  # package-lock.json means the lock changed since.
  local installed="$BROWSER_TESTS/node_modules/.package-lock.json"
  if [[ -f "$installed" && ! "$BROWSER_TESTS/package-lock.json" -nt "$installed" \
        && -x "$BROWSER_TESTS/node_modules/.bin/wasm-opt" ]]; then
    log "npm packages in tests/browser: present"
  else
    log "npm packages in tests/browser: installing"
    # playwright-core downloads no browser. The variable stops any later version from doing so.
    (cd "$BROWSER_TESTS" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
  fi

  # Trunk takes the first wasm-opt on PATH and, being offline, fails unless its version matches
  # Trunk.toml. Debian 12 ships binaryen 108, so check that the npm one comes first.
  local wanted found
  wanted="$(sed -n 's/^wasm_opt = "\(.*\)"$/\1/p' "$REPO_ROOT/Trunk.toml")"
  [[ -n "$wanted" ]] || fail "Trunk.toml has no [tools] wasm_opt version"
  found="$(wasm-opt --version)"
  [[ "$found" == *"($wanted)"* ]] \
    || fail "wasm-opt on PATH ($(command -v wasm-opt)) reports '$found', expected $wanted (binaryen in tests/browser/package.json)"
  log "wasm-opt $wanted: present"
}

install_apt_packages
install_rust_target
install_trunk
install_wasm_bindgen
install_node_packages
log "all tools are installed"
