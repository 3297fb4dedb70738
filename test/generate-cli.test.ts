// End-to-end: `lpo generate` on a diffusers-layout folder assembled from the golden tiny components.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runNode } from './helpers.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPng } from '../src/io/image.js';
import { ROOT, writeTinySd } from './tiny-sd.js';

let model = '';

async function cli(...args: string[]) {
  const r = await runNode([join(ROOT, 'dist/cli.js'), ...args], { cwd: ROOT, timeoutMs: 600_000});
  const errLines = r.stderr.split(/[\n\r]/).filter((l) => l.trim() && !l.startsWith('Warning:'));
  return { code: r.code, stdout: r.stdout, stderr: r.stderr, errLines };
}

beforeAll(() => {
  execFileSync(process.execPath, [join(ROOT, 'build.mjs')], { cwd: ROOT, stdio: 'pipe' });
  model = writeTinySd(mkdtempSync(join(tmpdir(), 'lpo-sd-')));
});

afterAll(() => {
  if (model) rmSync(model, { recursive: true, force: true });
});

describe('lpo generate (built CLI)', () => {
  it('writes a PNG of the requested size, with progress lines on stderr; the same seed gives the same image', async () => {
    const out1 = join(model, 'a.png');
    const out2 = join(model, 'b.png');
    const args = ['--model', model, '--prompt', 'a photo of an astronaut riding a horse on mars', '--steps', '4', '--guidance', '7.5', '--seed', '3', '--height', '16', '--width', '24'];
    const r = await cli('generate', ...args, '--out', out1);
    expect(r.errLines.join('\n')).not.toMatch(/error|lpo generate:/i);
    expect(r.code).toBe(0);
    // Not a terminal: plain progress lines (no carriage returns), the last at 4/4.
    expect(r.stderr).toMatch(/^denoise 1\/4 25% t=\d+ /m);
    expect(r.stderr).toMatch(/^denoise 4\/4 100% t=1 /m);
    expect(r.stderr).not.toMatch(/\r/);
    const img = readPng(out1);
    expect([img.height, img.width]).toEqual([16, 24]);
    expect((await cli('generate', ...args, '--out', out2)).code).toBe(0);
    expect(readFileSync(out1).equals(readFileSync(out2))).toBe(true);
    const r3 = await cli('generate', ...args.slice(0, -6), '--seed', '4', '--height', '16', '--width', '24', '--eta', '1', '--negative', 'blurry', '--out', out2);
    expect(r3.code).toBe(0);
    expect(readFileSync(out1).equals(readFileSync(out2))).toBe(false);
  });

  it('bad arguments and a missing model folder: one clear line, exit 2 (usage error)', async () => {
    const r1 = await cli('generate', '--prompt', 'x');
    expect(r1.code).toBe(2);
    expect(r1.errLines).toEqual([expect.stringMatching(/^lpo generate: --model <diffusers folder> is required \(see lpo generate --help\)$/)]);
    const r2 = await cli('generate', '--model', join(model, 'nope'), '--prompt', 'x');
    expect(r2.code).toBe(2);
    expect(r2.errLines).toEqual([expect.stringMatching(/^lpo generate: --model: '.*nope' does not exist/)]);
    const r3 = await cli('generate', '--model', model, '--prompt', 'x', '--steps', 'many');
    expect(r3.code).toBe(2);
    expect(r3.errLines).toEqual([expect.stringMatching(/^lpo generate: --steps needs an integer ≥ 1, got 'many'/)]);
    const r4 = await cli('generate', '--model', model, '--prompt', 'x', '--out', join(model, 'a.jpg'));
    expect(r4.code).toBe(2);
    expect(r4.errLines).toEqual([expect.stringMatching(/^lpo generate: --out must name a \.png file/)]);
  });

  it('--help prints the generated option list, exit 0', async () => {
    const r = await cli('generate', '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: lpo generate --model <diffusers folder> --prompt <text> \[options\]$/m);
    expect(r.stdout).toMatch(/^ {2}--steps <n>\s+DDIM steps \(integer ≥ 1; default 20\)$/m);
  });
});
