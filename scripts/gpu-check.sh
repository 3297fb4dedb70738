#!/usr/bin/env bash
# The device check for a lent NVIDIA machine (no Node, no npm, no network there).
#
#   bash scripts/gpu-check.sh prepare   # here: pack Node, node_modules and the Vulkan loader into ignored folders
#   bash scripts/gpu-check.sh run       # there (device tool, carry .devcarry and .gl): tests, benches, PyTorch peer
#
# `run` writes everything under $OUT (tests.log, bench.log, torch.json, verify.log, bench JSON) and prints a summary last.
set -uo pipefail
cd "$(dirname "$0")/.."
mode="${1:-run}"

if [ "$mode" = prepare ]; then
  mkdir -p .devcarry .gl
  grep -qx '/.devcarry/' .git/info/exclude || echo '/.devcarry/' >> .git/info/exclude
  grep -qx '/.gl/' .git/info/exclude || echo '/.gl/' >> .git/info/exclude
  [ -f .devcarry/node.xz ] || xz -T2 -6 -c "$(command -v node)" > .devcarry/node.xz
  tar -cf - --exclude='node_modules/webgpu/dist/darwin-universal' --exclude='node_modules/webgpu/dist/win32-*' \
    --exclude='node_modules/webgpu/dist/linux-arm64' --exclude='node_modules/typescript' --exclude='node_modules/@types' \
    --exclude='node_modules/.cache' --exclude='node_modules/.vite' --exclude='node_modules/.vitest' node_modules | xz -T2 -6 > .devcarry/nm.tar.xz
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  mkdir -p /tmp/amd64/partial
  apt-get $o update -qq >/dev/null 2>&1
  (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null 2>&1)
  du -sh .devcarry .gl
  exit 0
fi

OUT="${OUT:-/tmp/gpu-check-out}"
mkdir -p "$OUT"
if [ -z "${SKIP_DEBS:-}" ]; then for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; fi
# The lent machines keep NVIDIA's Vulkan ICD under /usr/local/nvidia, where the loader does not look.
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
mkdir -p /tmp/nodebin
if command -v xz >/dev/null; then xz -dc .devcarry/node.xz > /tmp/nodebin/node; else python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open('.devcarry/node.xz'), open('/tmp/nodebin/node','wb'))"; fi
chmod +x /tmp/nodebin/node
export PATH=/tmp/nodebin:$PATH
if [ ! -d node_modules/vitest ]; then
  if command -v xz >/dev/null; then xz -dc .devcarry/nm.tar.xz | tar -xf -; else python3 -c "import lzma,tarfile; tarfile.open(fileobj=lzma.open('.devcarry/nm.tar.xz')).extractall('.')"; fi
fi
export XDG_RUNTIME_DIR=/tmp/xdg; mkdir -p $XDG_RUNTIME_DIR
export LPO_ADAPTER="${LPO_ADAPTER:-}"
vitest="node node_modules/vitest/vitest.mjs"

stage() { # name, timeout (s), command…: runs a stage, its log under $OUT, and never stops the script
  local name=$1 limit=$2; shift 2
  echo "== $name ($(date +%T))"
  timeout "$limit" "$@" 2>&1 | grep -v '^Warning' > "$OUT/$name.log"
  echo "$name rc=${PIPESTATUS[0]}" >> "$OUT/$name.log"
  cp bench/results/*.json "$OUT/" 2>/dev/null || true
}
stages="${STAGES:-adapter matmul tests torch convattn}"
for s in $stages; do
  case $s in
    adapter) { node scripts/probe-adapter.mjs; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; } 2>&1 | tee "$OUT/adapter.txt" ;;
    matmul) stage matmul "${T_MATMUL:-90}" $vitest bench --run bench/matmul.bench.ts ;;
    tests) stage tests "${T_TESTS:-75}" $vitest run ;;
    torch) stage torch "${T_TORCH:-40}" python3 bench/torch_peer.py ;;
    convattn) stage convattn "${T_CONVATTN:-50}" $vitest bench --run bench/conv.bench.ts bench/attention.bench.ts ;;
    unet) stage unet "${T_UNET:-90}" $vitest bench --run bench/unet.bench.ts ;;
    verify) node build.mjs && stage verify 30 node dist/cli.js verify-reference test/fixtures/golden ;;
  esac
done
echo "== summary ($(date +%T))"
grep -E "Test Files|Tests |rc=" "$OUT/tests.log" 2>/dev/null; grep -E " FAIL|×" "$OUT/tests.log" 2>/dev/null | head -20
grep -E "PASS|FAIL|MISMATCH|rc=" "$OUT/matmul.log" 2>/dev/null | head -20
