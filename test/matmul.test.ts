import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { setupGpu, relL2, randNonZero, f32round } from './helpers.js';
import { matmulRef, type Act } from './ref/linalg.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { matmul, linear } from '../src/tensor/ops/matmul.js';
import {
  resolveMatmulVariant, matmulGeometry, planMatmul, tuneCandidates, parseConfigId, configId, staticConfig, type MatmulVariant, type GemmVariant,
} from '../src/tensor/plan/matmul.js';
import { matmulAutotuneEnabled, matmulBucket, currentMatmulConfig, measureConfig } from '../src/tensor/plan/matmul-tune.js';
import { settings, withSettings } from '../src/settings.js';
import { Autotuner } from '../src/gpu/autotune.js';
import { gpu } from '../src/gpu/runtime.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sumAll } from '../src/tensor/ops/reduce.js';
import { mul } from '../src/tensor/ops/elementwise.js';
import { backward, requireGrad } from '../src/autograd/tape.js';
import { gradcheck } from '../src/autograd/gradcheck.js';

beforeAll(setupGpu);
// Which adapter decides which tests apply: skipped (not passed) where they do not.
const { isSoftware, acquired: { hasTimestamps } } = await setupGpu();

const VARIANTS: MatmulVariant[] = ['naive', 'blocked', 'strip'];
const allFinite = (y: ArrayLike<number>) => Array.prototype.every.call(y, (v: number) => Number.isFinite(v));

interface Case { batch: number; M: number; K: number; N: number; transA?: boolean; transB?: boolean; bBatched?: boolean; bias?: boolean; act?: Act }

async function runCase(c: Case, variant: MatmulVariant | undefined, seed: number, extra: { splitK?: number; bk?: number } = {}) {
  const gen = new Generator(seed);
  const { batch, M, K, N } = c;
  const bBatched = c.bBatched ?? true;
  const a = f32round(randNonZero(gen, batch * M * K));
  const b = f32round(randNonZero(gen, (bBatched ? batch : 1) * K * N));
  const bias = c.bias ? f32round(randNonZero(gen, N)) : undefined;
  const aShape = batch > 1 ? [batch, ...(c.transA ? [K, M] : [M, K])] : c.transA ? [K, M] : [M, K];
  const bMat = c.transB ? [N, K] : [K, N];
  const bShape = bBatched && batch > 1 ? [batch, ...bMat] : bMat;
  const ta = Tensor.fromArray(a, aShape);
  const tb = Tensor.fromArray(b, bShape);
  const tbias = bias ? Tensor.fromArray(bias, [N]) : undefined;
  // Poison: release a NaN buffer of the output's size so the pool hands it to the matmul; every
  // element must be overwritten (checked by allFinite / relL2 below).
  Tensor.fromArray(new Float32Array(batch * M * N).fill(NaN), [batch * M * N]).dispose();
  const y = matmul(ta, tb, { transA: c.transA, transB: c.transB, bias: tbias, activation: c.act, variant, ...extra });
  expect(y.shape).toEqual(batch > 1 ? [batch, M, N] : [M, N]);
  const got = await y.toArray();
  const ref = matmulRef(a, b, { batch, M, N, K, transA: c.transA, transB: c.transB, aBatched: true, bBatched: bBatched && batch > 1, bias, act: c.act });
  [ta, tb, tbias, y].forEach((t) => t?.dispose());
  return { got, ref };
}

