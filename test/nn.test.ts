import { beforeAll, describe, expect, it } from 'vitest';
import { setupGpu, f32round, randn64, randNonZero, relL2 } from './helpers.js';
import * as R from './ref/nn.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { mul, add } from '../src/tensor/ops/elementwise.js';
import { sumAll } from '../src/tensor/ops/reduce.js';
import { reshape } from '../src/tensor/ops/layout.js';
import { backward, requireGrad, zeroGrad } from '../src/autograd/tape.js';
import { gradcheck } from '../src/autograd/gradcheck.js';
import { Module, ModuleList, StateDictError, type StateDictReader } from '../src/nn/module.js';

beforeAll(setupGpu);

class Leaf extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(n: number, gen: Generator) {
    super();
    this.weight = this.registerParameter('weight', Tensor.randn([n, 2], gen));
    this.bias = this.registerParameter('bias', Tensor.randn([n], gen));
  }
  forward(x: Tensor): Tensor {
    const h = mul(x, this.weight);
    const b = reshape(this.bias, [this.bias.size, 1]);
    const y = add(h, b);
    h.dispose();
    b.dispose();
    return y;
  }
}

class Toy extends Module {
  readonly scale: Tensor;
  constructor(gen: Generator) {
    super();
    const enc = this.registerModule('encoder', new Module());
    enc.registerModule('layers', new ModuleList([new Leaf(3, gen), new Leaf(3, gen)]));
    this.registerModule('final', new Leaf(3, gen));
    this.scale = this.registerParameter('scale', Tensor.fromArray([2], [1]));
  }
  get layers(): ModuleList<Leaf> { return this.child<Module>('encoder').child('layers'); }
}

const NAMES = [
  'scale',
  'encoder.layers.0.weight', 'encoder.layers.0.bias',
  'encoder.layers.1.weight', 'encoder.layers.1.bias',
  'final.weight', 'final.bias',
];

