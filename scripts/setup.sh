#!/usr/bin/env bash
# Installs what a bare machine needs before `npm test`, `npm run demo` or `npm run bench`:
# npm dependencies, then a Vulkan driver Dawn accepts when no adapter answers.
set -euo pipefail
cd "$(dirname "$0")/.."
# onnxruntime-node (a bench peer) bundles its CPU binaries; its install step would fetch CUDA ones from outside npm.
export ONNXRUNTIME_NODE_INSTALL="${ONNXRUNTIME_NODE_INSTALL:-skip}"

# Dependencies changed when package-lock.json is newer than npm's record of the last install (editing scripts or
# exports in package.json does not reinstall).
if [ ! -d node_modules/webgpu ] || [ ! -d node_modules/vitest ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "[setup] installing npm dependencies" >&2
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund >&2; else npm install --no-audit --no-fund >&2; fi
fi

bash scripts/ensure-vulkan.sh
