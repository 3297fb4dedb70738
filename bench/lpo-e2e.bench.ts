// `npx vitest bench --run bench/lpo-e2e.bench.ts`: LPO end to end on a tiny SD-layout U-Net and a tiny LRM (random
// weights, τ = ln 2000 so that its scores separate candidates). Trains the LoRA for LPO_E2E_ITERS iterations
// (default 40) and, every LPO_E2E_EVAL iterations, measures the LRM's mean score of the policy's own samples:
// fixed seeds and prompts, plain η = 1 trajectories (a random candidate at every step is a draw from the policy),
// scored at the last step. The curve should rise. Also prints the valid-pair rate, loss and time per iteration,
// and merges an `lpo_e2e` section into bench/results/<adapter>.json.
import { bench, describe } from 'vitest';
import { settings } from '../src/settings.js';
import { writeSection } from './common.js';
import { initGpu } from '../src/gpu/runtime.js';
import { noGrad } from '../src/autograd/tape.js';
import { Generator } from '../src/tensor/random.js';
import { disposeStepwise, sampleStepwise } from '../src/lpo/sampler.js';
import { LpoTrainer } from '../src/lpo/trainer.js';
import type { IterationMetrics } from '../src/lpo/metrics.js';
import { tinyLrm } from '../test/lrm-tiny.js';
import { tinyModels } from '../test/lpo-tiny.js';

const ITERS = settings.bench.e2eIters ?? 40;
const EVAL_EVERY = settings.bench.e2eEvalEvery ?? 5;
const LR = settings.bench.e2eLr ?? 1e-3;
const PROMPTS = ['a red cube', 'a blue sphere', 'a green cone', 'a yellow star', 'a purple ring', 'a white cat', 'a black dog', 'an orange car'];
const EVAL_PROMPTS = ['a red cube', 'a white cat', 'an orange car', 'a blue sphere'];
const EVAL_SEEDS = [101, 202, 303, 404, 505, 606, 707, 808];

async function runE2E(): Promise<void> {
  const g = await initGpu();
  const lrm = tinyLrm(7, { logitScaleInit: Math.log(2000) });
  const models = tinyModels(lrm, 1);
  const trainer = new LpoTrainer(models, PROMPTS, { sampleBatchSize: 4, trainBatchSize: 10, epochs: Math.ceil((ITERS * 4) / PROMPTS.length), seed: 42, lr: LR });
  const evalScore = async (): Promise<number> => {
    const cond = noGrad(() => models.encodePrompt(EVAL_PROMPTS));
    const uncond = noGrad(() => models.encodePrompt(['']));
    let sum = 0;
    for (const seed of EVAL_SEEDS) {
      const r = await sampleStepwise(
        { unet: models.unet, scheduler: models.scheduler, reward: lrm, prompts: EVAL_PROMPTS, cond, uncond, latents: [4, 8, 8], gen: new Generator(seed) },
        { collect: 'none', continueWith: 'random' },
      );
      sum += r.finalScores.reduce((a, b) => a + b, 0);
      disposeStepwise(r);
    }
    cond.dispose();
    uncond.dispose();
    return sum / (EVAL_SEEDS.length * EVAL_PROMPTS.length);
  };
  const curve: { iteration: number; score: number }[] = [{ iteration: 0, score: await evalScore() }];
  console.log(`\nLPO e2e on ${g.summary.description || g.summary.device}: tiny U-Net + tiny LRM, ${ITERS} iterations of ${4} prompts, lr ${LR}`);
  console.log(`eval @ iteration 0: mean LRM score of the policy's samples ${curve[0].score.toFixed(3)}`);
  const log: IterationMetrics[] = [];
  while (trainer.iteration < ITERS) {
    const m = await trainer.step();
    log.push(m);
    console.log(`it ${m.iteration}: ${m.items} pairs (valid ${(100 * m.validRate).toFixed(0)}%), ${m.optimizerSteps} steps, loss ${m.loss?.toFixed(4) ?? '-'}, margin ${m.rewardMargin?.toFixed(2) ?? '-'}, clamped ${m.clampedFraction?.toFixed(2) ?? '-'}, ${m.seconds.total.toFixed(1)} s`);
    if (trainer.iteration % EVAL_EVERY === 0) {
      const score = await evalScore();
      curve.push({ iteration: trainer.iteration, score });
      console.log(`eval @ iteration ${trainer.iteration}: mean LRM score of the policy's samples ${score.toFixed(3)}`);
    }
  }
  console.log(`curve: ${curve.map((c) => `${c.iteration}:${c.score.toFixed(2)}`).join('  ')}`);
  const perIt = log.reduce((a, m) => a + m.seconds.total, 0) / log.length;
  console.log(`mean ${perIt.toFixed(1)} s per iteration (sampling ${(log.reduce((a, m) => a + m.seconds.sample, 0) / log.length).toFixed(1)} s), ${log.reduce((a, m) => a + m.items, 0)} pairs in all`);
  console.log(`wrote ${writeSection(g.summary, 'lpo_e2e', {
    date: new Date().toISOString(), iterations: ITERS, lr: LR, curve,
    iterations_log: log.map((m) => ({ iteration: m.iteration, pairs: m.items, validRate: m.validRate, loss: m.loss, clamped: m.clampedFraction, seconds: m.seconds.total })),
  })}`);
  trainer.dispose();
  models.dispose();
  lrm.dispose();
}

describe('lpo e2e', () => {
  bench('LPO on a tiny U-Net + tiny LRM (report above)', async () => {
    await runE2E();
  }, { iterations: 1, warmupIterations: 0, time: 0, warmupTime: 0 });
});
