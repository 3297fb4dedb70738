// The device facts issue 12 depends on, printed first in `scripts/gpu-check.sh run f16`: the adapter with
// Dawn's experimental toggles (allow_unsafe_apis, vulkan_enable_f16_on_nvidia) as src/gpu/device.ts asks
// for them, its f16 / subgroup / subgroup-matrix features and configs, the limits the fragment kernels
// plan with, and whether a minimal subgroup-matrix shader in the template syntax kernels/lib/frag_sm.wgsl
// uses (subgroupMatrixLoad<T, row_major>, subgroupMatrixStore<col_major>, MultiplyAccumulate) compiles
// and runs correctly (one 16×16×16-or-first-config product against the host). Exit 0 unless no adapter.
process.env.XDG_RUNTIME_DIR ??= `/tmp/xdg-runtime-${process.getuid?.() ?? 0}`;
const { create, globals } = await import('webgpu');
Object.assign(globalThis, globals);
const gpu = create(['disable-dawn-features=timestamp_quantization', 'enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia']);
const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
if (!adapter) { console.error('no adapter'); process.exit(1); }
const info = adapter.info;
const feats = [...adapter.features].sort();
const configs = [...(info.subgroupMatrixConfigs ?? [])].map((c) => ({ componentType: c.componentType, resultComponentType: c.resultComponentType, M: c.M, N: c.N, K: c.K }));
const lim = adapter.limits;
console.log(`adapter: ${info.vendor} / ${info.architecture} / ${info.description}`);
console.log(`features: ${feats.join(' ')}`);
console.log(`subgroup sizes: ${info.subgroupMinSize}..${info.subgroupMaxSize}; maxComputeWorkgroupStorageSize ${lim.maxComputeWorkgroupStorageSize}; maxComputeInvocationsPerWorkgroup ${lim.maxComputeInvocationsPerWorkgroup}`);
console.log(`subgroupMatrixConfigs: ${JSON.stringify(configs)}`);
const want = ['shader-f16', 'subgroups', 'timestamp-query', 'chromium-experimental-subgroup-matrix'].filter((f) => adapter.features.has(f));
const device = await adapter.requestDevice({ requiredFeatures: want, requiredLimits: { maxComputeWorkgroupStorageSize: lim.maxComputeWorkgroupStorageSize } });
console.log(`device features: ${[...device.features].sort().join(' ')}`);
const cfg = configs.find((c) => c.componentType === 'f16' && c.resultComponentType === 'f32' && c.M === 16 && c.N === 16 && c.K === 16)
  ?? configs.find((c) => c.componentType === 'f16' && c.resultComponentType === 'f32');
if (!cfg || !device.features.has('chromium-experimental-subgroup-matrix')) {
  console.log('subgroup-matrix probe: skipped (no f16→f32 configuration on this device)');
  process.exit(0);
}
const { M, N, K } = cfg;
const SG = info.subgroupMaxSize;
// C (M × N) = A (M × K, row-major) · B (K × N, stored n-major: read col_major), stored col_major then
// re-read: exercises both majorness forms of load and store.
const code = `enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
const M = ${M}u; const N = ${N}u; const K = ${K}u;
alias L = subgroup_matrix_left<f16, K, M>;
alias R = subgroup_matrix_right<f16, N, K>;
alias C = subgroup_matrix_result<f32, N, M>;
@group(0) @binding(0) var<storage, read> a: array<f16>;
@group(0) @binding(1) var<storage, read> bt: array<f16>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
var<workgroup> sa: array<f16, M * K>;
var<workgroup> sc: array<f32, M * N>;
@compute @workgroup_size(${SG})
fn main(@builtin(local_invocation_index) lid: u32) {
  for (var i = lid; i < M * K; i += ${SG}u) { sa[i] = a[i]; }
  workgroupBarrier();
  let l = subgroupMatrixLoad<L, row_major>(&sa, 0u, K);
  let r = subgroupMatrixLoad<R, col_major>(&bt, 0u, K);
  var acc = C();
  acc = subgroupMatrixMultiplyAccumulate(l, r, acc);
  subgroupMatrixStore<col_major>(&sc, 0u, acc, M);
  workgroupBarrier();
  for (var i = lid; i < M * N; i += ${SG}u) { c[(i % M) * N + i / M] = sc[i]; }
}`;
device.pushErrorScope('validation');
const module = device.createShaderModule({ code });
const ci = await module.getCompilationInfo();
const pipe = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
const err = await device.popErrorScope();
if (err || ci.messages.some((m) => m.type === 'error')) {
  console.log(`subgroup-matrix probe: COMPILE ERROR ${err?.message ?? ''} ${ci.messages.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join(' | ')}`);
  process.exit(0);
}
const half = (x) => { const f = new Float32Array([x]); const u = new Uint32Array(f.buffer)[0]; return ((u >>> 16) & 0x8000) | ((((u >>> 23) & 0xff) - 112) << 10) | ((u >>> 13) & 0x3ff); };
const av = Array.from({ length: M * K }, (_, i) => ((i * 7) % 11) / 8 - 0.5);
const bv = Array.from({ length: N * K }, (_, i) => ((i * 5) % 13) / 8 - 0.75); // bt[n * K + k]
const buf = (arr, usage) => { const b = device.createBuffer({ size: Math.max(16, arr.byteLength), usage }); device.queue.writeBuffer(b, 0, arr); return b; };
const S = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
const ab = buf(new Uint16Array(av.map((x) => (x === 0 ? 0 : half(x)))), S);
const bb = buf(new Uint16Array(bv.map((x) => (x === 0 ? 0 : half(x)))), S);
const cb = device.createBuffer({ size: M * N * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
const rb = device.createBuffer({ size: M * N * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
const enc = device.createCommandEncoder();
const pass = enc.beginComputePass();
pass.setPipeline(pipe);
pass.setBindGroup(0, device.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries: [ab, bb, cb].map((b, i) => ({ binding: i, resource: { buffer: b } })) }));
pass.dispatchWorkgroups(1);
pass.end();
enc.copyBufferToBuffer(cb, 0, rb, 0, M * N * 4);
device.queue.submit([enc.finish()]);
await rb.mapAsync(GPUMapMode.READ);
const got = new Float32Array(rb.getMappedRange().slice(0));
let worst = 0;
for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
  let s = 0;
  for (let k = 0; k < K; k++) s += av[m * K + k] * bv[n * K + k];
  worst = Math.max(worst, Math.abs(got[m * N + n] - s));
}
console.log(`subgroup-matrix probe ${M}×${N}×${K} (f16→f32, SG ${SG}): max |error| ${worst.toExponential(2)} ${worst < 1e-3 ? 'OK' : 'WRONG'}`);
device.destroy();
process.exit(0);
