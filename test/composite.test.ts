// The autograd composite: conv2d → groupNorm → SiLU → attention over spatial tokens → linear.
// gradcheck through the whole chain, training with AdamW, and gradient checkpointing.
import { beforeAll, describe, expect, it } from 'vitest';
import { setupGpu, f32round, randn64, randNonZero, relL2 } from './helpers.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor, tidy } from '../src/tensor/tensor.js';
import { mul, silu, square, sub } from '../src/tensor/ops/elementwise.js';
import { meanAll } from '../src/tensor/ops/reduce.js';
import { reshape, transpose } from '../src/tensor/ops/layout.js';
import { conv2d } from '../src/tensor/ops/conv2d.js';
import { groupNorm } from '../src/tensor/ops/norm.js';
import { attention } from '../src/tensor/ops/attention.js';
import { linear } from '../src/tensor/ops/matmul.js';
import { backward, requireGrad, zeroGrad } from '../src/autograd/tape.js';
import { gradcheck } from '../src/autograd/gradcheck.js';
import { checkpoint } from '../src/autograd/checkpoint.js';
import { AdamW } from '../src/optim/adamw.js';
import { Module } from '../src/nn/module.js';
import { Attention, Conv2d, GroupNorm, Linear } from '../src/nn/layers.js';

beforeAll(setupGpu);

const N = 2, C = 3, H = 3, W = 4, F = 8, G = 2, HEADS = 2, OUT = 5;
const L = H * W;

/** [N, F, H, W] → [N, H·W, F] tokens. */
function toTokens(h: Tensor): Tensor {
  const flat = reshape(h, [N, F, L]);
  const t = transpose(flat, 1, 2);
  flat.dispose();
  return t;
}

class Composite extends Module {
  constructor(gen: Generator) {
    super();
    this.registerModule('conv', new Conv2d(C, F, 3, { padding: 1, gen }));
    this.registerModule('norm', new GroupNorm(G, F, { eps: 1e-5 }));
    this.registerModule('attn', new Attention(F, { heads: HEADS, dimHead: F / HEADS, gen }));
    this.registerModule('proj', new Linear(F, OUT, { gen }));
  }

  /** conv → norm → SiLU → tokens (the part that checkpointing wraps). */
  features(x: Tensor): Tensor {
    return tidy(() => toTokens(silu(this.child<GroupNorm>('norm').forward(this.child<Conv2d>('conv').forward(x)))));
  }

  head(tokens: Tensor): Tensor {
    return tidy(() => this.child<Linear>('proj').forward(this.child<Attention>('attn').forward(tokens)));
  }

  forward(x: Tensor, opts: { checkpointed?: boolean } = {}): Tensor {
    return tidy(() => {
      const t = opts.checkpointed ? checkpoint((xx) => this.features(xx), [x]) : this.features(x);
      return opts.checkpointed ? checkpoint((tt) => this.head(tt), [t]) : this.head(t);
    });
  }
}

function mse(y: Tensor, target: Tensor): Tensor {
  return tidy(() => meanAll(square(sub(y, target))));
}

