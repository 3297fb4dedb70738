#!/usr/bin/env bash
# The device check for a lent NVIDIA machine (no Node, no npm, no network there). docs/DEVICE-CHECK.md says
# how to call it with the device tool; in short:
#
#   bash scripts/gpu-check.sh prepare   # here: pack Node, node_modules and the Vulkan loader into ignored folders
#                                       # (.devcarry, .gl) and check that what travels stays under the tool's 64 MiB
#   bash scripts/gpu-check.sh dryrun    # here, no GPU: prepare, copy what the tool would send into a temp folder
#                                       # and run the f16 profile there on lavapipe (unpacking, adapter probe, the
#                                       # kernel build test, the ratio table without peers), then check $OUT
#   bash scripts/gpu-check.sh run       # there (device tool, carry .devcarry and .gl): tests, benches, PyTorch peer
#   bash scripts/gpu-check.sh run f16   # there: issue 12's run (f16 / tensor-core tests, f16 bench, PyTorch
#                                       # fp16/TF32/FP32 peers, the ratio table), ≤ ~9 min, 5 files under $OUT
#
# `run` writes everything under $OUT (tests.log, bench.log, torch.json, verify.log, bench JSON) and prints a summary last.
# The f16 profile writes adapter.txt, f16.log (every stage), f16-ours.json, torch16.json and f16-report.json (the
# acceptance rows: our ms, the peer's, the fraction and the target) and prints the ratio table last.
# Knobs: STAGES (the stage list), T_<STAGE> (a stage's cap in seconds), SKIP_DEBS=1 (do not unpack .gl into /:
# for runs that are not on the lent machine), NODEBIN (where the carried node is unpacked, default /tmp/nodebin).
set -uo pipefail
cd "$(dirname "$0")/.."
mode="${1:-run}"

# What the device tool sends: tracked files, untracked files git does not ignore (NUL-separated paths).
travelling() { git ls-files -z --cached --others --exclude-standard; }

