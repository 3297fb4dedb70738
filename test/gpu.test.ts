// The runtime itself: grid folding, typed errors, the pool, profiling, uploads in stream order,
// f16 storage and seeded randomness.
import { beforeAll, describe, expect, it } from 'vitest';
import { setupGpu } from './helpers.js';
import { Gpu, foldWorkgroups, gpu } from '../src/gpu/runtime.js';
import { acquireDevice } from '../src/gpu/device.js';
import { DeviceLostError, KernelError, LimitError, NonFiniteError } from '../src/gpu/errors.js';
import { sizeClass } from '../src/gpu/pool.js';
import { kernelModule } from '../src/gpu/wgsl.js';
import { defineParams } from '../src/gpu/params.js';
import { withSettings } from '../src/settings.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Generator } from '../src/tensor/random.js';
import { fromHalfBits, toHalfBits } from '../src/tensor/half.js';
import { exp, fill, log } from '../src/tensor/ops/elementwise.js';

beforeAll(setupGpu);
// What the adapter has decides which tests run (skipped, not passed, where it lacks a feature).
const { hasTimestamps, hasF16 } = (await setupGpu()).acquired;

describe('gpu runtime', () => {
  // Sized from the adapter's own limit (128 MiB on lavapipe); adapters with several GiB skip the allocation.
  const bindLimit = gpu().device.limits.maxStorageBufferBindingSize;
  it.skipIf(bindLimit > 2 ** 29)('a binding past maxStorageBufferBindingSize is a LimitError at dispatch, naming the kernel', async () => {
    const x = Tensor.empty([bindLimit / 4 + 64]);
    let err: unknown = null;
    try {
      exp(x).dispose();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LimitError);
    expect(String((err as Error).message)).toMatch(/elementwise.*maxStorageBufferBindingSize/s);
    x.dispose();
    await gpu().sync(); // nothing invalid reached the device
  });

  it('folds linear grids beyond 65,535 workgroups into x·y and refuses impossible ones', () => {
    expect(foldWorkgroups(65535)).toEqual([65535, 1, 1]);
    for (const n of [65536, 70001, 1_000_003]) {
      const [x, y] = foldWorkgroups(n);
      expect(x).toBeLessThanOrEqual(65535);
      expect(x * y).toBeGreaterThanOrEqual(n);
      expect(x * (y - 1)).toBeLessThan(n);
    }
    expect(() => foldWorkgroups(65535 * 65535 + 1)).toThrow(LimitError);
  });

  it('a dispatch of more than 65,535 workgroups writes every element', async () => {
    const n = 65536 * 256 + 37; // 65,537 workgroups of 256
    const t = fill([n], 1.5);
    const v = await t.toArray();
    let bad = 0;
    for (let i = 0; i < n; i++) if (v[i] !== 1.5) bad++;
    expect(bad).toBe(0);
    t.dispose();
  });

  it('a WGSL compile error is a KernelError naming the kernel and the line', async () => {
    const t = Tensor.empty([4]);
    gpu().dispatch({
      kernel: { name: 'test.broken', code: '@group(0) @binding(1) var<storage, read_write> o: array<f32>;\n@compute @workgroup_size(1) fn main() { o[0] = undefined_thing; }' },
      buffers: [t.buffer],
      workgroups: 1,
    });
    const err = await gpu().sync().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(KernelError);
    expect((err as KernelError).kernel).toMatch(/test\.broken/);
    expect((err as Error).message).toMatch(/WGSL compile error: line 2/);
    t.dispose();
    await gpu().sync(); // the error was reported once; the stream is clean again
  });

  it('compile errors in a composed module point into the file and line they come from', async () => {
    const t = Tensor.empty([4]);
    const family = { name: 'test.wgsl', text: 'override WG: u32 = 1u;\n@group(0) @binding(1) var<storage, read_write> o: array<f32>;\n@compute @workgroup_size(1) fn main() { o[0] = erf_(nope); }' };
    gpu().dispatch({
      kernel: { name: 'test.brokenlib', code: kernelModule(family, { libs: ['unary'], consts: { DV: 3 } }) },
      buffers: [t.buffer],
      workgroups: 1,
    });
    const err = await gpu().sync().then(() => null, (e: unknown) => e);
    expect((err as Error).message).toMatch(/WGSL compile error: test\.wgsl line 3:\d+ .*nope/);
    t.dispose();
  });

  it('bindings that do not fit the kernel are a KernelError naming it', async () => {
    const t = Tensor.empty([4]);
    gpu().dispatch({
      kernel: { name: 'test.onebinding', code: '@group(0) @binding(1) var<storage, read_write> o: array<f32>;\n@compute @workgroup_size(1) fn main() { o[0] = 1.0; }' },
      buffers: [t.buffer, t.buffer], // @binding(2) does not exist
      workgroups: 1,
    });
    const err = await gpu().sync().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(KernelError);
    expect((err as Error).message).toMatch(/test\.onebinding/);
    t.dispose();
  });

  it('a buffer beyond the adapter limit is a LimitError before anything is allocated', () => {
    const max = gpu().device.limits.maxBufferSize;
    expect(() => gpu().pool.acquire(max + 1, 'huge')).toThrow(LimitError);
  });

  it('a lost device turns every later call into a DeviceLostError', async () => {
    const g = new Gpu(await acquireDevice());
    const buf = g.pool.acquire(16);
    g.device.destroy();
    await g.device.lost;
    expect(() => g.dispatch({ kernel: { name: 'x', code: '' }, buffers: [buf], workgroups: 1 })).toThrow(DeviceLostError);
    await expect(g.read(buf, 16)).rejects.toBeInstanceOf(DeviceLostError);
  });

  it('the pool reuses buffers by size class and counts it', () => {
    expect(sizeClass(1)).toBe(256);
    expect(sizeClass(1000)).toBeGreaterThanOrEqual(1000);
    expect(sizeClass(1 << 20) / (1 << 20)).toBe(1);
    expect(sizeClass((1 << 20) + 1) / ((1 << 20) + 1)).toBeLessThan(1.0626);
    const before = gpu().pool.stats();
    const a = Tensor.empty([1000]);
    a.dispose();
    const b = Tensor.empty([990]); // same size class
    const after = gpu().pool.stats();
    expect(after.hits).toBeGreaterThan(before.hits);
    b.dispose();
  });

  it('uploads wait for earlier unsubmitted work that reads the same buffer', async () => {
    const x = Tensor.fromArray([0, 1, 2], [3]);
    const y = exp(x); // recorded, not yet submitted
    x.write([5, 5, 5]); // must not overtake the exp above
    const v = await y.toArray();
    expect(Array.from(v).map((q) => Math.round(q * 1e4) / 1e4)).toEqual([1, 2.7183, 7.3891]);
    [x, y].forEach((t) => t.dispose());
  });

  // Adapters without timestamp queries cannot profile; the test is skipped there.
  it.skipIf(!hasTimestamps)('profile() reports GPU time per kernel from timestamp queries', async () => {
    const x = Tensor.fromArray(new Float32Array(4096).fill(0.5), [4096]);
    const timings = await gpu().profile(() => {
      for (let i = 0; i < 3; i++) exp(x).dispose();
    });
    const e = timings.find((t) => t.kernel === 'elementwise.exp');
    expect(e?.calls).toBe(3);
    expect(e!.ns).toBeGreaterThan(0);
    x.dispose();
  });

  it.skipIf(!hasF16)('f16 storage rounds to the nearest half and reads back as f32', async () => {
    const vals = [0.1, -2.5, 65504, 1e-6, 3.14159, 7];
    const t = Tensor.fromArray(vals, [6], 'f16');
    expect(t.bytes).toBe(12);
    const back = Array.from(await t.toArray());
    expect(back).toEqual(vals.map((v) => fromHalfBits(toHalfBits(v))));
    t.dispose();
  });

  it('the generator gives the same numbers for the same seed, and sane normals', () => {
    const a = new Generator(42).normalArray(10000);
    const b = new Generator(42).normalArray(10000);
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(new Generator(43).normalArray(5))).not.toEqual(Array.from(a.slice(0, 5)));
    const mean = a.reduce((s, v) => s + v, 0) / a.length;
    const varc = a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length;
    expect(Math.abs(mean)).toBeLessThan(0.05);
    expect(Math.abs(varc - 1)).toBeLessThan(0.05);
  });

  it('the NaN/Inf check names the first op that produced one (LPO_CHECK_FINITE)', async () => {
    await withSettings({ checkFinite: true }, async () => {
      const x = Tensor.fromArray([1, -1, 2], [3]);
      const y = log(x); // NaN at index 1
      const z = exp(y); // carries it on
      const err = await z.toArray().then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(NonFiniteError);
      expect((err as Error).message).toMatch(/op 'log \[3\]' is the first to produce NaN\/Inf \(1 later op too\)/);
      const fine = exp(Tensor.fromArray([1, 2], [2]));
      expect(Array.from(await fine.toArray()).every(Number.isFinite)).toBe(true); // flags were reset
    });
  });

  it('params are packed by name at their WGSL offsets (u32, f32, i32, a 16-byte aligned array)', async () => {
    const P = defineParams('test.wgsl', 'Probe', { a: 'u32', b: 'f32', c: 'i32', arr: 'array<vec4<u32>, 2>', d: 'f32' });
    const text = [
      'override WG: u32 = 1u;',
      'struct Probe { a: u32, b: f32, c: i32, arr: array<vec4<u32>, 2>, d: f32 }',
      '@group(0) @binding(0) var<uniform> p: Probe;',
      '@group(0) @binding(1) var<storage, read_write> o: array<f32>;',
      '@compute @workgroup_size(1) fn main() { o[0] = f32(p.a); o[1] = p.b; o[2] = f32(p.c); o[3] = f32(at8(p.arr, 5u)); o[4] = p.d; }',
    ].join('\n');
    const t = Tensor.empty([5]);
    gpu().dispatch({
      kernel: { name: 'test.probe', code: kernelModule({ name: 'probe.wgsl', text }) },
      buffers: [t.buffer],
      params: P.of({ d: 0.25, c: -7, b: 1.5, a: 3000000000, arr: [0, 1, 2, 3, 4, 55] }),
      workgroups: 1,
    });
    expect(Array.from(await t.toArray())).toEqual([3000000000, 1.5, -7, 55, 0.25]);
    t.dispose();
  });

  it('a param value of the wrong kind is refused with the kernel and the field named', () => {
    const P = defineParams('test.wgsl', 'Bad', { n: 'u32', k: 'i32' });
    const t = Tensor.empty([1]);
    const run = (values: { n: number; k: number }) => () => gpu().dispatch({ kernel: { name: 'test.params', code: '' }, buffers: [t.buffer], params: P.of(values), workgroups: 1 });
    expect(run({ n: 1.5, k: 0 })).toThrow(/test\.params.*'n' = 1\.5 is not a u32/);
    expect(run({ n: -1, k: 0 })).toThrow(/'n' = -1 is not a u32/);
    expect(run({ n: 1, k: 2 ** 31 })).toThrow(/'k' = 2147483648 is not an i32/);
    expect(run({ n: 1 } as { n: number; k: number })).toThrow(/'k' \(i32\) is missing/);
    t.dispose();
  });

});