describe('Module', () => {
  it('names parameters like PyTorch state_dict keys (children dotted, lists numbered)', () => {
    const m = new Toy(new Generator(1));
    expect(m.namedParameters().map(([n]) => n).sort()).toEqual([...NAMES].sort());
    expect([...m.stateDict().keys()].sort()).toEqual([...NAMES].sort());
    expect(m.parameters().length).toBe(7);
    expect(m.numParameters()).toBe(1 + 3 * (6 + 3));
    expect(m.layers.length).toBe(2);
    expect(m.layers.at(1)).toBeInstanceOf(Leaf);
    expect(m.parameters().every((p) => p.requiresGrad)).toBe(true);
    m.dispose();
  });

  it('round-trips a state dict (Tensor values, Float32Array values, and a reader)', async () => {
    const a = new Toy(new Generator(1));
    const b = new Toy(new Generator(2));
    const c = new Toy(new Generator(3));
    const d = new Toy(new Generator(4));
    const sdA = a.stateDict();
    const hostA = new Map<string, Float32Array>();
    for (const [k, t] of sdA) hostA.set(k, await t.toArray());

    const rep = await b.loadStateDict(sdA);
    expect(rep.loaded).toBe(7);
    await c.loadStateDict(hostA);
    const reader: StateDictReader = {
      keys: () => [...hostA.keys(), 'encoder.position_ids'],
      info: (k) => ({ shape: k === 'encoder.position_ids' ? [1, 77] : [...sdA.get(k)!.shape], dtype: 'F32' }),
      readF32: async (k) => hostA.get(k)!,
    };
    // Not ignored by Toy: an unexpected key.
    await expect(d.loadStateDict(reader)).rejects.toThrow(/unexpected keys: encoder\.position_ids/);
    const rep2 = await d.loadStateDict(reader, { strict: false });
    expect(rep2.unexpected).toEqual(['encoder.position_ids']);

    for (const m of [b, c, d]) {
      for (const [k, t] of m.stateDict()) expect(Array.from(await t.toArray())).toEqual(Array.from(hostA.get(k)!));
    }
    // The parameters keep their identity (optimizers hold them).
    expect(b.stateDict().get('final.weight')).toBe(b.child<Leaf>('final').weight);
    [a, b, c, d].forEach((m) => m.dispose());
  });

  it('reports missing, unexpected and wrong-shaped keys by name in one StateDictError', async () => {
    const m = new Toy(new Generator(1));
    const src = new Map<string, Tensor>(m.stateDict());
    src.delete('encoder.layers.1.bias');
    src.delete('scale');
    const extra = Tensor.fromArray([1, 2], [2]);
    const wrong = Tensor.fromArray(new Float32Array(6), [2, 3]);
    src.set('encoder.layers.2.weight', extra);
    src.set('final.weight', wrong);
    let err: unknown;
    try {
      await m.loadStateDict(src);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StateDictError);
    const e = err as StateDictError;
    expect(e.missing.sort()).toEqual(['encoder.layers.1.bias', 'scale']);
    expect(e.unexpected).toEqual(['encoder.layers.2.weight']);
    expect(e.wrongShape).toEqual([{ key: 'final.weight', expected: [3, 2], got: [2, 3] }]);
    expect(e.message).toMatch(/missing keys: .*encoder\.layers\.1\.bias/);
    expect(e.message).toMatch(/unexpected keys: encoder\.layers\.2\.weight/);
    expect(e.message).toMatch(/wrong shapes: final\.weight \[2,3\] \(expected \[3,2\]\)/);
    // strict: false tolerates missing/unexpected but never a wrong shape.
    await expect(m.loadStateDict(src, { strict: false })).rejects.toThrow(/wrong shapes: final\.weight/);
    src.set('final.weight', m.child<Leaf>('final').weight);
    const rep = await m.loadStateDict(src, { strict: false });
    expect(rep.missing.sort()).toEqual(['encoder.layers.1.bias', 'scale']);
    extra.dispose();
    wrong.dispose();
    m.dispose();
  });

  it('freeze() stops gradients, unfreeze() restores them, trainableParameters() follows', async () => {
    const gen = new Generator(7);
    const m = new Toy(gen);
    const x = Tensor.fromArray(f32round(randNonZero(gen, 6)), [3, 2]);
    const leaf = m.layers.at(0);
    m.freeze();
    expect(m.trainableParameters()).toEqual([]);
    const y = leaf.forward(x);
    expect(y.requiresGrad).toBe(false);
    expect(() => backward(sumAll(y))).toThrow(/does not require grad/);
    expect(leaf.weight.grad).toBeNull();

    m.unfreeze();
    leaf.freeze();
    expect(m.trainableParameters().length).toBe(5);
    m.layers.at(0).unfreeze();
    const y2 = leaf.forward(x);
    backward(sumAll(y2));
    const gw = await leaf.weight.grad!.toArray();
    expect(relL2(gw, await x.toArray())).toBe(0);
    expect(Array.from(await leaf.bias.grad!.toArray())).toEqual([2, 2, 2]);
    m.freeze();
    expect(leaf.weight.grad).toBeNull(); // freeze frees the gradients
    [x, y, y2].forEach((t) => t.dispose());
    m.dispose();
  });
});

// ---------------------------------------------------------------------------------------------
// Layers vs float64 references (tiny ragged shapes).

const f64 = async (t: Tensor) => Float64Array.from(await t.toArray());

