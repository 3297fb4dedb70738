// What the demo writes besides its report: every evaluated sample as out/samples/<model>/<prompt>_seed<n>.png
// with out/samples/index.json, and out/results.json (the numbers and curves, no images).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { encodePng } from '../io/image.js';
import type { DemoResult, ModelEval } from './demo.js';

export function writeJson(file: string, v: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(v, null, 1)}\n`);
}

/** out/samples/<model>/<prompt>_<seed>.png and out/samples/index.json. */
export function writeSamples(out: string, evals: readonly ModelEval[]): void {
  const dir = path.join(out, 'samples');
  const index: { file: string; prompt: string; seed: number; model: string }[] = [];
  for (const e of evals) {
    fs.mkdirSync(path.join(dir, e.model), { recursive: true });
    for (const r of e.rows) {
      const file = `${e.model}/${sampleFileName(r.prompt, r.seed)}`;
      fs.writeFileSync(path.join(dir, file), pngOf(r.image));
      index.push({ file, prompt: r.prompt, seed: r.seed, model: e.model });
    }
  }
  writeJson(path.join(dir, 'index.json'), index);
}

/** A file name from a prompt and a seed: lower-case words joined by '-', then the seed. */
export function sampleFileName(prompt: string, seed: number): string {
  return `${prompt.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')}_seed${seed}.png`;
}

/** PNG bytes of a CHW [3, H, W] image in [0, 1]. */
export function pngOf(image: Float32Array): Buffer {
  const side = Math.round(Math.sqrt(image.length / 3));
  return encodePng(image, [3, side, side]);
}

/** What results.json holds: the plan, the summaries and the curves (no images). */
export function summaryJson(r: DemoResult): Record<string, unknown> {
  return {
    plan: r.plan, pairStats: r.pairStats, mpcf: r.mpcf, mpcfAll: r.mpcfAll, seconds: r.seconds,
    models: Object.fromEntries(r.evals.map((e) => [e.model, e.summary])),
    lrm: { buckets: r.lrm.buckets, byTimestep: r.lrm.byTimestep, evals: r.lrm.evals, loss: r.lrm.steps.map((s) => [s.step, s.loss]) },
    lpo: r.lpo.map((m) => ({ iteration: m.iteration, items: m.items, validRate: m.validRate, loss: m.loss, meanScore: m.meanScore, finalScore: m.finalScore, seconds: m.seconds.total })),
  };
}
