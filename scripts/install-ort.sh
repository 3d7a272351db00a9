#!/usr/bin/env bash
# Installs ONNX Runtime for Node.js (npm's onnxruntime-node), the client the
# [ort] tests use to check the ONNX files qfx exports, into a project-local
# folder: .deps/ort/ at the repository root, or $QFX_ORT_PREFIX.
#
#   bash scripts/install-ort.sh
#
# Idempotent: when the prefix already holds the pinned version (and its
# native binding) it changes nothing. Never writes outside the prefix and
# npm's cache in $HOME. Needs node and npm (scripts/install-deps.sh installs
# Debian's nodejs and npm) and HTTPS access to the npm registry; a private CA
# is trusted through NODE_EXTRA_CA_CERTS.
set -euo pipefail

version=1.30.0
repo="$(cd "$(dirname "$0")/.." && pwd)"
prefix="${QFX_ORT_PREFIX:-$repo/.deps/ort}"

log() { echo "install-ort: $*"; }
die() {
  echo "install-ort: error: $*" >&2
  exit 1
}

for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 ||
    die "'$tool' not found on PATH (run scripts/install-deps.sh first)"
done

pkg="$prefix/node_modules/onnxruntime-node"

# The version the prefix holds, or nothing: read from package.json by node
# itself, so no JSON tooling is needed.
installed_version() {
  [ -f "$pkg/package.json" ] || return 0
  node -e 'try { process.stdout.write(require(process.argv[1]).version) } catch (e) {}' \
    "$pkg/package.json"
}

# The package loads (native binding for this platform and this node included).
loads() {
  (cd "$prefix" && node -e 'require("onnxruntime-node")') >/dev/null 2>&1
}

if [ "$(installed_version)" = "$version" ] && loads; then
  log "onnxruntime-node $version present in $prefix"
  exit 0
fi

log "installing onnxruntime-node@$version into $prefix"
mkdir -p "$prefix"
# A package that does not load (an interrupted install, a removed binding)
# would be kept by npm as it is: reinstall it from scratch.
if [ -n "$(installed_version)" ]; then
  rm -rf "$pkg"
fi
# A package.json of its own keeps npm from walking up to a parent project.
if [ ! -f "$prefix/package.json" ]; then
  printf '{\n  "name": "qfx-ort-client",\n  "private": true\n}\n' >"$prefix/package.json"
fi
# ONNXRUNTIME_NODE_INSTALL=skip: the package's install script would otherwise
# download optional GPU libraries from a host outside the npm registry; the
# CPU binding the tests use ships inside the npm package.
(
  cd "$prefix"
  ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund \
    --no-package-lock --omit=dev --save-exact "onnxruntime-node@$version"
)

got="$(installed_version)"
[ "$got" = "$version" ] || die "npm installed '${got:-nothing}' instead of onnxruntime-node $version in $prefix"
if ! loads; then
  why="$( (cd "$prefix" && node -e 'require("onnxruntime-node")' 2>&1) | grep -m 1 -E 'Error' || true)"
  die "onnxruntime-node $version in $prefix does not load with node $(node --version): ${why:-unknown reason}"
fi
log "onnxruntime-node $version ready in $prefix"
