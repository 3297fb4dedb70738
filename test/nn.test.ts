import { beforeAll, describe, expect, it } from 'vitest';
import { setupGpu, f32round, randNonZero, relL2 } from './helpers.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { mul, add } from '../src/tensor/ops/elementwise.js';
import { sumAll } from '../src/tensor/ops/reduce.js';
import { reshape } from '../src/tensor/ops/layout.js';
import { backward } from '../src/autograd/tape.js';
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
    expect(e.mismatched).toEqual([{ key: 'final.weight', expected: [3, 2], got: [2, 3] }]);
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