describe('layers vs float64 references', () => {
  let L: typeof import('../src/nn/layers.js');
  beforeAll(async () => {
    L = await import('../src/nn/layers.js');
  });

  it('Linear: forward, dx/dW/db (relL2 < 1e-5), torch key names', async () => {
    const gen = new Generator(21);
    const lin = new L.Linear(5, 4, { gen });
    expect(lin.namedParameters().map(([n]) => n)).toEqual(['weight', 'bias']);
    const xh = f32round(randNonZero(gen, 2 * 3 * 5));
    const x = requireGrad(Tensor.fromArray(xh, [2, 3, 5]));
    const y = lin.forward(x);
    expect(y.shape).toEqual([2, 3, 4]);
    const w = await f64(lin.weight);
    const b = await f64(lin.bias!);
    expect(relL2(await y.toArray(), R.linearRef(xh, 6, w, 4, 5, b))).toBeLessThan(1e-5);
    const dyh = f32round(randNonZero(gen, 24));
    const dy = Tensor.fromArray(dyh, [2, 3, 4]);
    backward(y, dy);
    // dx = dy W, dW = dyᵀ x, db = Σ dy
    const dx = new Float64Array(30), dW = new Float64Array(20), db = new Float64Array(4);
    for (let i = 0; i < 6; i++) for (let o = 0; o < 4; o++) {
      db[o] += dyh[i * 4 + o];
      for (let k = 0; k < 5; k++) { dx[i * 5 + k] += dyh[i * 4 + o] * w[o * 5 + k]; dW[o * 5 + k] += dyh[i * 4 + o] * xh[i * 5 + k]; }
    }
    expect(relL2(await x.grad!.toArray(), dx)).toBeLessThan(1e-5);
    expect(relL2(await lin.weight.grad!.toArray(), dW)).toBeLessThan(1e-5);
    expect(relL2(await lin.bias!.grad!.toArray(), db)).toBeLessThan(1e-5);
    zeroGrad([x]);
    [x, y, dy].forEach((t) => t.dispose());
    lin.dispose();
  });

  it('LoRALinear: B starts at zero, forward and the factor gradients match (relL2 < 1e-5), base frozen, merge/unmerge', async () => {
    const gen = new Generator(22);
    const base = new L.Linear(7, 6, { gen });
    const lora = new L.LoRALinear(base, { rank: 3, alpha: 6, gen });
    expect(lora.scale).toBe(2);
    expect(lora.namedParameters().map(([n]) => n)).toEqual(['weight', 'bias', 'lora_A.weight', 'lora_B.weight']);
    expect(lora.trainableParameters()).toEqual([lora.loraA, lora.loraB]);
    expect(lora.loraA.shape).toEqual([3, 7]);
    expect(lora.loraB.shape).toEqual([6, 3]);
    const xh = f32round(randNonZero(gen, 5 * 7));
    const x = Tensor.fromArray(xh, [5, 7]);
    const W = await f64(lora.weight), b = await f64(lora.bias!), A = await f64(lora.loraA);
    const y0 = lora.forward(x);
    expect(relL2(await y0.toArray(), R.linearRef(xh, 5, W, 6, 7, b))).toBeLessThan(1e-5);

    const Bh = f32round(randNonZero(gen, 18));
    lora.loraB.write(Float32Array.from(Bh));
    const y = lora.forward(x);
    const xa = R.linearRef(xh, 5, A, 3, 7);
    const ref = R.linearRef(xh, 5, W, 6, 7, b).map((v, i) => v + 2 * R.linearRef(xa, 5, Bh, 6, 3)[i]);
    expect(relL2(await y.toArray(), ref)).toBeLessThan(1e-5);

    const dyh = f32round(randNonZero(gen, 30));
    const dy = Tensor.fromArray(dyh, [5, 6]);
    backward(y, dy);
    expect(lora.weight.grad).toBeNull();
    expect(lora.bias!.grad).toBeNull();
    // dB = s·dyᵀ(xAᵀ), dA = s·(dy B)ᵀ x
    const dB = new Float64Array(18), dA = new Float64Array(21);
    const dyB = new Float64Array(15);
    for (let i = 0; i < 5; i++) for (let o = 0; o < 6; o++) for (let r = 0; r < 3; r++) {
      dB[o * 3 + r] += 2 * dyh[i * 6 + o] * xa[i * 3 + r];
      dyB[i * 3 + r] += dyh[i * 6 + o] * Bh[o * 3 + r];
    }
    for (let i = 0; i < 5; i++) for (let r = 0; r < 3; r++) for (let k = 0; k < 7; k++) dA[r * 7 + k] += 2 * dyB[i * 3 + r] * xh[i * 7 + k];
    expect(relL2(await lora.loraB.grad!.toArray(), dB)).toBeLessThan(1e-5);
    expect(relL2(await lora.loraA.grad!.toArray(), dA)).toBeLessThan(1e-5);

    lora.merge();
    const ym = lora.forward(x);
    expect(relL2(await ym.toArray(), ref)).toBeLessThan(1e-5);
    lora.unmerge();
    expect(relL2(await lora.weight.toArray(), W)).toBeLessThan(1e-6);
    [x, y0, y, dy, ym].forEach((t) => t.dispose());
    lora.dispose();
  });

  it('Attention: self- and cross-attention match the reference (relL2 < 1e-5); diffusers key names; injectLoRA', async () => {
    const gen = new Generator(23);
    const B = 2, Lq = 5, Lk = 7, D = 6, Dc = 10, heads = 2, dh = 3;
    const attn = new L.Attention(D, { crossAttentionDim: Dc, heads, dimHead: dh, gen });
    expect(attn.namedParameters().map(([n]) => n)).toEqual(['to_q.weight', 'to_k.weight', 'to_v.weight', 'to_out.0.weight', 'to_out.0.bias']);
    const xh = f32round(randNonZero(gen, B * Lq * D));
    const ch = f32round(randNonZero(gen, B * Lk * Dc));
    const x = Tensor.fromArray(xh, [B, Lq, D]);
    const ctx = Tensor.fromArray(ch, [B, Lk, Dc]);
    const sd = attn.stateDict();
    const p = async (n: string) => f64(sd.get(n)!);
    const q = R.linearRef(xh, B * Lq, await p('to_q.weight'), 6, D);
    const k = R.linearRef(ch, B * Lk, await p('to_k.weight'), 6, Dc);
    const v = R.linearRef(ch, B * Lk, await p('to_v.weight'), 6, Dc);
    const a = R.attentionRef(q, k, v, B, Lq, Lk, heads, dh, 1 / Math.sqrt(dh));
    const ref = R.linearRef(a, B * Lq, await p('to_out.0.weight'), D, 6, await p('to_out.0.bias'));
    const y = attn.forward(x, ctx);
    expect(y.shape).toEqual([B, Lq, D]);
    expect(relL2(await y.toArray(), ref)).toBeLessThan(1e-5);

    const self = new L.Attention(D, { heads, dimHead: dh, gen });
    const sp = self.stateDict();
    const g = async (n: string) => f64(sp.get(n)!);
    const qs = R.linearRef(xh, B * Lq, await g('to_q.weight'), 6, D);
    const ks = R.linearRef(xh, B * Lq, await g('to_k.weight'), 6, D);
    const vs = R.linearRef(xh, B * Lq, await g('to_v.weight'), 6, D);
    const refS = R.linearRef(R.attentionRef(qs, ks, vs, B, Lq, Lq, heads, dh, 1 / Math.sqrt(dh)), B * Lq, await g('to_out.0.weight'), D, 6, await g('to_out.0.bias'));
    const ys = self.forward(x);
    expect(relL2(await ys.toArray(), refS)).toBeLessThan(1e-5);

    // LoRA on the projections keeps the base key names and trains only the factors.
    const names = L.injectLoRA(attn, /(to_q|to_k|to_v|to_out\.0)$/, { rank: 2, gen });
    expect(names).toEqual(['to_q', 'to_k', 'to_v', 'to_out.0']);
    expect(attn.toQ).toBeInstanceOf(L.LoRALinear);
    expect(attn.namedTrainableParameters().map(([n]) => n)).toEqual([
      'to_q.lora_A.weight', 'to_q.lora_B.weight', 'to_k.lora_A.weight', 'to_k.lora_B.weight',
      'to_v.lora_A.weight', 'to_v.lora_B.weight', 'to_out.0.lora_A.weight', 'to_out.0.lora_B.weight',
    ]);
    expect(attn.stateDict().has('to_out.0.weight')).toBe(true);
    const yl = attn.forward(x, ctx); // B = 0: unchanged output
    expect(relL2(await yl.toArray(), ref)).toBeLessThan(1e-5);
    [x, ctx, y, ys, yl].forEach((t) => t.dispose());
    attn.dispose();
    self.dispose();
  });

  it('Attention on [B, C, H, W] with group_norm, qkv bias, residual and rescale (the VAE form) matches the reference', async () => {
    const gen = new Generator(25);
    const B = 2, C = 4, H = 3, W = 2, HW = H * W, G = 2;
    const attn = new L.Attention(C, { heads: 1, dimHead: C, qkvBias: true, normNumGroups: G, normEps: 1e-6, residualConnection: true, rescaleOutputFactor: 2, gen });
    expect(attn.namedParameters().map(([n]) => n)).toEqual([
      'group_norm.weight', 'group_norm.bias', 'to_q.weight', 'to_q.bias', 'to_k.weight', 'to_k.bias', 'to_v.weight', 'to_v.bias', 'to_out.0.weight', 'to_out.0.bias',
    ]);
    const sd = attn.stateDict();
    sd.get('group_norm.weight')!.write(Float32Array.from(f32round(randNonZero(gen, C, 0.5, 1.5))));
    sd.get('group_norm.bias')!.write(Float32Array.from(f32round(randNonZero(gen, C, 0.1, 0.5))));
    const p = async (n: string) => f64(sd.get(n)!);
    const xh = f32round(randn64(gen, B * C * HW));
    // GroupNorm (eps 1e-6), then tokens [B, HW, C].
    const gw = await p('group_norm.weight'), gb = await p('group_norm.bias');
    const tok = new Float64Array(B * HW * C);
    const cg = C / G;
    for (let b = 0; b < B; b++) for (let g = 0; g < G; g++) {
      let m = 0, v = 0;
      for (let c = g * cg; c < (g + 1) * cg; c++) for (let s = 0; s < HW; s++) m += xh[(b * C + c) * HW + s];
      m /= cg * HW;
      for (let c = g * cg; c < (g + 1) * cg; c++) for (let s = 0; s < HW; s++) v += (xh[(b * C + c) * HW + s] - m) ** 2;
      const r = 1 / Math.sqrt(v / (cg * HW) + 1e-6);
      for (let c = g * cg; c < (g + 1) * cg; c++) for (let s = 0; s < HW; s++) tok[(b * HW + s) * C + c] = (xh[(b * C + c) * HW + s] - m) * r * gw[c] + gb[c];
    }
    const q = R.linearRef(tok, B * HW, await p('to_q.weight'), C, C, await p('to_q.bias'));
    const k = R.linearRef(tok, B * HW, await p('to_k.weight'), C, C, await p('to_k.bias'));
    const v = R.linearRef(tok, B * HW, await p('to_v.weight'), C, C, await p('to_v.bias'));
    const o = R.linearRef(R.attentionRef(q, k, v, B, HW, HW, 1, C, 1 / Math.sqrt(C)), B * HW, await p('to_out.0.weight'), C, C, await p('to_out.0.bias'));
    const ref = new Float64Array(B * C * HW);
    for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) for (let s = 0; s < HW; s++) {
      ref[(b * C + c) * HW + s] = (o[(b * HW + s) * C + c] + xh[(b * C + c) * HW + s]) / 2;
    }
    const x = Tensor.fromArray(xh, [B, C, H, W]);
    const y = attn.forward(x);
    expect(y.shape).toEqual([B, C, H, W]);
    expect(relL2(await y.toArray(), ref)).toBeLessThan(1e-5);
    [x, y].forEach((t) => t.dispose());
    attn.dispose();
  });

  it('FeedForward (GEGLU, erf GELU) matches the reference (relL2 < 1e-5); key names net.0.proj / net.2', async () => {
    const gen = new Generator(24);
    const ff = new L.FeedForward(6, { mult: 2, dimOut: 5, gen });
    expect(ff.namedParameters().map(([n]) => n)).toEqual(['net.0.proj.weight', 'net.0.proj.bias', 'net.2.weight', 'net.2.bias']);
    const xh = f32round(randn64(gen, 3 * 4 * 6, 1.5));
    const x = Tensor.fromArray(xh, [3, 4, 6]);
    const sd = ff.stateDict();
    const p = async (n: string) => f64(sd.get(n)!);
    const ref = R.feedForwardRef(xh, 12, 6, 12, 5, await p('net.0.proj.weight'), await p('net.0.proj.bias'), await p('net.2.weight'), await p('net.2.bias'));
    const y = ff.forward(x);
    expect(y.shape).toEqual([3, 4, 5]);
    expect(relL2(await y.toArray(), ref)).toBeLessThan(1e-5);
    const r = await gradcheck((xx: Tensor) => ff.forward(xx), [x]);
    expect(r.failures).toEqual([]);
    [x, y].forEach((t) => t.dispose());
    ff.dispose();
  });
});
