// The toy U-Net (src/toy/model.ts TOY_UNET_CONFIG, seeded random weights) forward, where a small model on
// lavapipe is bound by the cost of each launch: dispatches and submits per forward, wall time per forward and
// per sample at batch 1, 8 and 64, host (encode) time, and the fused kernels against the unfused op sequences
// (settings.fuse off: groupNorm then SiLU, conv then the time-embedding and shortcut adds, linear then the
// skip add, permute copies around proj_in/proj_out, two copies per concat), A/B in this process with the
// samples interleaved (bench/common.ts interleaved). `npx vitest bench --run bench/toy-unet.bench.ts`.
import { bench, describe } from 'vitest';
import { interleaved, machineInfo, printTable, writeSection } from './common.js';
import { initGpu, gpu } from '../src/gpu/runtime.js';
import { noGrad } from '../src/autograd/tape.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Generator } from '../src/tensor/random.js';
import { UNet2DConditionModel } from '../src/nn/unet.js';
import { TOY_UNET_CONFIG } from '../src/toy/model.js';
import { withSettings } from '../src/settings.js';
import { backward, requireGrad } from '../src/autograd/tape.js';
import { tidy } from '../src/tensor/tensor.js';
import { square, sub } from '../src/tensor/ops/elementwise.js';
import { meanAll } from '../src/tensor/ops/reduce.js';
import { AdamW } from '../src/optim/adamw.js';
import { dawnPollingThrottled, throttleDawnPolling } from '../src/gpu/poll.js';

const BATCHES = [1, 8, 64];
const ROUNDS: Record<number, number> = { 1: 21, 8: 11, 64: 7 };

export async function runToyUnetSuite(): Promise<Record<string, unknown>> {
  const g = await initGpu();
  const unet = new UNet2DConditionModel(TOY_UNET_CONFIG, { gen: new Generator(1) });
  unet.freeze();
  const gen = new Generator(2);
  const rows: Record<string, unknown>[] = [];
  for (const B of BATCHES) {
    const x = Tensor.randn([B, 4, 8, 8], gen);
    const ctx = Tensor.randn([B, 77, TOY_UNET_CONFIG.cross_attention_dim as number], gen);
    const forward = () => noGrad(() => unet.forward(x, 501, ctx).sample.dispose());
    const counts = (fuse: boolean) => withSettings({ fuse }, () => {
      const d0 = g.counters.dispatches;
      const s0 = g.counters.submits;
      const t0 = performance.now();
      forward();
      const hostMs = performance.now() - t0;
      g.flush();
      return { dispatches: g.counters.dispatches - d0, submits: g.counters.submits - s0, hostMs };
    });
    const host = { fused: [] as number[], unfused: [] as number[] };
    const run = (fuse: boolean) => async () => {
      await withSettings({ fuse }, async () => {
        const t0 = performance.now();
        forward();
        host[fuse ? 'fused' : 'unfused'].push(performance.now() - t0);
        await g.sync();
      });
    };
    const cf = counts(true);
    const cu = counts(false);
    await g.sync();
    const ab = await interleaved([{ name: 'fused', run: run(true) }, { name: 'unfused', run: run(false) }], ROUNDS[B]);
    const med = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];
    const [f, u] = ab.results;
    rows.push({
      batch: B,
      fused: { dispatches: cf.dispatches, submits: cf.submits, ms: f.medianMs, msPerSample: f.medianMs / B, hostMs: med(host.fused), usPerDispatch: (1000 * f.medianMs) / cf.dispatches },
      unfused: { dispatches: cu.dispatches, submits: cu.submits, ms: u.medianMs, msPerSample: u.medianMs / B, hostMs: med(host.unfused), usPerDispatch: (1000 * u.medianMs) / cu.dispatches },
      unfusedOverFused: ab.ratioToFirst[1],
    });
    x.dispose();
    ctx.dispose();
  }
  const training = await trainStepPollAb(unet);
  unet.dispose();
  type Side = { dispatches: number; submits: number; ms: number; msPerSample: number; hostMs: number; usPerDispatch: number };
  printTable(
    ['batch', 'dispatches fused / unfused', 'ms/forward fused', 'unfused', 'unfused ÷ fused (paired)', 'ms/sample fused', 'host ms fused / unfused', 'µs per dispatch fused / unfused'],
    rows.map((r) => {
      const f = r.fused as Side;
      const u = r.unfused as Side;
      return [String(r.batch), `${f.dispatches} / ${u.dispatches}`, f.ms.toFixed(1), u.ms.toFixed(1), `${(r.unfusedOverFused as number).toFixed(2)}×`,
        f.msPerSample.toFixed(2), `${f.hostMs.toFixed(1)} / ${u.hostMs.toFixed(1)}`, `${f.usPerDispatch.toFixed(0)} / ${u.usPerDispatch.toFixed(0)}`];
    }),
  );
  console.log(`training step (forward + backward + AdamW, batch ${training.batch}): ${training.throttledMs.toFixed(0)} ms with Dawn's polls throttled, ${training.spinMs.toFixed(0)} ms spinning (${training.spinOverThrottled.toFixed(2)}×, paired)`);
  const section = { date: new Date().toISOString(), machine: machineInfo(g.summary), config: 'toy U-Net (src/toy/model.ts), latent 8×8, context 77×32, noGrad', rows, training };
  console.log(`wrote ${writeSection(g.summary, 'toyUnet', section)}`);
  return section;
}

/**
 * One toy training step (forward with the tape, ε-MSE, backward, AdamW) at batch 16, the pre-training's shape, with
 * Dawn's polling throttled (src/gpu/poll.ts) and spinning back to back, interleaved. On lavapipe the spinning main
 * thread competes with the lavapipe workers for the cores.
 */
async function trainStepPollAb(unet: UNet2DConditionModel): Promise<{ batch: number; throttledMs: number; spinMs: number; spinOverThrottled: number }> {
  const g = gpu();
  const B = 16;
  const gen = new Generator(3);
  for (const p of unet.parameters()) requireGrad(p);
  const params = unet.parameters();
  const opt = new AdamW(params, { lr: 1e-6 });
  const x = Tensor.randn([B, 4, 8, 8], gen);
  const noise = Tensor.randn([B, 4, 8, 8], gen);
  const ctx = Tensor.randn([B, 77, TOY_UNET_CONFIG.cross_attention_dim as number], gen);
  const ts = Array.from({ length: B }, (_, i) => (i * 61) % 1000);
  const step = async () => {
    const loss = tidy(() => meanAll(square(sub(unet.forward(x, ts, ctx).sample, noise))));
    backward(loss);
    opt.step();
    for (const p of params) { p.grad?.dispose(); p.grad = null; }
    loss.dispose();
    await g.sync();
  };
  const was = dawnPollingThrottled();
  const ab = await interleaved([
    { name: 'throttled', run: async () => { throttleDawnPolling(true); await step(); } },
    { name: 'spin', run: async () => { throttleDawnPolling(false); await step(); } },
  ], 9);
  throttleDawnPolling(was);
  opt.dispose();
  for (const t of [x, noise, ctx]) t.dispose();
  unet.freeze();
  return { batch: B, throttledMs: ab.results[0].medianMs, spinMs: ab.results[1].medianMs, spinOverThrottled: ab.ratioToFirst[1] };
}

describe('toy U-Net', () => {
  bench('toy U-Net forward, fused vs unfused (table above)', async () => {
    await runToyUnetSuite();
  }, { iterations: 1, warmupIterations: 0, time: 0, warmupTime: 0 });
});
