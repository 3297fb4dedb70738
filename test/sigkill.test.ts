// Crash safety of training (issue 13): a tiny LPO run (test/sigkill-child.ts, checkpointing every iteration) is
// killed with SIGKILL inside a checkpoint write — after the temporary folder is durable, before the rename — and
// again at a random point, resumed each time, and must end with the same LoRA as a run that was never killed.
// scripts/sigkill-loop.ts repeats this ten times in a row.
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Generator } from '../src/tensor/random.js';
import { interruptedRun, maxAbsDiff, randomKills, readFinal, runChild } from './sigkill-driver.js';

const work = fs.mkdtempSync(path.join(tmpdir(), 'lpo-sigkill-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('SIGKILL during training', () => {
  it('killed inside a checkpoint write and at a random point, resumed: the final LoRA equals an uninterrupted run', async () => {
    const refOut = path.join(work, 'reference');
    const ref = await runChild(refOut, null);
    expect(ref.lines[ref.lines.length - 1], ref.stderr.slice(-2000)).toBe('DONE');
    const want = readFinal(refOut);
    const seed = Date.now() % 100_000;
    const g = new Generator(seed);
    const kills = randomKills(() => g.uniform(), ref.ms);
    const commitStep = (kills[0] as { commitStep: number }).commitStep;
    const r = await interruptedRun(path.join(work, 'killed'), kills);
    const diff = maxAbsDiff(r.final, want);
    console.log(`seed ${seed}: ${r.runs.join('; ')}; max |LoRA difference| ${diff} over ${want.length} values`);
    // The first kill left a temporary folder; the next run removed it and resumed from the step before (a kill
    // inside step 1's write leaves no published checkpoint, so that run starts from scratch).
    expect(r.runs[1]).toMatch(commitStep === 1 ? /\bSTART\b/ : new RegExp(`RESUMED ${commitStep - 1}\\b`));
    expect(fs.readdirSync(path.join(work, 'killed', 'checkpoints')).filter((n) => n.startsWith('.'))).toEqual([]);
    expect(diff).toBeLessThanOrEqual(1e-6);
  }, 900_000);
});
