// End-to-end: the built CLI's train-lrm, eval-lrm and score on a tiny diffusers folder and a pair folder.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePng } from '../src/io/image.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { writePairFolder } from '../src/io/pairs/index.js';
import { brightDarkPairs } from '../src/lrm/synthetic.js';
import { runNode } from './helpers.js';
import { ROOT, writeTinySd } from './tiny-sd.js';
import { writeFileSync } from 'node:fs';

let tmp = '';
let model = '';
let data = '';

async function cli(...args: string[]) {
  const r = await runNode([join(ROOT, 'dist/cli.js'), ...args], { cwd: ROOT, timeoutMs: 600_000 });
  const errLines = r.stderr.split(/[\n\r]/).filter((l) => l.trim() && !l.startsWith('Warning:'));
  return { code: r.code, stdout: r.stdout, stderr: r.stderr, errLines };
}

beforeAll(async () => {
  execFileSync(process.execPath, [join(ROOT, 'build.mjs')], { cwd: ROOT, stdio: 'pipe' });
  tmp = mkdtempSync(join(tmpdir(), 'lpo-lrm-cli-'));
  model = writeTinySd(join(tmp, 'sd'));
  data = join(tmp, 'pairs');
  // The golden U-Net takes 8×8 latents: 12 training and 6 validation pairs with pre-encoded latents.
  const pairs = brightDarkPairs(18, 3, { side: 8, tieEvery: 6 }).map((p, i) => ({
    caption: p.caption, label0: p.label0, label1: p.label1, numExamplesPerPrompt: p.numExamplesPerPrompt,
    latent0: p.latent0, latent1: p.latent1, split: i < 12 ? 'train' as const : 'validation' as const,
  }));
  await writePairFolder(data, pairs);
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('lpo train-lrm / eval-lrm / score (built CLI)', () => {
  it('train-lrm: progress, validation lines, checkpoints, metrics.jsonl, the accuracy plot and the table; then eval-lrm and score', async () => {
    const out = join(tmp, 'run');
    const r = await cli('train-lrm', '--model', model, '--data', data, '--steps', '3', '--batch', '4', '--micro-batch', '2', '--lr', '1e-3',
      '--warmup', '1', '--eval-every', '2', '--plot-timesteps', '1,501,951', '--head-steps', '2', '--head-draws', '1', '--out', out);
    expect(r.errLines.join('\n')).not.toMatch(/lpo train-lrm:/);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^LRM: .* parameters .*features 1,3 \+ mid, w = 7\.5/m);
    expect(r.stderr).toMatch(/^train 3\/3 100% .*loss=/m);
    expect(r.stderr).toMatch(/^heads: fitted on \d+ noisy pairs \(\d+ × 1\) in [\d.]+ s; training accuracy [\d.]+%$/m);
    expect(r.stderr).toMatch(/^eval step 0: 6 pairs, accuracy t=1 \d+\.\d%.*by t: 1:\d+ 501:\d+ 951:\d+/m);
    expect(r.stderr).toMatch(/^eval step 2: 6 pairs/m);
    expect(r.stdout).toMatch(/^timestep {2}accuracy/m);
    expect(r.stdout).toMatch(/^ {5}951 +\d+\.\d%$/m);
    for (const f of ['best/heads.safetensors', 'final/unet/diffusion_pytorch_model.safetensors', 'final/config.json', 'metrics.jsonl', 'accuracy_by_timestep.svg']) {
      expect(existsSync(join(out, f)), f).toBe(true);
    }
    const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.filter((l) => l.type === 'step')).toHaveLength(3);
    expect(readFileSync(join(out, 'accuracy_by_timestep.svg'), 'utf8')).toMatch(/^<svg [^]*<polyline[^]*<\/svg>\s*$/);
    expect(JSON.parse(readFileSync(join(out, 'final/config.json'), 'utf8')).base_model).toBe(model);

    const e = await cli('eval-lrm', '--lrm', join(out, 'final'), '--data', data, '--timesteps', '1,951');
    expect(e.code).toBe(0);
    expect(e.stdout).toMatch(/^6 pairs; accuracy at t = 1: \d+\.\d%$/m);
    expect(e.stdout).toMatch(/^ {5}951 +\d+\.\d%$/m);

    // An image goes through the base model's VAE (16×16 pixels for the golden VAE); latents are scored as they are.
    const png = join(tmp, 'img.png');
    writeFileSync(png, encodePng(Float32Array.from({ length: 3 * 16 * 16 }, (_, i) => (i % 7) / 7), [3, 16, 16]));
    const s1 = await cli('score', '--lrm', join(out, 'final'), '--prompt', 'bright', '--t', '1', png);
    expect(s1.code).toBe(0);
    expect(s1.stdout).toMatch(/img\.png\tt=1\tscore -?\d+\.\d{4}/);
    const lat = join(tmp, 'lat.safetensors');
    await writeSafetensors(lat, { x: { dtype: 'F32', shape: [2, 4, 8, 8], data: Float32Array.from({ length: 512 }, (_, i) => Math.sin(i)) } });
    const s2 = await cli('score', '--lrm', join(out, 'final'), '--prompt', 'dark', '--t', '501', lat);
    expect(s2.code).toBe(0);
    expect(s2.stdout.trim().split('\n')).toHaveLength(2);
  });

  it('usage errors exit 2 with one line', async () => {
    const r = await cli('train-lrm', '--data', data);
    expect(r.code).toBe(2);
    expect(r.errLines.join('\n')).toMatch(/--model <diffusers folder> is required/);
    const s = await cli('score', '--lrm', model, '--prompt', 'x');
    expect(s.code).toBe(2);
  });
});