describe('matmul forward', () => {
  for (const variant of VARIANTS) {
    it(`${variant}: ragged batched shapes, both transposes`, async () => {
      let seed = 10;
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const c: Case = { batch: 3, M: 37, K: 29, N: 45, transA, transB };
          const { got, ref } = await runCase(c, variant, seed++);
          expect(allFinite(got)).toBe(true);
          expect(relL2(got, ref), `${variant} tA=${transA} tB=${transB} (runs as ${resolveMatmulVariant(variant)})`).toBeLessThan(1e-5);
        }
      }
    });

    it(`${variant}: bias + each activation, b unbatched (folded batch)`, async () => {
      let seed = 20;
      // Every activation on the default variant; the epilogue is shared code, so two elsewhere (compiles are slow on lavapipe).
      const acts: Act[] = variant === 'blocked' ? ['none', 'relu', 'gelu', 'geluTanh', 'silu'] : ['none', 'geluTanh'];
      for (const act of acts) {
        const { got, ref } = await runCase({ batch: 2, M: 19, K: 33, N: 70, bBatched: false, bias: true, act, transB: act === 'gelu' }, variant, seed++);
        expect(relL2(got, ref), `${variant} ${act}`).toBeLessThan(1e-5);
      }
    });

    it(`${variant}: larger than one tile in every direction, K not a multiple of 4`, async () => {
      const { got, ref } = await runCase({ batch: 1, M: 133, K: 67, N: 141, transA: true }, variant, 30);
      expect(relL2(got, ref)).toBeLessThan(1e-5);
    });

    // K a multiple of 4 with A row-major: blocked reads A (and, transposed, B) as vec4 (blocked_va, blocked_vab);
    // N past one 64-column tile: two columns per lane, the second partly past N.
    it(`${variant}: K multiple of 4, N = 141 (vec4 entries, two columns per lane on blocked)`, async () => {
      let seed = 35;
      for (const transB of [false, true]) {
        const { got, ref } = await runCase({ batch: 2, M: 37, K: 36, N: 141, transB, bias: true }, variant, seed++);
        expect(relL2(got, ref), `${variant} tB=${transB}`).toBeLessThan(1e-5);
      }
    });
  }

  it('tiny and degenerate shapes (1×1×1, K = 1, M = 1)', async () => {
    for (const variant of VARIANTS) {
      for (const c of [{ batch: 1, M: 1, K: 1, N: 1 }, { batch: 2, M: 5, K: 1, N: 3 }, { batch: 1, M: 1, K: 9, N: 7 }]) {
        const { got, ref } = await runCase(c, variant, 40);
        expect(relL2(got, ref), `${variant} ${JSON.stringify(c)}`).toBeLessThan(1e-6);
      }
    }
  });

  it('broadcasts batch dims: a unbatched with b batched, and [2,1] × [1,3]', async () => {
    const gen = new Generator(50);
    const a = f32round(randNonZero(gen, 6 * 5));
    const b = f32round(randNonZero(gen, 4 * 5 * 7));
    const y = await matmul(Tensor.fromArray(a, [6, 5]), Tensor.fromArray(b, [4, 5, 7])).toArray();
    const ref = new Float64Array(4 * 6 * 7);
    for (let t = 0; t < 4; t++) ref.set(matmulRef(a, b.subarray(t * 35, (t + 1) * 35), { batch: 1, M: 6, N: 7, K: 5, aBatched: false, bBatched: false }), t * 42);
    expect(relL2(y, ref)).toBeLessThan(1e-6);

    const a2 = f32round(randNonZero(gen, 2 * 3 * 4));
    const b2 = f32round(randNonZero(gen, 3 * 4 * 5));
    const y2t = matmul(Tensor.fromArray(a2, [2, 1, 3, 4]), Tensor.fromArray(b2, [1, 3, 4, 5]));
    expect(y2t.shape).toEqual([2, 3, 3, 5]);
    const y2 = await y2t.toArray();
    const ref2 = new Float64Array(2 * 3 * 15);
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) {
      ref2.set(matmulRef(a2.subarray(i * 12, i * 12 + 12), b2.subarray(j * 20, j * 20 + 20), { batch: 1, M: 3, N: 5, K: 4, aBatched: false, bBatched: false }), (i * 3 + j) * 15);
    }
    expect(relL2(y2, ref2)).toBeLessThan(1e-6);
  });

  it('linear matches x·Wᵀ + b for 1-D, 2-D and 3-D x', async () => {
    const gen = new Generator(60);
    const w = f32round(randNonZero(gen, 11 * 13));
    const bias = f32round(randNonZero(gen, 11));
    const tw = Tensor.fromArray(w, [11, 13]);
    const tb = Tensor.fromArray(bias, [11]);
    for (const xs of [[13], [7, 13], [2, 5, 13]]) {
      const rows = xs.slice(0, -1).reduce((p, q) => p * q, 1);
      const x = f32round(randNonZero(gen, rows * 13));
      const y = linear(Tensor.fromArray(x, xs), tw, tb);
      expect(y.shape).toEqual([...xs.slice(0, -1), 11]);
      const ref = matmulRef(x, w, { batch: 1, M: rows, N: 11, K: 13, transB: true, aBatched: false, bBatched: false, bias });
      expect(relL2(await y.toArray(), ref), `x [${xs}]`).toBeLessThan(1e-6);
    }
  });

  it('throws ShapeError on mismatched inner dims or bias', () => {
    const a = Tensor.fromArray(new Float32Array(6), [2, 3]);
    const b = Tensor.fromArray(new Float32Array(8), [4, 2]);
    expect(() => matmul(a, b)).toThrow(/inner dimensions/);
    expect(() => matmul(a, b, { transB: true, bias: Tensor.fromArray(new Float32Array(3), [3]) })).toThrow(/bias/);
  });
});