describe('composite conv2d → groupNorm → SiLU → attention → linear', () => {
  it('passes gradcheck w.r.t. the input and parameters of every stage', async () => {
    const gen = new Generator(11);
    const t = (shape: number[], std = 0.5) => Tensor.fromArray(f32round(randn64(gen, shape.reduce((a, b) => a * b, 1), std)), shape);
    const x = t([N, C, H, W], 1);
    const convW = t([F, C, 3, 3], 0.3);
    const convB = t([F], 0.1);
    const gnW = Tensor.fromArray(f32round(randNonZero(gen, F, 0.5, 1.5)), [F]);
    const gnB = t([F], 0.1);
    const wq = t([F, F], 0.4), wk = t([F, F], 0.4), wv = t([F, F], 0.4), wo = t([F, F], 0.4);
    const bo = t([F], 0.1);
    const linW = t([OUT, F], 0.4);
    const linB = t([OUT], 0.1);
    const fn = (xx: Tensor, cw: Tensor, gw: Tensor, q: Tensor, lw: Tensor) =>
      tidy(() => {
        const h = silu(groupNorm(conv2d(xx, cw, convB, { padding: 1 }), G, { weight: gw, bias: gnB, eps: 1e-5 }));
        const tok = toTokens(h);
        const a = attention(linear(tok, q), linear(tok, wk), linear(tok, wv), HEADS, { scale: 1 / Math.sqrt(F / HEADS) });
        return linear(linear(a, wo, bo), lw, linB);
      });
    const r = await gradcheck(fn, [x, convW, gnW, wq, linW], { maxElements: 8 });
    console.log(`composite gradcheck: ${r.checks} checks, worst ratio ${r.worstRatio.toFixed(3)}`);
    expect(r.failures).toEqual([]);
    expect(r.ok).toBe(true);
    [x, convW, convB, gnW, gnB, wq, wk, wv, wo, bo, linW, linB].forEach((v) => v.dispose());
  });

  it('trains on a fixed batch with AdamW until the MSE falls by more than 90%', async () => {
    const gen = new Generator(3);
    const model = new Composite(gen);
    const x = Tensor.randn([N, C, H, W], gen);
    const target = Tensor.randn([N, L, OUT], gen);
    const opt = new AdamW(model.parameters(), { lr: 3e-2, weightDecay: 0 });
    let first = NaN;
    let last = NaN;
    for (let step = 0; step < 300; step++) {
      const loss = tidy(() => mse(model.forward(x), target));
      backward(loss);
      opt.step();
      zeroGrad(model.parameters());
      if (step === 0 || step % 10 === 9) {
        last = await loss.item();
        if (step === 0) first = last;
      }
      loss.dispose();
      if (last < 0.05 * first) break;
    }
    console.log(`composite training: MSE ${first.toFixed(4)} → ${last.toFixed(4)} (${((1 - last / first) * 100).toFixed(1)}% lower)`);
    expect(last).toBeLessThan(0.1 * first);
    x.dispose();
    target.dispose();
    model.dispose();
  });

  it('checkpoint() gives the same loss and gradients as the plain path', async () => {
    const gen = new Generator(5);
    const model = new Composite(gen);
    const target = Tensor.randn([N, L, OUT], gen);
    const xs = Tensor.randn([N, C, H, W], gen);
    const run = async (checkpointed: boolean) => {
      const x = requireGrad(xs.retain());
      const loss = tidy(() => mse(model.forward(x, { checkpointed }), target));
      const value = await loss.item();
      backward(loss);
      loss.dispose();
      const grads = new Map<string, Float32Array>();
      for (const [n, p] of model.namedParameters()) grads.set(n, await p.grad!.toArray());
      grads.set('input', await x.grad!.toArray());
      zeroGrad([...model.parameters(), x]);
      x.dispose();
      return { value, grads };
    };
    const plain = await run(false);
    const ck = await run(true);
    expect(Math.abs(ck.value - plain.value)).toBeLessThanOrEqual(1e-6 * Math.abs(plain.value));
    expect([...ck.grads.keys()].sort()).toEqual([...plain.grads.keys()].sort());
    for (const [n, g] of plain.grads) expect(relL2(ck.grads.get(n)!, g), n).toBeLessThan(1e-6);
    target.dispose();
    xs.dispose();
    model.dispose();
  });
});

describe('checkpoint() with elementwise ops', () => {
  it('matches the plain path when only a parameter inside needs a gradient', async () => {
    const gen = new Generator(9);
    const w = requireGrad(Tensor.fromArray(f32round(randNonZero(gen, 6)), [6]));
    const x = Tensor.fromArray(f32round(randNonZero(gen, 12)), [2, 6]); // no grad
    const f = (xx: Tensor) => tidy(() => silu(mul(mul(xx, w), xx)));
    backward(meanAll(f(x)));
    const ref = await w.grad!.toArray();
    zeroGrad([w]);
    const y = checkpoint(f, [x]);
    expect(y.requiresGrad).toBe(true);
    backward(meanAll(y));
    expect(relL2(await w.grad!.toArray(), ref)).toBeLessThan(1e-7);
    zeroGrad([w]);
    [w, x, y].forEach((t) => t.dispose());
  });
});
