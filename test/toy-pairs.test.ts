// Toy preference pairs: the Bradley–Terry coin flip follows the score gap, ties come at close calls, gaps are
// winner − loser in the side CSV's units, and the folder written reads back through the pair-dataset reader.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Generator } from '../src/tensor/random.js';
import { openPairFolder } from '../src/io/pairs/index.js';
import { aspectScores, labelPair, writeToyPairs, type ToyPair } from '../src/toy/pairs.js';
import { judge, preferenceScore } from '../src/toy/judge/judge.js';
import { renderScene } from '../src/toy/scenes.js';
import { parseCaption, sceneForCaption } from '../src/toy/captions.js';

const judged = (score: number, aesthetic: number, match = false, vqa = 0.5) => ({ score, aesthetic, match, vqa });

describe('labelPair', () => {
  it('makes image 0 win with probability σ(Δs/τ) among non-ties (within 4 binomial σ)', () => {
    const gen = new Generator(1);
    const tau = 0.1;
    for (const [a, b] of [[0.5, 0.5], [0.6, 0.5], [0.8, 0.5], [0.3, 0.6], [1, 0.2]]) {
      const j0 = judged(a, 0.5);
      const j1 = judged(b, 0.5);
      const d = preferenceScore(j0) - preferenceScore(j1);
      const p = 1 / (1 + Math.exp(-d / tau));
      let wins = 0, decided = 0;
      for (let i = 0; i < 4000; i++) {
        const l = labelPair(j0, j1, gen, { temperature: tau });
        expect(l.pWin0).toBeCloseTo(p, 12);
        if (l.label0 === 0.5) continue;
        decided++;
        if (l.label0 === 1) wins++;
      }
      const sd = Math.sqrt((p * (1 - p)) / decided);
      expect(Math.abs(wins / decided - p), `Δs = ${d}`).toBeLessThan(4 * sd + 1e-9);
    }
  });

  it('draws ties at close calls (about tieRate at Δs = 0), rarely at large gaps', () => {
    const gen = new Generator(2);
    const rate = (j0: ReturnType<typeof judged>, j1: ReturnType<typeof judged>) => {
      let ties = 0;
      for (let i = 0; i < 4000; i++) if (labelPair(j0, j1, gen).label0 === 0.5) ties++;
      return ties / 4000;
    };
    expect(Math.abs(rate(judged(0.5, 0.5), judged(0.5, 0.5)) - 0.5)).toBeLessThan(0.04);
    expect(rate(judged(1, 0.8, true), judged(0.2, 0.5))).toBeLessThan(0.01);
  });

  it('reports gaps winner − loser in the CSV units, and image 0 − image 1 for ties', () => {
    const gen = new Generator(3);
    const j0 = judged(0.9, 0.7, true, 1);
    const j1 = judged(0.4, 0.6, false, 0.5);
    const a = aspectScores(j0);
    const b = aspectScores(j1);
    let seen = 0;
    for (let i = 0; i < 400; i++) {
      const l = labelPair(j0, j1, gen, { temperature: 0.5 });
      const sign = l.label1 === 1 ? -1 : 1;
      expect(l.gaps.aesthetic).toBeCloseTo(sign * (a.aesthetic - b.aesthetic), 12);
      expect(l.gaps.clip).toBeCloseTo(sign * 0.15 * (0.9 - 0.4), 12);
      expect(l.gaps.vqa).toBeCloseTo(sign * 0.5, 12);
      expect(l.gaps.differentFlag).toBe(l.label0 === 0.5 ? 0 : 1);
      if (l.label1 === 1) seen++;
    }
    expect(seen).toBeGreaterThan(0); // τ = 0.5 lets the worse image win sometimes
  });
});

describe('writeToyPairs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'toy-pairs-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes a pair folder that the reader reads back (labels, gaps winner − loser, images, latents)', async () => {
    const gen = new Generator(4);
    const pairs: ToyPair[] = [];
    for (const [i, caption] of ['two red circles', 'a blue square above a green triangle', 'a yellow circle'].entries()) {
      const imgs = [0, 1].map(() => renderScene(sceneForCaption(gen, parseCaption(caption)))) as [Float32Array, Float32Array];
      const judgements = [judge(imgs[0], caption), judge(imgs[1], caption)] as ToyPair['judgements'];
      pairs.push({
        caption, split: i === 2 ? 'validation' : 'train', numExamplesPerPrompt: 1, seeds: [1, 2], guidance: [5, 5], images: imgs,
        latents: [Float32Array.from({ length: 256 }, (_, k) => k / 256 + i), Float32Array.from({ length: 256 }, (_, k) => -k / 256)],
        judgements, label: labelPair(judgements[0], judgements[1], gen),
      });
    }
    const { rows } = await writeToyPairs(dir, pairs, [4, 8, 8]);
    expect(rows).toBe(3);
    const ds = await openPairFolder(dir, { resolution: 32 });
    const got = [];
    for await (const r of ds.rows()) got.push(r);
    expect(got).toHaveLength(3);
    got.forEach((r, i) => {
      const p = pairs[i];
      expect(r.caption).toBe(p.caption);
      expect([r.label0, r.label1]).toEqual([p.label.label0, p.label.label1]);
      expect(r.split).toBe(p.split);
      expect(r.gaps?.vqa).toBeCloseTo(p.label.gaps.vqa, 6);
      expect(r.gaps?.differentFlag).toBe(p.label.gaps.differentFlag);
      expect(r.latent0?.shape).toEqual([4, 8, 8]);
      expect(r.latent0?.data[5]).toBeCloseTo(p.latents[0][5], 6);
      // PNG round trip: 8-bit quantisation of [0, 1] values, read back in [-1, 1].
      const img = r.image0!;
      let worst = 0;
      for (let k = 0; k < img.length; k++) worst = Math.max(worst, Math.abs((img[k] + 1) / 2 - p.images[0][k]));
      expect(worst).toBeLessThan(1 / 255);
    });
  });
});
