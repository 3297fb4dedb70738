// End to end: build the bundle, then run `node dist/cli.js inspect …` as a user would.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCli, lpo as run } from './cli.js';

const ROOT = path.resolve(__dirname, '..');
const GOLDEN = path.join(ROOT, 'test/fixtures/golden');
let dir: string;

const lpo = (...args: string[]) => run(args);

/** A safetensors file with a hand-made header. */
function raw(name: string, header: unknown, dataBytes: number): string {
  const h = Buffer.from(JSON.stringify(header));
  const b = Buffer.alloc(8 + h.length + dataBytes);
  b.writeBigUInt64LE(BigInt(h.length));
  h.copy(b, 8);
  const p = path.join(dir, name);
  fs.writeFileSync(p, b);
  return p;
}

beforeAll(() => {
  buildCli();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lpo-cli-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('lpo inspect', () => {
  it('lists the tensors, dtypes, shapes, totals and metadata of a file', async () => {
    const r = await lpo('inspect', path.join(GOLDEN, 'text_encoder/weights.safetensors'));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^metadata: format=pt$/m);
    expect(r.stdout).toMatch(/^text_model\.embeddings\.position_ids\s+I64\s+\[1, 77\]$/m);
    expect(r.stdout).toMatch(/^text_model\.embeddings\.token_embedding\.weight\s+F32\s+\[49408, 16\]$/m);
    // 37 tensors: 796,240 parameters + the 77 position ids
    expect(r.stdout).toMatch(/^total: 37 tensors, 796,317 parameters, 3,185,576 bytes .*; F32 36 \(796,240\), I64 1 \(77\)$/m);
  });

  it('prints JSON with --json and filters keys', async () => {
    const r = await lpo('inspect', path.join(GOLDEN, 'vae/weights.safetensors'), '--json', '--filter', 'mid_block\\.attentions');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.tensors).toBe(20); // to_q/k/v/out.0 weight+bias and group_norm, encoder and decoder
    expect(j.list.map((t: { key: string }) => t.key)).toContain('decoder.mid_block.attentions.0.to_out.0.weight');
  });

  it('describes a diffusers folder: components, configs, weights', async () => {
    const m = path.join(dir, 'model');
    fs.mkdirSync(path.join(m, 'unet'), { recursive: true });
    fs.mkdirSync(path.join(m, 'scheduler'), { recursive: true });
    fs.writeFileSync(path.join(m, 'model_index.json'), JSON.stringify({ _class_name: 'StableDiffusionPipeline', unet: ['diffusers', 'UNet2DConditionModel'], scheduler: ['diffusers', 'DDIMScheduler'] }));
    fs.copyFileSync(path.join(GOLDEN, 'unet/config.json'), path.join(m, 'unet/config.json'));
    fs.copyFileSync(path.join(GOLDEN, 'unet/weights.safetensors'), path.join(m, 'unet/diffusion_pytorch_model.safetensors'));
    fs.copyFileSync(path.join(GOLDEN, 'ddim/scheduler_config.json'), path.join(m, 'scheduler/scheduler_config.json'));
    const r = await lpo('inspect', m);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/StableDiffusionPipeline \(model_index\.json\); components: unet, scheduler/);
    expect(r.stdout).toMatch(/^\[unet\] UNet2DConditionModel$/m);
    expect(r.stdout).toMatch(/^ {4}cross_attention_dim: 16$/m);
    expect(r.stdout).toMatch(/^ {2}weights: .*diffusion_pytorch_model\.safetensors$/m);
    expect(r.stdout).toMatch(/^\[scheduler\] DDIMScheduler$/m);
    expect(r.stdout).toMatch(/^all components: [\d,]+ parameters/m);
  });

  it.each([
    ['a gap between tensors', () => raw('gap.safetensors', { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [12, 20] } }, 20), /tensor "b".*gap/],
    ['a bad dtype', () => raw('dtype.safetensors', { w: { dtype: 'Q4', shape: [2], data_offsets: [0, 8] } }, 8), /tensor "w": unknown dtype "Q4"/],
    ['a truncated file', () => raw('trunc.safetensors', { w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 9), /file is truncated/],
    ['a missing file', () => path.join(dir, 'absent.safetensors'), /<target>: '.*' does not exist \(see lpo inspect --help\)$/, 2],
  ])('reports %s in one line with exit code 1 (2 for a usage error)', async (_what, make, pattern, code = 1) => {
    const p = make();
    const r = await lpo('inspect', p);
    expect(r.code).toBe(code);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^lpo inspect: /);
    expect(lines[0]).toMatch(pattern);
    expect(lines[0]).toContain(p);
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });

  it('shows the stack trace only with --debug', async () => {
    const p = raw('debug.safetensors', { w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4);
    const r = await lpo('inspect', p, '--debug');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/SafetensorsError/);
    expect(r.stderr).toMatch(/^\s+at /m);
  });

  it('rejects unknown options and a bad --filter in one line, exit 2', async () => {
    const r = await lpo('inspect', '--frobnicate');
    expect(r.code).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr.trimEnd()).toBe("lpo inspect: unknown option '--frobnicate' (see lpo inspect --help)");
    const f = await lpo('inspect', path.join(GOLDEN, 'vae/weights.safetensors'), '--filter', '(');
    expect(f.code).toBe(2);
    expect(f.stderr).toMatch(/^lpo inspect: --filter: Invalid regular expression/);
  });

  it('--help prints the generated usage, exit 0', async () => {
    const r = await lpo('inspect', '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: lpo inspect <target> \[options\]$/m);
    expect(r.stdout).toMatch(/^ {2}--\[no-\]tensors\s+list every tensor/m);
  });
});