// The SGEMM family has barriers: slow to compile and run on lavapipe, so few small pipelines each.
describe('matmul gemm variants', () => {
  const GEMMS: GemmVariant[] = ['gemm128', 'gemm128x64', 'gemm64'];
  for (const variant of GEMMS) {
    it(`${variant}: ragged batched 3×37×29×45, all transposes`, async () => {
      let seed = 110;
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const { got, ref } = await runCase({ batch: 3, M: 37, K: 29, N: 45, transA, transB }, variant, seed++);
          expect(allFinite(got)).toBe(true);
          expect(relL2(got, ref), `${variant} tA=${transA} tB=${transB}`).toBeLessThan(1e-5);
        }
      }
    });
  }

  it('gemm64: 133×67×141 (several tiles, transA), bias + geluTanh with b unbatched', async () => {
    const r1 = await runCase({ batch: 1, M: 133, K: 67, N: 141, transA: true }, 'gemm64', 130);
    expect(relL2(r1.got, r1.ref)).toBeLessThan(1e-5);
    const r2 = await runCase({ batch: 2, M: 19, K: 33, N: 70, bBatched: false, bias: true, act: 'geluTanh' }, 'gemm64', 131);
    expect(relL2(r2.got, r2.ref)).toBeLessThan(1e-5);
  });

  it('gemm128: 133×67×141 crosses tile edges in M and N (transB, GBK 16)', async () => {
    const r = await runCase({ batch: 1, M: 133, K: 67, N: 141, transB: true }, 'gemm128', 132, { bk: 16 });
    expect(allFinite(r.got)).toBe(true);
    expect(relL2(r.got, r.ref)).toBeLessThan(1e-5);
  });

  it('split-K: K not a multiple of the split, batched, bias + silu in the reduce; more splits than k slices', async () => {
    // K = 67 in 3 splits of kc = 24 (GBK 8): slices 24, 24, 19.
    const r1 = await runCase({ batch: 2, M: 21, K: 67, N: 30, transA: true, bias: true, act: 'silu' }, 'gemm64', 140, { splitK: 3 });
    expect(allFinite(r1.got)).toBe(true);
    expect(relL2(r1.got, r1.ref)).toBeLessThan(1e-5);
    // splitK 16 on K = 29 (4 slices of 8): clamped to 4 splits, and b unbatched (folded batch) with transB.
    const r2 = await runCase({ batch: 2, M: 19, K: 29, N: 45, transB: true, bBatched: false }, 'gemm128x64', 141, { splitK: 16 });
    expect(relL2(r2.got, r2.ref)).toBeLessThan(1e-5);
    // K = 1 and M = 1 with a split request: degenerates to one slice.
    const r3 = await runCase({ batch: 1, M: 1, K: 1, N: 7 }, 'gemm64', 142, { splitK: 4 });
    expect(relL2(r3.got, r3.ref)).toBeLessThan(1e-6);
  });
});

