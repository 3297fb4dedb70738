// PhaseTimer (src/perf/phases.ts): phases in first-run order, repeats added up, shares summing to 1, a phase that
// throws still recorded, the sync called per phase, and the JSON file the bench collects.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PhaseTimer } from '../src/perf/phases.js';

describe('PhaseTimer', () => {
  it('records phases, adds repeats, reports shares and writes JSON', async () => {
    let syncs = 0;
    const t = new PhaseTimer(async () => { syncs++; });
    expect(await t.run('pairs', () => 7)).toBe(7);
    await t.run('lrm', async () => { await new Promise((r) => setTimeout(r, 5)); });
    await t.run('pairs', () => undefined);
    await expect(t.run('lpo', () => { throw new Error('boom'); })).rejects.toThrow('boom');
    const r = t.report({ seed: 1 });
    expect(r.phases.map((p) => p.name)).toEqual(['pairs', 'lrm', 'lpo']);
    expect(syncs).toBe(3);
    expect(r.phases[1].seconds).toBeGreaterThan(0);
    expect(r.phases.reduce((s, p) => s + p.share, 0)).toBeCloseTo(1, 10);
    const file = join(mkdtempSync(join(tmpdir(), 'phases-')), 'sub', 'phases.json');
    t.write(file, { seed: 1 });
    const back = JSON.parse(readFileSync(file, 'utf8'));
    expect(back.meta).toEqual({ seed: 1 });
    expect(back.phases.map((p: { name: string }) => p.name)).toEqual(['pairs', 'lrm', 'lpo']);
  });
});
