// End-to-end: `lpo generate` on a diffusers-layout folder assembled from the golden tiny components.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runNode } from './helpers.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPng } from '../src/io/image.js';

const ROOT = resolve(__dirname, '..');
const GOLDEN = [join(ROOT, 'test/fixtures/golden'), resolve(ROOT, '../shared/golden')].find((d) => existsSync(join(d, 'manifest.json')))!;
let model = '';

async function cli(...args: string[]) {
  const r = await runNode([join(ROOT, 'dist/cli.js'), ...args], { cwd: ROOT, timeoutMs: 600_000});
  const errLines = r.stderr.split(/[\n\r]/).filter((l) => l.trim() && !l.startsWith('Warning:'));
  return { code: r.code, stdout: r.stdout, stderr: r.stderr, errLines };
}

beforeAll(() => {
  execFileSync(process.execPath, [join(ROOT, 'build.mjs')], { cwd: ROOT, stdio: 'pipe' });
  model = mkdtempSync(join(tmpdir(), 'lpo-sd-'));
  const put = (dir: string, files: [string, string][]) => {
    mkdirSync(join(model, dir), { recursive: true });
    for (const [from, to] of files) copyFileSync(from, join(model, dir, to));
  };
  put('text_encoder', [[join(GOLDEN, 'text_encoder/config.json'), 'config.json'], [join(GOLDEN, 'text_encoder/weights.safetensors'), 'model.safetensors']]);
  put('unet', [[join(GOLDEN, 'unet/config.json'), 'config.json'], [join(GOLDEN, 'unet/weights.safetensors'), 'diffusion_pytorch_model.safetensors']]);
  put('vae', [[join(GOLDEN, 'vae/config.json'), 'config.json'], [join(GOLDEN, 'vae/weights.safetensors'), 'diffusion_pytorch_model.safetensors']]);
  put('scheduler', [[join(GOLDEN, 'ddim/scheduler_config.json'), 'scheduler_config.json']]);
  put('tokenizer', [[join(ROOT, 'assets/bpe_simple_vocab_16e6.txt.gz'), 'bpe_simple_vocab_16e6.txt.gz']]);
  writeFileSync(join(model, 'model_index.json'), JSON.stringify({
    _class_name: 'StableDiffusionPipeline',
    text_encoder: ['transformers', 'CLIPTextModel'], tokenizer: ['transformers', 'CLIPTokenizer'],
    unet: ['diffusers', 'UNet2DConditionModel'], vae: ['diffusers', 'AutoencoderKL'], scheduler: ['diffusers', 'PNDMScheduler'],
    safety_checker: [null, null],
  }));
});

afterAll(() => {
  if (model) rmSync(model, { recursive: true, force: true });
});

describe('lpo generate (built CLI)', () => {
  it('writes a PNG of the requested size, with a progress bar on stderr; the same seed gives the same image', async () => {
    const out1 = join(model, 'a.png');
    const out2 = join(model, 'b.png');
    const args = ['--model', model, '--prompt', 'a photo of an astronaut riding a horse on mars', '--steps', '4', '--guidance', '7.5', '--seed', '3', '--height', '16', '--width', '24'];
    const r = await cli('generate', ...args, '--out', out1);
    expect(r.errLines.join('\n')).not.toMatch(/error|lpo generate:/i);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/\[#+\] 4\/4 t=1 /);
    const img = readPng(out1);
    expect([img.height, img.width]).toEqual([16, 24]);
    expect((await cli('generate', ...args, '--out', out2)).code).toBe(0);
    expect(readFileSync(out1).equals(readFileSync(out2))).toBe(true);
    const r3 = await cli('generate', ...args.slice(0, -6), '--seed', '4', '--height', '16', '--width', '24', '--eta', '1', '--negative', 'blurry', '--out', out2);
    expect(r3.code).toBe(0);
    expect(readFileSync(out1).equals(readFileSync(out2))).toBe(false);
  });

  it('bad arguments and a missing model folder: one clear line, exit 1', async () => {
    const r1 = await cli('generate', '--prompt', 'x');
    expect(r1.code).toBe(1);
    expect(r1.errLines).toEqual([expect.stringMatching(/^lpo generate: --model <diffusers folder> is required/)]);
    const r2 = await cli('generate', '--model', join(model, 'nope'), '--prompt', 'x');
    expect(r2.code).toBe(1);
    expect(r2.errLines).toEqual([expect.stringMatching(/^lpo generate: .*does not exist/)]);
    const r3 = await cli('generate', '--model', model, '--prompt', 'x', '--steps', 'many');
    expect(r3.code).toBe(1);
    expect(r3.errLines).toEqual([expect.stringMatching(/^lpo generate: --steps needs an integer/)]);
  });
});
