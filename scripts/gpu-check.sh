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
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
if ! ls /usr/share/vulkan/icd.d/*nvidia* /etc/vulkan/icd.d/*nvidia* >/dev/null 2>&1; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
mkdir -p /tmp/nodebin
if command -v xz >/dev/null; then xz -dc .devcarry/node.xz > /tmp/nodebin/node; else python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open('.devcarry/node.xz'), open('/tmp/nodebin/node','wb'))"; fi
chmod +x /tmp/nodebin/node
export PATH=/tmp/nodebin:$PATH
python3 -c "import lzma,tarfile; tarfile.open(fileobj=lzma.open('.devcarry/nm.tar.xz')).extractall('.')"
export XDG_RUNTIME_DIR=/tmp/xdg; mkdir -p $XDG_RUNTIME_DIR
export LPO_ADAPTER="${LPO_ADAPTER:-}"
vitest="node node_modules/vitest/vitest.mjs"

echo "== adapter"; node scripts/probe-adapter.mjs 2>&1 | tee "$OUT/adapter.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | tee -a "$OUT/adapter.txt"
node build.mjs
echo "== demo"; node dist/cli.js demo 2>&1 | grep -v '^Warning' | tee "$OUT/demo.log"
echo "== tests"; timeout 240 $vitest run 2>&1 | grep -v '^Warning' > "$OUT/tests.log"; echo "tests rc=$?" >> "$OUT/tests.log"
echo "== verify-reference"; node dist/cli.js verify-reference test/fixtures/golden 2>&1 | grep -v '^Warning' > "$OUT/verify.log"; echo "verify rc=$?" >> "$OUT/verify.log"
echo "== torch peer"; timeout 120 python3 bench/torch_peer.py > "$OUT/torch.json" 2> "$OUT/torch.err"
echo "== bench"; timeout 300 $vitest bench --run 2>&1 | grep -v '^Warning' > "$OUT/bench.log"
cp bench/results/*.json "$OUT/" 2>/dev/null
echo "== summary"
grep -E "Test Files|Tests " "$OUT/tests.log"; grep -E "FAIL|×" "$OUT/tests.log" | head -20
tail -4 "$OUT/verify.log"
grep -E "PASS|FAIL|gpu.js|default|tiled|conv|attention|groupnorm|unet|peak" "$OUT/bench.log" | head -60
python3 -c "import json; d=json.load(open('$OUT/torch.json')); [print(k, v) for k, v in d.items()]" 2>/dev/null | head -40
