// The demo's mechanics (issue 10: CI runs a shortened demo): the smoke run of the committed toy base model goes
// through pairs → MPCF → LRM → LPO (one optimizer step) → evaluation and writes the report, one PNG per
// evaluated sample with out/samples/index.json, results.json, the LRM and the LoRA. Its numbers are not tested
// (an untrained LRM and one LPO step); that LPO moves the model is: the LoRA's B factors leave zero.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupGpu } from './helpers.js';
import { demoPlan, runToyDemo, type DemoResult } from '../src/toy/demo.js';
import { sampleFileName } from '../src/toy/demo_output.js';
import { demoReportHtml, formatDemoSummary, writeDemoReport } from '../src/toy/report.js';
import { decodePng } from '../src/io/image.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { ArgumentError } from '../src/errors.js';

const BASE = resolve(__dirname, '../assets/toy/base');
const tmp = mkdtempSync(join(tmpdir(), 'lpo-demo-'));

beforeAll(setupGpu);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('demo plan', () => {
  it('defaults: 16 held-out prompts covering every colour, shape, count and relation, 6 seeds, 4 timestep buckets up to 999', () => {
    const p = demoPlan();
    expect(p.evalPrompts).toHaveLength(16);
    expect(p.evalSeeds).toHaveLength(6);
    const text = p.evalPrompts.join(' | ');
    for (const w of ['red', 'green', 'blue', 'yellow', 'circle', 'square', 'triangle', 'two', 'three', 'left of', 'right of', 'above', 'below']) expect(text).toContain(w);
    expect(p.buckets.map((b) => b.timesteps).flat().some((t) => t >= 750)).toBe(true);
  });

  it('--minutes scales the training phases; --prompts beyond the 16 takes more held-out prompts; bad values are ArgumentErrors', () => {
    const a = demoPlan({ minutes: 10 });
    const b = demoPlan({ minutes: 20 });
    expect(b.lrmSteps).toBe(2 * a.lrmSteps);
    expect(b.lpoIterations).toBe(2 * a.lpoIterations);
    const p = demoPlan({ prompts: 24, seeds: 2 });
    expect(new Set(p.evalPrompts).size).toBe(24);
    expect(p.evalSeeds).toHaveLength(2);
    expect(() => demoPlan({ minutes: 0 })).toThrow(ArgumentError);
    expect(() => demoPlan({ prompts: 0 })).toThrow(ArgumentError);
    expect(() => demoPlan({ seeds: 1.5 })).toThrow(ArgumentError);
    expect(() => demoPlan({ prompts: 10_000 })).toThrow(/held-out prompts/);
  });

  it('sample file names are readable and distinct per prompt and seed', () => {
    expect(sampleFileName('a red square left of a blue circle', 3)).toBe('a-red-square-left-of-a-blue-circle_seed3.png');
    expect(sampleFileName('two green triangles', 3)).not.toBe(sampleFileName('two green triangles', 4));
  });

  it('a missing base model is a clear error naming the rebuild command', async () => {
    await expect(runToyDemo({ base: join(tmp, 'nowhere'), out: join(tmp, 'x'), smoke: true })).rejects.toThrow(/toy:pretrain/);
  });
});

describe('smoke run of the committed toy model (mechanics only)', () => {
  let r: DemoResult;
  const out = join(tmp, 'out');

  it('runs every phase and writes report.html, the samples, index.json and results.json', async () => {
    const phases = new Set<string>();
    r = await runToyDemo({ base: BASE, out, smoke: true, prompts: 2, seeds: 2, onProgress: (p) => phases.add(p) });
    expect([...phases].sort()).toEqual(['eval base', 'eval base-eta1', 'eval best-of-4', 'eval lpo', 'lpo', 'lrm', 'lrm buckets', 'lrm heads', 'pairs'].sort());
    expect(r.evals.map((e) => e.model)).toEqual(['base', 'lpo', 'base-eta1', 'best-of-4']);
    for (const e of r.evals) expect(e.summary.images).toBe(4);
    const file = writeDemoReport(r);
    const html = readFileSync(file, 'utf8');
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).not.toMatch(/<script|(src|href)="https?:/); // self-contained, opens offline (the SVG namespace URI is not a fetch)
    expect((html.match(/<img src="data:image\/png;base64,/g) ?? []).length).toBe(16);
    expect((html.match(/<svg/g) ?? []).length).toBeGreaterThanOrEqual(4);

    const index = JSON.parse(readFileSync(join(out, 'samples', 'index.json'), 'utf8')) as { file: string; prompt: string; seed: number; model: string }[];
    expect(index).toHaveLength(16);
    for (const e of index) {
      expect(['base', 'lpo', 'base-eta1', 'best-of-4']).toContain(e.model);
      expect(e.file.startsWith(`${e.model}/`)).toBe(true);
      const png = decodePng(readFileSync(join(out, 'samples', e.file)));
      expect([png.height, png.width]).toEqual([32, 32]);
    }
    const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    expect(Object.keys(res.models).sort()).toEqual(['base', 'base-eta1', 'best-of-4', 'lpo']);
    expect(res.lrm.buckets).toHaveLength(4);
    for (const b of res.lrm.buckets) for (const v of [b.accuracy, b.truth]) expect(v).toBeGreaterThanOrEqual(0);
    expect(existsSync(join(out, 'pairs', 'validation-truth', 'pairs.jsonl'))).toBe(true);
    expect(existsSync(join(out, 'lrm', 'final', 'config.json'))).toBe(true);
    expect(existsSync(join(out, 'pairs', 'pairs.jsonl'))).toBe(true);
  });

  it('LPO took an optimizer step: the saved LoRA B factors are no longer zero', async () => {
    expect(r.lpo.reduce((s, m) => s + m.optimizerSteps, 0)).toBeGreaterThan(0);
    const f = await SafetensorsFile.open(join(out, 'lpo', 'lora.safetensors'));
    try {
      const keys = f.keys().filter((k) => k.includes('lora.up') || k.includes('lora_B'));
      expect(keys.length).toBeGreaterThan(0);
      let sum = 0;
      for (const k of keys) for (const v of await f.readF32(k)) sum += Math.abs(v);
      expect(sum).toBeGreaterThan(0);
    } finally {
      await f.close();
    }
  });

  it('the summary table names every model and bucket', () => {
    const s = formatDemoSummary(r);
    for (const w of ['base', 'lpo', 'best-of-4', '750–999', 'alignment rate', 'aesthetic']) expect(s).toContain(w);
    expect(demoReportHtml(r)).toContain('750–999');
  });
});
