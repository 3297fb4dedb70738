// fitLrmHeads (src/lrm/heads.ts): the linear-probe warm start fits visual_projection, text_projection and τ on frozen
// features, leaves the truncated U-Net and the text encoder untouched, and its loss is the pair loss of the model's
// own score() on the same noisy samples.
import { beforeAll, describe, expect, it } from 'vitest';
import { setupGpu } from './helpers.js';
import { brightDarkDataset, tinyLrm } from './lrm-tiny.js';
import { fitLrmHeads } from '../src/lrm/heads.js';
import { evaluateLrm } from '../src/lrm/eval.js';
import { ArgumentError } from '../src/errors.js';

beforeAll(setupGpu);

describe('fitLrmHeads', () => {
  it('learns the bright/dark preference at low t from frozen features; only the heads move', async () => {
    const m = tinyLrm(21);
    const train = brightDarkDataset(48, 3, 8, { shift: 1.5 });
    const heldOut = brightDarkDataset(32, 4, 8, { shift: 1.5 });
    const before = new Map<string, Float32Array>();
    for (const [k, p] of m.namedParameters()) before.set(k, await p.toArray());
    const acc0 = (await evaluateLrm(m, heldOut, { timesteps: [1], seed: 1 })).byTimestep[0].accuracy;
    const seen: number[] = [];
    const r = await fitLrmHeads(m, train, { steps: 150, draws: 2, timesteps: [1, 51, 101], seed: 2, onStep: (s) => seen.push(s.loss) });
    expect(r.pairs).toBe(48);
    expect(r.samples).toBe(96);
    expect(seen).toHaveLength(150);
    expect(seen[149]).toBeLessThan(seen[0]);
    const acc1 = (await evaluateLrm(m, heldOut, { timesteps: [1], seed: 1 })).byTimestep[0].accuracy;
    console.log(`fitLrmHeads: held-out accuracy at t = 1 ${acc0.toFixed(3)} → ${acc1.toFixed(3)}, training ${r.accuracy.toFixed(3)}, loss ${seen[0].toFixed(3)} → ${r.loss.toFixed(3)}`);
    expect(r.accuracy).toBeGreaterThan(0.8);
    expect(acc1).toBeGreaterThan(0.75);
    const heads = /^(visual_projection|text_projection)\.weight$|^logit_scale$/;
    for (const [k, p] of m.namedParameters()) {
      const a = before.get(k)!;
      const b = await p.toArray();
      const moved = a.some((v, i) => v !== b[i]);
      expect(moved, k).toBe(heads.test(k));
    }
    m.dispose();
  });

  it('rejects bad options and an empty dataset', async () => {
    const m = tinyLrm(22);
    const ds = brightDarkDataset(4, 5);
    await expect(fitLrmHeads(m, ds, { steps: 0 })).rejects.toThrow(ArgumentError);
    await expect(fitLrmHeads(m, ds, { draws: 1.5 })).rejects.toThrow(/draws/);
    await expect(fitLrmHeads(m, ds, { lr: 0 })).rejects.toThrow(/lr/);
    await expect(fitLrmHeads(m, ds, { where: () => false })).rejects.toThrow(/no training pairs/);
    m.dispose();
  });
});
