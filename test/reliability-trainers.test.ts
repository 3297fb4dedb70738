// The trainers' reliability wiring (issue 13): the LRM trainer resumes exactly from its training checkpoints
// (model, AdamW state, step, random streams, data position across an epoch boundary); both trainers skip an
// optimizer step whose gradients hold a NaN (injected on the GPU) and stop after N in a row.
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupGpu } from './helpers.js';
import { brightDarkDataset, tinyLrm } from './lrm-tiny.js';
import { tinyModels } from './lpo-tiny.js';
import { trainLrm, type TrainLrmOptions } from '../src/lrm/train.js';
import type { LatentRewardModel } from '../src/lrm/model.js';
import { LpoTrainer } from '../src/lpo/trainer.js';
import { loraLayers } from '../src/nn/lora.js';
import { NonFiniteTrainingError, StepGuard, type StepVerdict } from '../src/optim/guard.js';
import type { AdamW } from '../src/optim/adamw.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { CheckpointStore } from '../src/io/checkpoint/index.js';

const work = fs.mkdtempSync(path.join(tmpdir(), 'lpo-trainers-'));
beforeAll(setupGpu);
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** A guard that first fills every gradient with NaN on the steps `poison` picks (1-based call count). */
class PoisoningGuard extends StepGuard {
  calls = 0;
  constructor(private readonly poison: (call: number) => boolean, maxConsecutive = 5) {
    super({ maxConsecutive, log: () => {} });
  }
  override async step(opt: AdamW, scalars: readonly Tensor[] = [], what = 'step'): Promise<StepVerdict> {
    if (this.poison(++this.calls)) for (const p of opt.params) p.grad?.write(new Float32Array(p.grad.size).fill(NaN));
    return super.step(opt, scalars, what);
  }
}

async function values(m: LatentRewardModel): Promise<Float32Array[]> {
  return Promise.all([...m.stateDict().values()].map((t) => t.toArray()));
}

function maxDiff(a: Float32Array[], b: Float32Array[]): number {
  let w = 0;
  a.forEach((x, i) => x.forEach((v, j) => { w = Math.max(w, Math.abs(v - b[i][j])); }));
  return w;
}

const LRM_OPTS: TrainLrmOptions = { steps: 6, batchSize: 2, warmupSteps: 2, lr: 1e-3, evalEvery: 0, seed: 4, log: () => {} };

describe('LRM trainer', () => {
  it('killed after step 5, resumed from the step-4 checkpoint: the same weights as an uninterrupted run', async () => {
    const data = brightDarkDataset(5, 2); // 5 pairs, batches of 2: the third step crosses into the second pass
    const a = tinyLrm(9);
    await trainLrm(a, data, null, LRM_OPTS);
    const want = await values(a);
    a.dispose();

    const outDir = path.join(work, 'lrm');
    const b = tinyLrm(9);
    const crash = new Error('simulated crash');
    await expect(trainLrm(b, data, null, { ...LRM_OPTS, outDir, checkpointEvery: 2, onStep: (m) => { if (m.step === 5) throw crash; } })).rejects.toBe(crash);
    b.dispose();
    expect(new CheckpointStore(path.join(outDir, 'checkpoints')).list().map((c) => c.step)).toEqual([2, 4]);

    const c = tinyLrm(9);
    const logs: string[] = [];
    await trainLrm(c, data, null, { ...LRM_OPTS, outDir, checkpointEvery: 2, resume: true, log: (m) => logs.push(m) });
    expect(logs.some((l) => /resumed from .*step-00000004 at step 4/.test(l))).toBe(true);
    const got = await values(c);
    c.dispose();
    const d = maxDiff(got, want);
    console.log(`LRM resume: max |weight difference| ${d} over ${want.reduce((s, x) => s + x.length, 0)} values`);
    expect(d).toBeLessThanOrEqual(1e-6);
  }, 600_000);

  it('a NaN gradient step is skipped (weights untouched) and N in a row stop training', async () => {
    const data = brightDarkDataset(8, 3);
    const m = tinyLrm(5);
    const before = await values(m);
    const first = new PoisoningGuard((call) => call === 1);
    await trainLrm(m, data, null, { ...LRM_OPTS, steps: 1, guard: first });
    expect(maxDiff(await values(m), before)).toBe(0); // the only step was skipped
    expect(first.skipped).toBe(1);
    const all = new PoisoningGuard(() => true, 3);
    await expect(trainLrm(m, data, null, { ...LRM_OPTS, steps: 10, guard: all })).rejects.toThrow(NonFiniteTrainingError);
    expect(all.calls).toBe(3);
    expect(maxDiff(await values(m), before)).toBe(0);
    m.dispose();
  }, 600_000);
});

describe('LPO trainer', () => {
  it('skips NaN optimizer steps and stops after maxNonFiniteSteps in a row; the LoRA is untouched', async () => {
    const lrm = tinyLrm(7, { logitScaleInit: Math.log(2000) });
    const models = tinyModels(lrm, 4);
    const t = new LpoTrainer(models, ['a red cube', 'a blue sphere'], { sampleBatchSize: 1, trainBatchSize: 2, epochs: 1, K: 2, numInferenceSteps: 4, seed: 3, maxNonFiniteSteps: 2 });
    const init = await Promise.all(loraLayers(models.unet).flatMap(([, l]) => [l.loraA.toArray(), l.loraB.toArray()]));
    const real = t.guard.step.bind(t.guard);
    let calls = 0;
    t.guard.step = async (opt, scalars, what) => {
      calls++;
      for (const p of opt.params) p.grad?.write(new Float32Array(p.grad.size).fill(NaN));
      return real(opt, scalars, what);
    };
    const err = await t.train().catch((e) => e);
    expect(err).toBeInstanceOf(NonFiniteTrainingError);
    expect(calls).toBe(2);
    const now = await Promise.all(loraLayers(models.unet).flatMap(([, l]) => [l.loraA.toArray(), l.loraB.toArray()]));
    expect(maxDiff(now, init)).toBe(0);
    expect(t.optimizer.params.every((p) => t.optimizer.stepCount(p) === 0)).toBe(true);
    t.dispose();
    models.dispose();
    lrm.dispose();
  }, 600_000);
});
