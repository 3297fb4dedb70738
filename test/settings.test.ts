// src/settings.ts: the LPO_* variables parsed once into one typed object, overrides that restore.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { settings, settingsFromEnv, withSettings, overrideSettings } from '../src/settings.js';
import { ArgumentError } from '../src/errors.js';

const SRC = join(import.meta.dirname, '..', 'src');
function* tsFiles(dir: string): Generator<string> {
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) yield* tsFiles(p);
    else if (f.endsWith('.ts')) yield p;
  }
}

describe('settings', () => {
  it('defaults from an empty environment', () => {
    const s = settingsFromEnv({});
    expect(s).toMatchObject({
      adapter: undefined, submitEvery: 128, debugSync: false, checkFinite: false, dumpWgsl: false, matmulVariant: undefined,
      matmulSplitK: undefined, gpuSms: 132, autotune: 'background', autotuneCache: true, autotuneDispatchNs: 3000,
      normVariant: 'auto', attentionQueriesPerThread: 0, loraVariant: 'auto', benchFull: false, fuse: true, pack: true,
      experimentalFeatures: true, fragUnit: 'auto', conv2dVariant: undefined,
    });
    expect(s.bench).toEqual({ latent: undefined, b: undefined, p: undefined, checkpointing: false, profile: false, e2eIters: undefined, e2eEvalEvery: undefined, e2eLr: undefined, demoPhases: 'bench/results/demo-phases.json', f16Out: undefined });
    expect(s.cacheDir).toMatch(/\.cache[/\\]lpo-wgsl$/);
    expect(settingsFromEnv({ VITEST: 'true' }).autotune).toBe('explicit');
  });

  it('parses every variable', () => {
    const s = settingsFromEnv({
      LPO_ADAPTER: 'nvidia', LPO_SUBMIT_EVERY: '7', LPO_DEBUG_SYNC: '1', LPO_CHECK_FINITE: '1', LPO_DUMP_WGSL: '1',
      LPO_MATMUL_VARIANT: 'gemm64', LPO_MATMUL_SPLITK: '4', LPO_GPU_SMS: '80', LPO_AUTOTUNE: '0', LPO_AUTOTUNE_CACHE: '0',
      LPO_AUTOTUNE_DISPATCH_NS: '0', LPO_CACHE_DIR: '/tmp/x', LPO_NORM_VARIANT: 'wg', LPO_ATTENTION_QPT: '2',
      LPO_LORA_VARIANT: 'rows', LPO_BENCH_FULL: '1', LPO_FUSE: '0', LPO_PACK: '0', LPO_DAWN_POLL: 'spin', LPO_BENCH_LATENT: '16', LPO_BENCH_B: '2', LPO_BENCH_P: '3',
      LPO_BENCH_CKPT: '1', LPO_BENCH_PROFILE: '1', LPO_E2E_ITERS: '5', LPO_E2E_EVAL: '2', LPO_E2E_LR: '0.01', LPO_BENCH_DEMO_PHASES: '/tmp/p.json',
      LPO_EXPERIMENTAL: '0', LPO_FRAG: 'simt', LPO_CONV2D_VARIANT: 'gemm', LPO_BENCH_F16_OUT: '/tmp/f16.json',
    });
    expect(s).toEqual({
      adapter: 'nvidia', submitEvery: 7, debugSync: true, checkFinite: true, dumpWgsl: true, matmulVariant: 'gemm64',
      matmulSplitK: 4, gpuSms: 80, autotune: 'off', autotuneCache: false, autotuneDispatchNs: 0, cacheDir: '/tmp/x',
      normVariant: 'wg', attentionQueriesPerThread: 2, loraVariant: 'rows', benchFull: true, fuse: false, pack: false, dawnPoll: 'spin',
      experimentalFeatures: false, fragUnit: 'simt', conv2dVariant: 'gemm',
      bench: { latent: 16, b: 2, p: 3, checkpointing: true, profile: true, e2eIters: 5, e2eEvalEvery: 2, e2eLr: 0.01, demoPhases: '/tmp/p.json', f16Out: '/tmp/f16.json' },
    });
    expect(settingsFromEnv({ LPO_AUTOTUNE: '1', VITEST: 'true' }).autotune).toBe('background');
  });

  it('a bad value is an ArgumentError naming the variable and what it takes', () => {
    const bad: [Record<string, string>, RegExp][] = [
      [{ LPO_MATMUL_VARIANT: 'fast' }, /LPO_MATMUL_VARIANT=fast: expected one of naive\|blocked/],
      [{ LPO_SUBMIT_EVERY: '0' }, /LPO_SUBMIT_EVERY=0: expected an integer in \[1, 512\]/],
      [{ LPO_SUBMIT_EVERY: 'many' }, /LPO_SUBMIT_EVERY=many/],
      [{ LPO_DEBUG_SYNC: 'yes' }, /LPO_DEBUG_SYNC=yes: expected 0 or 1/],
      [{ LPO_AUTOTUNE: '2' }, /LPO_AUTOTUNE=2: expected 0 or 1/],
      [{ LPO_NORM_VARIANT: 'fast' }, /LPO_NORM_VARIANT=fast: expected one of auto\|serial\|wg/],
      [{ LPO_FUSE: 'no' }, /LPO_FUSE=no: expected 0 or 1/],
      [{ LPO_DAWN_POLL: 'busy' }, /LPO_DAWN_POLL=busy: expected one of auto|spin|throttle/],
      [{ LPO_E2E_LR: '-1' }, /LPO_E2E_LR=-1: expected a positive number/],
    ];
    for (const [env, msg] of bad) {
      expect(() => settingsFromEnv(env)).toThrow(ArgumentError);
      expect(() => settingsFromEnv(env)).toThrow(msg);
    }
  });

  it('withSettings overrides for the call and restores after a return, a throw and a rejection', async () => {
    const before = settings.normVariant;
    expect(withSettings({ normVariant: 'wg' }, () => settings.normVariant)).toBe('wg');
    expect(settings.normVariant).toBe(before);
    expect(() => withSettings({ normVariant: 'wg' }, () => { throw new Error('boom'); })).toThrow('boom');
    expect(settings.normVariant).toBe(before);
    await expect(withSettings({ normVariant: 'serial' }, async () => {
      await new Promise((r) => setTimeout(r, 1));
      expect(settings.normVariant).toBe('serial');
      throw new Error('later');
    })).rejects.toThrow('later');
    expect(settings.normVariant).toBe(before);
    const restore = overrideSettings({ loraVariant: 'tiled', gpuSms: 8 });
    expect([settings.loraVariant, settings.gpuSms]).toEqual(['tiled', 8]);
    restore();
    const env = settingsFromEnv(process.env);
    expect([settings.loraVariant, settings.gpuSms]).toEqual([env.loraVariant, env.gpuSms]);
  });

  it('no module but src/settings.ts reads an LPO_ variable from the environment', () => {
    const readers = [...tsFiles(SRC)].filter((f) => !f.endsWith('settings.ts') && /process\.env(\.LPO_|\[['"]LPO_)/.test(readFileSync(f, 'utf8')));
    expect(readers.map((f) => f.slice(SRC.length + 1))).toEqual([]);
  });
});