if [ "$mode" = prepare ] || [ "$mode" = dryrun ]; then
  mkdir -p .devcarry .gl
  # Both folders must be ignored (else they would travel twice, as tree and as carry). The exclude file may
  # not exist yet (a fresh clone has no .git/info), and .git may be a file (a worktree): ask git for the path.
  ex=$(git rev-parse --git-path info/exclude)
  mkdir -p "$(dirname "$ex")"
  touch "$ex"
  grep -qx '/.devcarry/' "$ex" || echo '/.devcarry/' >> "$ex"
  grep -qx '/.gl/' "$ex" || echo '/.gl/' >> "$ex"
  [ -z "$(git ls-files --others --exclude-standard .devcarry .gl)" ] || { echo "prepare: .devcarry or .gl is not ignored by git" >&2; exit 1; }
  [ -f .devcarry/node.xz ] || xz -T2 -6 -c "$(command -v node)" > .devcarry/node.xz
  # What the device runs: vitest (it transforms the TypeScript sources there; nothing to build), tinybench,
  # webgpu's linux-x64 binary, the pure-JS readers. Left out: other platforms' binaries, the compilers'
  # types, and the peers only bench/peers.bench.ts uses (onnxruntime-node: 294 MB; tfjs: 70 MB).
  tar -cf - --exclude='node_modules/webgpu/dist/darwin-universal' --exclude='node_modules/webgpu/dist/win32-*' \
    --exclude='node_modules/webgpu/dist/linux-arm64' --exclude='node_modules/typescript' --exclude='node_modules/@types' \
    --exclude='node_modules/onnxruntime-node' --exclude='node_modules/onnxruntime-common' --exclude='node_modules/@tensorflow' \
    --exclude='node_modules/.cache' --exclude='node_modules/.vite' --exclude='node_modules/.vitest' node_modules | xz -T2 -6 > .devcarry/nm.tar.xz
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  mkdir -p /tmp/amd64/partial
  if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
    apt-get $o update -qq >/dev/null 2>&1
    (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null 2>&1)
  fi
  ls .gl/libvulkan1_*.deb >/dev/null 2>&1 || { echo "prepare: could not download libvulkan1 into .gl/" >&2; exit 1; }
  # The device tool sends tracked files, untracked files git does not ignore and the carried folders: ≤ 64 MiB.
  tree=$(travelling | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
  carry=$(du -sb .devcarry .gl | awk '{s += $1} END {print s}')
  total=$((tree + carry))
  printf 'prepare: working tree %.1f MiB + carried (.devcarry, .gl) %.1f MiB = %.1f MiB of 64\n' "$(echo "$tree / 1048576" | bc -l)" "$(echo "$carry / 1048576" | bc -l)" "$(echo "$total / 1048576" | bc -l)"
  du -sh .devcarry/* .gl
  [ "$total" -le $((64 * 1048576)) ] || { echo "prepare: over the 64 MiB the device tool carries" >&2; exit 1; }
  [ "$mode" = prepare ] && exit 0

  # dryrun: the device call rehearsed on this machine. A temp folder gets exactly what the tool would send
  # (the travelling tree, then .devcarry and .gl, no node_modules), and the f16 profile runs there on the
  # local adapter with the stages that need no NVIDIA GPU and no PyTorch; the peer stage is left out, so the
  # ratio table must come out with every row 'missing' (not a crash). SKIP_DEBS: nothing is unpacked into /.
  dry=$(mktemp -d /tmp/gpu-check-dry.XXXXXX)
  trap 'rm -rf "$dry"' EXIT
  travelling | tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$dry"
  cp -r .devcarry .gl "$dry/"
  [ ! -e "$dry/node_modules" ] || { echo "dryrun: node_modules would travel (is it ignored?)" >&2; exit 1; }
  mkdir -p "$dry/out"
  echo "dryrun: running the f16 profile in $dry"
  (cd "$dry" && OUT="$dry/out" SKIP_DEBS=1 NODEBIN="$dry/nodebin" STAGES="${DRY_STAGES:-adapter16 f16device ratio16}" bash scripts/gpu-check.sh run f16)
  bad=0
  files=$(find "$dry/out" -type f | wc -l)
  echo "dryrun: \$OUT holds $files files: $(cd "$dry/out" && find . -type f | sed 's|^\./||' | sort | tr '\n' ' ')"
  [ "$files" -le 8 ] || { echo "dryrun: FAIL more than the 8 files the tool returns" >&2; bad=1; }
  if find "$dry/out" -mindepth 1 | sed "s|^$dry/out/||" | grep -q '[^A-Za-z0-9._/-]'; then echo "dryrun: FAIL a name outside [A-Za-z0-9._-]" >&2; bad=1; fi
  grep -q '^adapter: ' "$dry/out/adapter.txt" 2>/dev/null || { echo "dryrun: FAIL adapter.txt has no adapter line (node or webgpu did not unpack/run)" >&2; bad=1; }
  grep -q '^f16device rc=0$' "$dry/out/f16.log" 2>/dev/null || { echo "dryrun: FAIL the f16 device build test did not pass (f16.log)" >&2; bad=1; }
  grep -q '^ratio16 rc=0$' "$dry/out/f16.log" 2>/dev/null || { echo "dryrun: FAIL the ratio table did not run (f16.log)" >&2; bad=1; }
  [ -s "$dry/out/f16-report.json" ] || { echo "dryrun: FAIL no f16-report.json" >&2; bad=1; }
  [ "$bad" = 0 ] && echo "dryrun: OK (payload within 64 MiB; unpack, adapter probe, kernel builds and the report ran from the payload alone)"
  exit "$bad"
fi

[ -f .devcarry/node.xz ] && [ -f .devcarry/nm.tar.xz ] || { echo "run: .devcarry/node.xz or nm.tar.xz missing: run 'bash scripts/gpu-check.sh prepare' here and carry .devcarry and .gl" >&2; exit 1; }

OUT="${OUT:-/tmp/gpu-check-out}"
mkdir -p "$OUT"
if [ -z "${SKIP_DEBS:-}" ]; then for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; fi
# The lent machines keep NVIDIA's Vulkan ICD under /usr/local/nvidia, where the loader does not look.
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
NODEBIN="${NODEBIN:-/tmp/nodebin}"
mkdir -p "$NODEBIN"
if command -v xz >/dev/null; then xz -dc .devcarry/node.xz > "$NODEBIN/node"; else python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open('.devcarry/node.xz'), open(sys.argv[1],'wb'))" "$NODEBIN/node"; fi
chmod +x "$NODEBIN/node"
export PATH="$NODEBIN:$PATH"
if [ ! -d node_modules/vitest ]; then
  if command -v xz >/dev/null; then xz -dc .devcarry/nm.tar.xz | tar -xf -; else python3 -c "import lzma,tarfile; tarfile.open(fileobj=lzma.open('.devcarry/nm.tar.xz')).extractall('.')"; fi
fi
export XDG_RUNTIME_DIR=/tmp/xdg; mkdir -p $XDG_RUNTIME_DIR
export LPO_ADAPTER="${LPO_ADAPTER:-}"
vitest="node node_modules/vitest/vitest.mjs"

profile="${2:-default}"
stage() { # name, timeout (s), command…: runs a stage, its log under $OUT, and never stops the script
  local name=$1 limit=$2; shift 2
  echo "== $name ($(date +%T))"
  timeout "$limit" "$@" 2>&1 | grep -v '^Warning' > "$OUT/$name.log"
  echo "$name rc=${PIPESTATUS[0]}" >> "$OUT/$name.log"
  cp bench/results/*.json "$OUT/" 2>/dev/null || true
}
f16stage() { # like stage, but into the one f16.log (the device tool returns at most 8 files)
  local name=$1 limit=$2; shift 2
  echo "== $name ($(date +%T))" | tee -a "$OUT/f16.log"
  timeout "$limit" "$@" 2>&1 | grep -v '^Warning' >> "$OUT/f16.log"
  echo "$name rc=${PIPESTATUS[0]}" | tee -a "$OUT/f16.log"
}
if [ "$profile" = f16 ]; then
  # Caps sum to ~480 s (+ unpacking ~30 s) inside the device tool's 600 s per command.
  stages="${STAGES:-adapter16 f16tests f16bench torch16 ratio16}"
else
  stages="${STAGES:-adapter matmul tests torch convattn}"
fi
for s in $stages; do
  case $s in
    adapter) { node scripts/probe-adapter.mjs; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; } 2>&1 | tee "$OUT/adapter.txt" ;;
    adapter16) { timeout 30 node scripts/probe-f16.mjs; ! command -v nvidia-smi >/dev/null || nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; } 2>&1 | grep -v '^Warning' | tee "$OUT/adapter.txt" ;;
    matmul) stage matmul "${T_MATMUL:-90}" $vitest bench --run bench/matmul.bench.ts ;;
    tests) stage tests "${T_TESTS:-75}" $vitest run ;;
    torch) stage torch "${T_TORCH:-40}" python3 bench/torch_peer.py ;;
    convattn) stage convattn "${T_CONVATTN:-50}" $vitest bench --run bench/conv.bench.ts bench/attention.bench.ts ;;
    unet) stage unet "${T_UNET:-90}" $vitest bench --run bench/unet.bench.ts ;;
    verify) node build.mjs && stage verify 30 node dist/cli.js verify-reference test/fixtures/golden ;;
    f16tests) f16stage f16tests "${T_F16TESTS:-150}" $vitest run test/f16-matmul.test.ts test/f16-conv2d.test.ts test/f16-attention.test.ts test/f16-lora.test.ts test/mixed-precision.test.ts test/f16-device.test.ts ;;
    f16device) f16stage f16device "${T_F16DEVICE:-60}" $vitest run test/f16-device.test.ts ;;
    f16bench) LPO_BENCH_F16_OUT="$OUT/f16-ours.json" f16stage f16bench "${T_F16BENCH:-240}" $vitest bench --run bench/f16.bench.ts ;;
    torch16) echo "== torch16 ($(date +%T))" | tee -a "$OUT/f16.log"
      PYTHONUNBUFFERED=1 timeout "${T_TORCH16:-75}" python3 bench/torch_peer_f16.py > "$OUT/torch16.json" 2>> "$OUT/f16.log"; echo "torch16 rc=$?" | tee -a "$OUT/f16.log" ;;
    ratio16) f16stage ratio16 20 python3 scripts/f16-ratios.py "$OUT/f16-ours.json" "$OUT/torch16.json" "$OUT/f16-report.json" ;;
  esac
done
echo "== summary ($(date +%T))"
if [ "$profile" = f16 ]; then
  grep -E "Test Files|Tests |rc=| FAIL|×" "$OUT/f16.log" 2>/dev/null | head -40
  sed -n '/^== ratio16/,$p' "$OUT/f16.log" 2>/dev/null
  exit 0
fi
grep -E "Test Files|Tests |rc=" "$OUT/tests.log" 2>/dev/null; grep -E " FAIL|×" "$OUT/tests.log" 2>/dev/null | head -20
grep -E "PASS|FAIL|MISMATCH|rc=" "$OUT/matmul.log" 2>/dev/null | head -20
