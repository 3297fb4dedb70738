// The public API (src/index.ts and src/api/*.ts, listed in package.json `exports`): each runtime name is exported
// from exactly one entry point, the short op names stay out of the package root, and internals are not exported.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageEntries } from '../scripts/entries.mjs';
import { ROOT } from './tiny-sd.js';

const entries = packageEntries();

async function load(): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const [sub, e] of Object.entries(entries)) out.set(sub, Object.keys(await import(join(ROOT, e.source))));
  return out;
}

describe('public API', () => {
  it('package.json exports and src/api/*.ts list the same entry points', () => {
    const api = readdirSync(join(ROOT, 'src/api')).filter((f) => f.endsWith('.ts')).map((f) => `./${f.slice(0, -3)}`).sort();
    expect(Object.keys(entries).filter((s) => s !== '.').sort()).toEqual(api);
    expect(entries['.'].source).toBe('src/index.ts');
  });

  it('each name is exported from exactly one entry point', async () => {
    const seen = new Map<string, string>();
    const twice: string[] = [];
    for (const [sub, names] of await load()) {
      for (const n of names) {
        if (seen.has(n)) twice.push(`${n} (${seen.get(n)} and ${sub})`);
        seen.set(n, sub);
      }
    }
    expect(twice).toEqual([]);
    expect(seen.size).toBeGreaterThan(100);
  });

  it('the package root has the core and no short op names; the ops are in lpo-wgsl/ops', async () => {
    const all = await load();
    const root = all.get('.')!;
    for (const n of ['initGpu', 'Tensor', 'tidy', 'backward', 'noGrad', 'gradcheck', 'AdamW', 'LpoError', 'StableDiffusionPipeline', 'UNet2DConditionModel']) {
      expect(root, n).toContain(n);
    }
    const ops = all.get('./ops')!;
    for (const n of ['log', 'exp', 'max', 'sum', 'mean', 'scale', 'fill', 'add', 'mul', 'matmul', 'conv2d', 'silu', 'softmax']) {
      expect(root, n).not.toContain(n);
      expect(ops, n).toContain(n);
    }
  });

  it('internals are not exported', async () => {
    const exported = new Set([...(await load()).values()].flat());
    const internals = [
      'UNARY', 'BINARY', 'unary', 'binary', 'broadcastShapes', 'sumToShape', 'record', 'Tape', 'withTape', 'currentTape', 'f32', 'i32',
      'ZeroInitGenerator', 'verifyReference', 'formatReport', 'ReferenceDataError', 'resolveMatmulVariant', 'resolveConv2dVariant',
      'resolveLoraVariant', 'normConfig', 'attentionConfig', 'loraConfig', 'autotuneMatmul', 'matmulAutotuner', 'ddimLogProbRef',
      'findAsset', 'htmlUnescape', 'acquireDevice', 'BufferPool',
    ];
    expect(internals.filter((n) => exported.has(n))).toEqual([]);
  });
});
