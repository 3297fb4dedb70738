// The CLI under bad input (issue 13): every subcommand has --help; bad ranges and combinations are usage errors
// (exit 2) found before any work — the runs below have no GPU driver, so a command that got as far as the GPU
// would fail differently; malformed files are one line naming the file (exit 1), the stack only with --debug.
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCli, lpo, NO_DRIVER } from './cli.js';

const work = fs.mkdtempSync(path.join(tmpdir(), 'lpo-cli-rel-'));
const dir = (name: string) => { const d = path.join(work, name); fs.mkdirSync(d, { recursive: true }); return d; };
const file = (name: string, data: string | Uint8Array) => { const f = path.join(work, name); fs.writeFileSync(f, data); return f; };
beforeAll(buildCli, 120_000);
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** stderr without Dawn's own native warnings (printed by the driver, not by lpo). */
const ourLines = (stderr: string) => stderr.split('\n').filter((l) => l.trim() && !l.startsWith('Warning: '));

describe('lpo CLI reliability', () => {
  it('--help works on every subcommand', async () => {
    const top = await lpo(['--help']);
    expect(top.code).toBe(0);
    const names = top.stdout.split('\n').slice(top.stdout.split('\n').indexOf('commands:') + 1).map((l) => /^ {2}(\S+)/.exec(l)?.[1]).filter((n): n is string => !!n);
    expect(names.length).toBeGreaterThanOrEqual(8);
    for (const n of names) {
      const r = await lpo([n, '--help'], NO_DRIVER);
      expect(r.code, `${n} --help: ${r.stderr}`).toBe(0);
      expect(r.stdout, n).toMatch(new RegExp(`^usage: lpo ${n}\\b`));
      expect(r.stdout, n).toContain('--debug');
    }
  }, 300_000);

  it('ranges and combinations are usage errors before any work (exit 2, one line, no stack)', async () => {
    const m = dir('model');
    const l = dir('lrm');
    const pairs = dir('pairs');
    fs.writeFileSync(path.join(pairs, 'pairs.jsonl'), '');
    const p = file('prompts.txt', 'a cat\n');
    const csv = file('gaps.csv', 'x\n');
    const cases: [string[], RegExp][] = [
      [['train-lrm', '--model', m, '--data', pairs, '--batch', '4', '--micro-batch', '8'], /--micro-batch 8 exceeds --batch 4/],
      [['train-lrm', '--model', m, '--data', pairs, '--gaps-csv', csv], /--gaps-csv applies to parquet --data/],
      [['train-lrm', '--model', m, '--data', pairs, '--steps', '0'], /--steps needs an integer ≥ 1, got '0'/],
      [['train-lpo', '--model', m, '--lrm', l, '--prompts', p, '--threshold', 'constant'], /--threshold constant needs --threshold-value/],
      [['train-lpo', '--model', m, '--lrm', l, '--prompts', p, '--threshold-range', '0.6,0.4'], /range must be \[min, max\]/],
      [['train-lpo', '--model', m, '--lrm', l, '--prompts', p, '--timestep-range', '900,100'], /--timestep-range needs 0 ≤ lo ≤ hi ≤ 999/],
      [['train-lpo', '--model', m, '--lrm', l, '--prompts', p, '--train-batch', '4', '--micro-batch', '5'], /--micro-batch 5 exceeds --train-batch 4/],
      [['train-lpo', '--model', m, '--lrm', l, '--prompts', p, '--eta', '0'], /--eta needs a number ≥ 0\.000001/],
      [['train-lpo', '--model', m, '--lrm', path.join(work, 'nope'), '--prompts', p], /--lrm: '.*nope' does not exist/],
      [['generate', '--model', m, '--prompt', 'x', '--best-of', '4'], /--best-of needs --lrm/],
      [['sample', '--model', m, '--prompts', p, '--seeds', '1,x'], /--seeds: 'x' is not a non-negative integer/],
      [['score', '--lrm', l, '--prompt', 'x', p], /<input> must be a \.png, \.jpg or \.safetensors file/],
      [['eval-lrm', '--lrm', l, '--data', pairs, '--batch', '-1'], /--batch/],
    ];
    for (const [args, re] of cases) {
      const r = await lpo(args, NO_DRIVER);
      const lines = ourLines(r.stderr);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(lines, args.join(' ')).toHaveLength(1);
      expect(lines[0], args.join(' ')).toMatch(re);
      expect(lines[0]).toMatch(new RegExp(`^lpo ${args[0]}: .* \\(see lpo ${args[0]} --help\\)$`));
    }
  }, 300_000);

  it('malformed files: exit 1 with one line naming the file; --debug adds the stack', async () => {
    const bad = file('bad.safetensors', new Uint8Array([200, 0, 0, 0, 0, 0, 0, 0, 123, 34]));
    const r = await lpo(['inspect', bad], NO_DRIVER);
    expect(r.code).toBe(1);
    expect(ourLines(r.stderr)).toEqual([expect.stringMatching(/^lpo inspect: safetensors file '.*bad\.safetensors': header length 200 runs past the end of the file/)]);
    const d = await lpo(['inspect', bad, '--debug'], NO_DRIVER);
    expect(d.code).toBe(1);
    expect(d.stderr).toMatch(/SafetensorsError: safetensors file .*\n\s+at /);

    const m = dir('model2');
    const l = dir('lrm2');
    const huge = file('huge-prompts.txt', `a cat\n${'x'.repeat(10 << 20)}\n`);
    const p = await lpo(['train-lpo', '--model', m, '--lrm', l, '--prompts', huge], NO_DRIVER);
    expect(p.code).toBe(1);
    expect(ourLines(p.stderr)).toEqual([expect.stringMatching(/^lpo train-lpo: '.*huge-prompts\.txt': line 2: prompt of 10485760 characters/)]);
    const empty = file('empty-lines.txt', '\n\n  \n');
    const e = await lpo(['train-lpo', '--model', m, '--lrm', l, '--prompts', empty], NO_DRIVER);
    expect(e.code).toBe(1);
    expect(ourLines(e.stderr)).toEqual([expect.stringMatching(/'.*empty-lines\.txt': is empty: no prompts$/)]);
    expect(`${p.stderr}${e.stderr}`).not.toMatch(/\n\s+at /);
  }, 300_000);
});