describe('matmul autotune', () => {
  it.skipIf(!isSoftware)('never tunes on a software adapter; the default stays blocked there', () => {
    expect(matmulAutotuneEnabled()).toBe(false);
    expect(currentMatmulConfig(matmulGeometry(512, 512, 512))).toBe(settings.matmulVariant ?? 'blocked');
    withSettings({ matmulVariant: 'strip' }, () => expect(currentMatmulConfig(matmulGeometry(512, 512, 512))).toBe('strip'));
    expect(currentMatmulConfig(matmulGeometry(512, 512, 512))).toBe(settings.matmulVariant ?? 'blocked');
  });

  it('picks the fastest measured candidate, caches it per bucket, and survives failing candidates', async () => {
    const calls: string[] = [];
    const fake: Record<string, number> = { strip: 900, gemm64: 500, 'gemm64/s4': 200, gemm128: Infinity };
    const measure = async (id: string) => {
      calls.push(id);
      if (id === 'gemm128x64') throw new Error('compile failed');
      return fake[id] ?? 1000;
    };
    const t = new Autotuner();
    const g = matmulGeometry(512, 512, 512);
    const bucket = matmulBucket(g, false, false);
    expect(bucket).toBe('512x512x512b1NN');
    const cands = ['strip', 'gemm128', 'gemm128x64', 'gemm64', 'gemm64/s4'];
    const rec = await t.request(bucket, () => cands, measure);
    expect(rec?.best).toBe('gemm64/s4');
    expect(t.get(bucket)).toBe('gemm64/s4');
    expect(rec?.times.gemm128x64).toBe(Infinity);
    expect(calls).toEqual(cands);
    // Cached: no new measurements for the same bucket, concurrent requests share one job.
    await Promise.all([t.request(bucket, () => cands, measure), t.request(bucket, () => cands, measure)]);
    expect(calls.length).toBe(cands.length);
    // Same bucket for a nearby shape (powers of two), another for transposes.
    expect(matmulBucket(matmulGeometry(300, 400, 500), false, false)).toBe(bucket);
    expect(matmulBucket(g, false, true)).not.toBe(bucket);
    // Every candidate failing: no record.
    let tries = 0;
    const none = await t.request('other', () => ['a', 'b'], async () => { tries++; return Infinity; });
    expect(none).toBeUndefined();
    expect(t.get('other')).toBeUndefined();
    // … and not retried on every later product.
    await t.request('other', () => ['a', 'b'], async () => { tries++; return Infinity; });
    expect(tries).toBe(2);
    expect(t.has('other')).toBe(true);
  });

  it('jobs run one at a time, and records persist through the file cache (version-checked)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lpo-tune-'));
    try {
      const file = join(dir, 'matmul-test.json');
      const t1 = new Autotuner({ file, version: 'v1' });
      let active = 0;
      let maxActive = 0;
      const measure = async (id: string) => {
        active++;
        maxActive = Math.max(maxActive, active);
        await new Promise((r) => setTimeout(r, 2));
        active--;
        return id.length;
      };
      void t1.request('b1', () => ['xx', 'x', 'xxx'], measure);
      void t1.request('b2', () => ['yyy', 'yy'], measure);
      await t1.idle();
      expect(maxActive).toBe(1);
      expect(t1.get('b1')).toBe('x');
      expect(t1.get('b2')).toBe('yy');
      const t2 = new Autotuner({ file, version: 'v1' });
      expect(t2.get('b1')).toBe('x');
      const t3 = new Autotuner({ file, version: 'v2' });
      expect(t3.get('b1')).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // Called explicitly here: the op itself never tunes on a software adapter. Needs timestamp queries.
  it.skipIf(!hasTimestamps)('the private timestamp path times configs (1 and 2 dispatches); a failing pipeline rejects without poisoning the stream', async () => {
    const g = matmulGeometry(40, 24, 36);
    const flags = { act: 'none' as const, hasBias: false, transA: false, transB: false };
    expect(await measureConfig('strip', g, flags)).toBeGreaterThan(0);
    expect(await measureConfig('gemm64/s2', g, flags)).toBeGreaterThan(0);
    // Both dispatches' pipelines now sit in the runtime's one cache (the op reuses them).
    const buf = {} as GPUBuffer;
    const plan = planMatmul(parseConfigId('gemm64/s2'), g, flags, { a: buf, b: buf, bias: buf, c: buf, scratch: buf });
    expect(plan).toHaveLength(2);
    for (const d of plan) expect(gpu().pipelines.has(d.kernel), d.kernel.name).toBe(true);
    // GBK 32 with 128×128 tiles needs 64 KiB of workgroup memory: pipeline creation fails.
    await expect(measureConfig('gemm128/k32', g, flags)).rejects.toThrow();
    await gpu().sync();
  });

  it('candidates and config ids: splits only while the grid is small and K long, GBK 16 only where memory allows', () => {
    const small = tuneCandidates(matmulGeometry(77, 768, 768), { subgroups: true, storage: 16384, sms: 132 });
    expect(small).toContain('blocked');
    expect(small).toContain('gemm64/s8');
    expect(small).toContain('gemm64/k16');
    expect(small).not.toContain('gemm128/k16'); // 32 KiB > 16 KiB
    const big = tuneCandidates(matmulGeometry(4096, 320, 1280), { subgroups: false, storage: 49152, sms: 132 });
    expect(big).not.toContain('blocked');
    expect(big).toContain('gemm128/k16');
    expect(big.some((id) => id.startsWith('gemm128/s'))).toBe(false); // 320 tiles of 128×128 already
    for (const id of [...small, ...big]) expect(configId(parseConfigId(id))).toBe(id);
    expect(() => parseConfigId('gemm99')).toThrow(/unknown variant/);
    expect(staticConfig(matmulGeometry(4096, 1024, 4096)).variant).toBe('gemm128');
    expect(configId(staticConfig(matmulGeometry(512, 512, 512)))).toBe('gemm64/s4');
  });
});

