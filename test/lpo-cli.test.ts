// The LPO commands in-process on the golden tiny SD folder and a tiny LRM built from it: train-lpo (metrics,
// checkpoint, LoRA file, --resume), sample (base | tuned grid) and generate --best-of; usage errors.
import { appendFileSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupGpu } from './helpers.js';
import { writeTinySd } from './tiny-sd.js';
import { LatentRewardModel } from '../src/lrm/model.js';
import { readPng } from '../src/io/image.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { trainLpoCommand } from '../src/cli/train_lpo.js';
import { sampleCommand } from '../src/cli/sample.js';
import { generate } from '../src/cli/generate.js';
import { UsageError } from '../src/errors.js';
import { LatentSpaceMismatchError } from '../src/lpo/reward.js';
import { resolveCheckpoint } from '../src/lpo/checkpoint.js';

let dir: string;
let sd: string;
let lrmDir: string;
let prompts: string;

beforeAll(async () => {
  await setupGpu();
  dir = mkdtempSync(join(tmpdir(), 'lpo-cli-'));
  sd = writeTinySd(join(dir, 'sd'));
  // A sharp tiny LRM on the same base (τ = ln 2000 so that random heads separate candidates).
  const lrm = await LatentRewardModel.fromDiffusers(sd, { config: { logitScaleInit: Math.log(2000), sampleSize: 8 }, seed: 5 });
  lrmDir = join(dir, 'lrm');
  await lrm.save(lrmDir);
  lrm.dispose();
  prompts = join(dir, 'prompts.json');
  writeFileSync(prompts, JSON.stringify([{ caption: 'a red cube' }, { caption: 'a blue sphere' }, { caption: 'a green cone' }]));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const quiet = async <T>(fn: () => Promise<T>): Promise<T> => {
  const w = process.stderr.write.bind(process.stderr);
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    return await fn();
  } finally {
    process.stderr.write = w;
  }
};

describe('lpo train-lpo', () => {
  it('runs iterations, writes metrics, a checkpoint and a diffusers-format LoRA; --resume continues the count', async () => {
    const out = join(dir, 'run');
    const common = ['--model', sd, '--lrm', lrmDir, '--prompts', prompts, '--out', out, '--sample-batch', '1', '--train-batch', '8', '--lr', '1e-3', '--epochs', '1'];
    expect(await quiet(() => trainLpoCommand([...common, '--max-iterations', '1']))).toBe(0);
    const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(1);
    expect(lines[0].items).toBeGreaterThan(0);
    expect(JSON.parse(readFileSync(join(out, 'checkpoints/step-00000001/state.json'), 'utf8')).iteration).toBe(1);
    const f = SafetensorsFile.openSync(join(out, 'lora.safetensors'));
    expect(f.keys().length).toBe(64);
    expect(f.keys().every((k) => /^unet\..*\.lora_[AB]\.weight$/.test(k))).toBe(true);
    f.closeSync();
    expect(await quiet(() => trainLpoCommand([...common, '--resume', '--max-iterations', '1']))).toBe(0);
    const after = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(after.map((m) => m.iteration)).toEqual([0, 1]);
    expect(JSON.parse(readFileSync(join(out, 'checkpoints/step-00000002/state.json'), 'utf8')).iteration).toBe(2);
    // A corrupted newest checkpoint is reported and the previous one is used.
    const copy = join(dir, 'run-copy');
    cpSync(out, copy, { recursive: true });
    appendFileSync(join(copy, 'checkpoints/step-00000002/lora.safetensors'), 'x');
    const warnings: string[] = [];
    expect(resolveCheckpoint(join(copy, 'checkpoints'), (m) => warnings.push(m))).toBe(join(copy, 'checkpoints/step-00000001'));
    expect(warnings[0]).toMatch(/step-00000002 is corrupted/);
  });

  it('usage errors: constant threshold without a value, a bad range, an LRM on another latent space', async () => {
    const base = ['--model', sd, '--lrm', lrmDir, '--prompts', prompts, '--out', join(dir, 'bad')];
    await expect(trainLpoCommand([...base, '--threshold', 'constant'])).rejects.toThrow(UsageError);
    await expect(trainLpoCommand([...base, '--timestep-range', '1'])).rejects.toThrow(UsageError);
    await expect(trainLpoCommand([...base, '--algo', 'ppo'])).rejects.toThrow(UsageError);
    const other = join(dir, 'other-vae');
    writeTinySd(other);
    const cfg = JSON.parse(readFileSync(join(other, 'vae/config.json'), 'utf8'));
    writeFileSync(join(other, 'vae/config.json'), JSON.stringify({ ...cfg, latent_channels: 8 }));
    await expect(quiet(() => trainLpoCommand([...base, '--lrm-vae', join(other, 'vae')]))).rejects.toThrow(LatentSpaceMismatchError);
  });
});

describe('lpo sample and generate --best-of', () => {
  it('sample writes a base | tuned grid; generate --best-of writes an image', async () => {
    const lora = join(dir, 'run/lora.safetensors');
    const grid = join(dir, 'grid.png');
    expect(await quiet(() => sampleCommand(['--model', sd, '--lora', lora, '--prompts', prompts, '--max-prompts', '2', '--seeds', '0,1', '--steps', '4', '--out', grid]))).toBe(0);
    const img = readPng(grid);
    // The tiny VAE upsamples 8×8 latents 2×: 2 rows of 16 px with a 4 px gutter; 4 columns (2 base, 2 tuned),
    // 3 gutters and the wider base|tuned gap.
    expect([img.height, img.width]).toEqual([2 * 16 + 4, 4 * 16 + 3 * 4 + 8]);
    const best = join(dir, 'best.png');
    expect(await quiet(() => generate(['--model', sd, '--prompt', 'a red cube', '--best-of', '3', '--lrm', lrmDir, '--steps', '4', '--out', best]))).toBe(0);
    expect(existsSync(best)).toBe(true);
    await expect(generate(['--model', sd, '--prompt', 'x', '--best-of', '3'])).rejects.toThrow(UsageError);
  });
});
