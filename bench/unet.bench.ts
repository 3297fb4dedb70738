// `npm run bench` (vitest bench --run), or alone: `npx vitest bench --run bench/unet.bench.ts`.
// A U-Net with SD1.5's real config (320/640/1280/1280, 2 layers per block, 8 heads, cross-attention 768,
// 32 groups; ~860M parameters, ~3.4 GB of f32 weights) and seeded random weights, one forward at a 32×32
// latent (batch 1, 77×768 context) under noGrad, plus the LRM's truncated forward (stopAfterMid).
// Reports init time, wall time per forward (the first includes pipeline compilation), the pool's peaks
// (gpu().pool.stats(): peakAllocatedBytes, peakInUseBytes) and the host's RSS / JS heap, and merges a
// `unet` section into bench/results/<adapter>.json.
import { writeSection } from './common.js';
import { bench, describe } from 'vitest';
import { settings } from '../src/settings.js';
import { initGpu, gpu } from '../src/gpu/runtime.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Generator } from '../src/tensor/random.js';
import { noGrad } from '../src/autograd/tape.js';
import { UNet2DConditionModel, SD15_UNET_CONFIG } from '../src/nn/unet.js';

const MB = 2 ** 20;
const LATENT = settings.bench.latent ?? 32;

function mem() {
  const m = process.memoryUsage();
  return { rssMB: m.rss / MB, heapUsedMB: m.heapUsed / MB, externalMB: m.external / MB, arrayBuffersMB: m.arrayBuffers / MB };
}

async function runSuite(): Promise<void> {
  const g = await initGpu();
  const s = g.summary;
  const adapter = `${s.vendor} / ${s.architecture} / ${s.description || s.device}`;
  console.log(`\nunet bench on ${adapter}${s.isSoftware ? ' (software)' : ''}: SD1.5 config, latent ${LATENT}×${LATENT}, batch 1, context 77×768`);

  // Init: each parameter is drawn on the host, uploaded and its host array dropped (streaming).
  const t0 = performance.now();
  const unet = new UNet2DConditionModel(SD15_UNET_CONFIG, { gen: new Generator(1234) });
  unet.freeze();
  await gpu().sync();
  const initMs = performance.now() - t0;
  const params = unet.numParameters();
  const weightBytes = unet.parameters().reduce((a, p) => a + p.bytes, 0);
  const afterInit = { pool: gpu().pool.stats(), host: mem() };
  console.log(`init: ${params.toLocaleString()} parameters, ${(weightBytes / MB).toFixed(0)} MiB of f32 weights, ${(initMs / 1000).toFixed(1)} s; pool in use ${(afterInit.pool.inUseBytes / MB).toFixed(0)} MiB; host RSS ${afterInit.host.rssMB.toFixed(0)} MiB, JS heap ${afterInit.host.heapUsedMB.toFixed(0)} MiB`);

  const gen = new Generator(7);
  const x = Tensor.randn([1, 4, LATENT, LATENT], gen);
  const ctx = Tensor.randn([1, 77, 768], gen);
  const runs: { what: string; ms: number; finite: boolean }[] = [];
  const forward = async (what: string, stopAfterMid: boolean) => {
    const t = performance.now();
    const out = noGrad(() => (stopAfterMid ? unet.forward(x, [500], ctx, { stopAfterMid: true }) : unet.forward(x, [500], ctx)));
    const result = 'sample' in out ? out.sample : out.mid;
    const vals = await result.toArray();
    const ms = performance.now() - t;
    const finite = vals.every(Number.isFinite);
    if ('sample' in out) out.sample.dispose();
    else for (const tt of [out.mid, ...out.downBlocks, ...out.downBlockResSamples]) tt.dispose();
    runs.push({ what, ms, finite });
    console.log(`${what}: ${(ms / 1000).toFixed(2)} s${finite ? '' : ' (NON-FINITE OUTPUT)'}; pool in use after ${(gpu().pool.stats().inUseBytes / MB).toFixed(0)} MiB`);
  };
  await forward('forward #1 (includes pipeline compilation)', false);
  await forward('forward #2', false);
  await forward('forward to mid (stopAfterMid)', true);

  // LPO_BENCH_PROFILE=1: per-kernel GPU time of one more forward (needs the timestamp-query feature).
  let profile: { kernel: string; calls: number; ms: number; share: number }[] | undefined;
  if (settings.bench.profile) {
    try {
      const timings = await gpu().profile(async () => {
        const out = noGrad(() => unet.forward(x, [500], ctx));
        await out.sample.toArray();
        out.sample.dispose();
      });
      const total = timings.reduce((a, t) => a + t.ns, 0);
      profile = timings.slice(0, 25).map((t) => ({ kernel: t.kernel, calls: t.calls, ms: t.ns / 1e6, share: t.ns / total }));
      console.log(`profile (GPU time, total ${(total / 1e9).toFixed(2)} s):\n${profile.map((p) => `  ${(100 * p.share).toFixed(1).padStart(5)}%  ${p.ms.toFixed(0).padStart(7)} ms  ${String(p.calls).padStart(4)}×  ${p.kernel}`).join('\n')}`);
    } catch (e) {
      console.log(`profile skipped: ${(e as Error).message}`);
    }
  }

  const pool = gpu().pool.stats();
  const host = mem();
  const result = {
    date: new Date().toISOString(),
    adapter,
    software: s.isSoftware,
    config: 'SD1.5 (block_out_channels 320/640/1280/1280, layers_per_block 2, attention_head_dim 8, cross_attention_dim 768, norm_num_groups 32)',
    latent: [1, 4, LATENT, LATENT],
    context: [1, 77, 768],
    parameters: params,
    weightMiB: weightBytes / MB,
    initSeconds: initMs / 1000,
    runs: runs.map((r) => ({ ...r, seconds: r.ms / 1000 })),
    pool: {
      peakAllocatedMiB: pool.peakAllocatedBytes / MB,
      peakInUseMiB: pool.peakInUseBytes / MB,
      /** peakInUse minus what was in use right after init (weights): the activations' peak. */
      activationPeakMiB: (pool.peakInUseBytes - afterInit.pool.inUseBytes) / MB,
      inUseAfterMiB: pool.inUseBytes / MB,
    },
    host: { afterInit: afterInit.host, end: host },
    ...(profile ? { profile } : {}),
  };
  console.log(`pool peaks: allocated ${result.pool.peakAllocatedMiB.toFixed(0)} MiB, in use ${result.pool.peakInUseMiB.toFixed(0)} MiB (weights ${(afterInit.pool.inUseBytes / MB).toFixed(0)} MiB + activations ${result.pool.activationPeakMiB.toFixed(0)} MiB); host RSS ${host.rssMB.toFixed(0)} MiB, JS heap ${host.heapUsedMB.toFixed(0)} MiB`);

  x.dispose();
  ctx.dispose();
  unet.dispose();

  console.log(`wrote ${writeSection(s, 'unet', result)}`);
}

describe('unet', () => {
  bench('SD1.5-config U-Net forward (report above)', async () => {
    await runSuite();
  }, { iterations: 1, warmupIterations: 0, time: 0, warmupTime: 0 });
});