describe('matmul backward', () => {
  it('dA, dB, dbias through each activation vs float64 (all transposes, batched)', async () => {
    const gen = new Generator(70);
    const batch = 2, M = 9, K = 7, N = 11;
    let i = 0;
    for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]]) {
      const act = (['none', 'relu', 'gelu', 'silu'] as Act[])[i++];
      const a = f32round(randNonZero(gen, batch * M * K));
      const b = f32round(randNonZero(gen, batch * K * N));
      const bias = f32round(randNonZero(gen, N));
      const w = f32round(randNonZero(gen, batch * M * N));
      const ta = requireGrad(Tensor.fromArray(a, [batch, ...(transA ? [K, M] : [M, K])]));
      const tb = requireGrad(Tensor.fromArray(b, [batch, ...(transB ? [N, K] : [K, N])]));
      const tbias = requireGrad(Tensor.fromArray(bias, [N]));
      const y = matmul(ta, tb, { transA, transB, bias: tbias, activation: act });
      backward(sumAll(mul(y, Tensor.fromArray(w, [batch, M, N]))));
      // float64: L = Σ w·act(z); dz = w·act'(z) by central differences of the float64 activation.
      const z = matmulRef(a, b, { batch, M, N, K, transA, transB, aBatched: true, bBatched: true, bias });
      const h = 1e-6;
      const dz = z.map((v, j) => (w[j] * (actRef(v + h, act) - actRef(v - h, act))) / (2 * h));
      const refA = new Float64Array(a.length);
      const refB = new Float64Array(b.length);
      const refBias = new Float64Array(N);
      for (let t = 0; t < batch; t++) for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
        const d = dz[(t * M + m) * N + n];
        refBias[n] += d;
        for (let k = 0; k < K; k++) {
          const ai = t * M * K + (transA ? k * M + m : m * K + k);
          const bi = t * K * N + (transB ? n * K + k : k * N + n);
          refA[ai] += d * b[bi];
          refB[bi] += d * a[ai];
        }
      }
      expect(relL2(await ta.grad!.toArray(), refA), `dA ${act}`).toBeLessThan(1e-5);
      expect(relL2(await tb.grad!.toArray(), refB), `dB ${act}`).toBeLessThan(1e-5);
      expect(relL2(await tbias.grad!.toArray(), refBias), `dbias ${act}`).toBeLessThan(1e-5);
    }
  });

  it('gradcheck: matmul (batched, transposes), broadcast b, and linear with gelu', async () => {
    const gen = new Generator(80);
    const t = (shape: number[]) => Tensor.fromArray(randNonZero(gen, shape.reduce((p, q) => p * q, 1)), shape);
    const r1 = await gradcheck((x, y) => matmul(x, y, { transA: true }), [t([2, 5, 4]), t([2, 5, 6])]);
    expect(r1.ok, JSON.stringify(r1.failures.slice(0, 3))).toBe(true);
    const r2 = await gradcheck((x, y) => matmul(x, y, { transB: true }), [t([3, 4, 5]), t([6, 5])]);
    expect(r2.ok, JSON.stringify(r2.failures.slice(0, 3))).toBe(true);
    const r3 = await gradcheck((x, y) => matmul(x, y, { transA: true, transB: true }), [t([3, 5, 4]), t([6, 5])]);
    expect(r3.ok, JSON.stringify(r3.failures.slice(0, 3))).toBe(true);
    const r4 = await gradcheck((x, w, b) => linear(x, w, b, { activation: 'gelu' }), [t([2, 3, 5]), t([4, 5]), t([4])]);
    expect(r4.ok, JSON.stringify(r4.failures.slice(0, 3))).toBe(true);
    const r5 = await gradcheck((x, y) => matmul(x, y), [t([5, 4]), t([2, 4, 3])]);
    expect(r5.ok, JSON.stringify(r5.failures.slice(0, 3))).toBe(true);
  });
});

function actRef(x: number, act: Act): number {
  return matmulRef([x], [1], { batch: 1, M: 1, N: 1, K: 1, aBatched: false, bBatched: false, act })[0];
}
