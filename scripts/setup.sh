#!/usr/bin/env bash
# Installs what a bare machine needs before `npm test`, `npm run demo` or `npm run bench`:
# npm dependencies, then a Vulkan driver Dawn accepts when no adapter answers.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules/webgpu ] || [ ! -d node_modules/vitest ] || [ package.json -nt node_modules/.package-lock.json ]; then
  echo "[setup] installing npm dependencies" >&2
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund >&2; else npm install --no-audit --no-fund >&2; fi
fi

bash scripts/ensure-vulkan.sh
