// Linear and LoRA layers (torch.nn.Linear; PEFT's lora_A/lora_B key names).
import { ShapeError, ArgumentError, LpoError } from '../errors.js';
import { gpu } from '../gpu/runtime.js';
import { Tensor, tidy } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import { noGrad } from '../autograd/tape.js';
import { add, scale as scaleOp, sub } from '../tensor/ops/elementwise.js';
import { linear, matmul } from '../tensor/ops/matmul.js';
import { loraLinear } from '../tensor/ops/lora.js';
import { Module, initGenerator } from './module.js';
import { uniformParam } from './init.js';

export interface LinearOptions {
  bias?: boolean;
  gen?: Generator;
}

/** torch's default init: U(-1/√fan_in, 1/√fan_in) for weight (kaiming_uniform, a=√5) and bias. */
export function uniformFanIn(shape: readonly number[], fanIn: number, gen: Generator): Tensor {
  const b = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
  return uniformParam(shape, -b, b, gen);
}

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: LinearOptions = {}) {
    super();
    const gen = initGenerator(opts.gen);
    this.weight = this.registerParameter('weight', uniformFanIn([outFeatures, inFeatures], inFeatures, gen));
    this.bias = opts.bias ?? true ? this.registerParameter('bias', uniformFanIn([outFeatures], inFeatures, gen)) : null;
  }

  protected override halfParameters(): readonly string[] {
    return ['weight'];
  }

  forward(x: Tensor): Tensor {
    if (x.shape[x.rank - 1] !== this.inFeatures) {
      throw new ShapeError(`Linear(${this.inFeatures}→${this.outFeatures}): input [${x.shape}] has last dim ${x.shape[x.rank - 1]}`);
    }
    return linear(x, this.weight, this.bias ?? undefined);
  }
}

/** A module holding one `weight` (LoRA's lora_A / lora_B). */
class LoRAFactor extends Module {
  readonly weight: Tensor;
  constructor(w: Tensor) {
    super();
    this.weight = this.registerParameter('weight', w);
  }
}

export interface LoRAOptions {
  rank: number;
  /** Scale is alpha / rank (default alpha = rank, so scale 1). */
  alpha?: number;
  /**
   * lora_A's init: 'kaiming' (PEFT's default `init_lora_weights=True`: torch's Linear init, U(±1/√in)) or
   * 'gaussian' (PEFT's "gaussian", which SPO/LPO use: N(0, std = 1/r)). lora_B is always 0.
   */
  init?: 'kaiming' | 'gaussian';
  gen?: Generator;
}

/**
 * y = x Wᵀ + b + (α/r)·(x Aᵀ) Bᵀ with W, b frozen (the wrapped Linear's own tensors, kept under the
 * names `weight`/`bias` so a base checkpoint still loads), A [r,in] (see LoRAOptions.init), B [out,r] = 0.
 * `bypass` computes the base layer alone (the frozen reference model, without a second copy of W).
 */
export class LoRALinear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly rank: number;
  readonly alpha: number;
  readonly scale: number;
  private merged = false;
  /** When true, forward is the base layer alone (x Wᵀ + b); the factors are untouched. */
  bypass = false;

  constructor(readonly base: Linear, opts: LoRAOptions) {
    super();
    const { rank } = opts;
    if (!Number.isInteger(rank) || rank < 1) throw new ArgumentError(`LoRALinear: rank must be a positive integer, got ${rank}`);
    this.rank = rank;
    this.alpha = opts.alpha ?? rank;
    this.scale = this.alpha / rank;
    const gen = initGenerator(opts.gen);
    this.weight = this.registerParameter('weight', base.weight, false);
    this.bias = base.bias ? this.registerParameter('bias', base.bias, false) : null;
    const a = opts.init === 'gaussian' ? Tensor.randn([rank, base.inFeatures], gen, 1 / rank) : uniformFanIn([rank, base.inFeatures], base.inFeatures, gen);
    this.registerModule('lora_A', new LoRAFactor(a));
    this.registerModule('lora_B', new LoRAFactor(Tensor.fromArray(new Float32Array(base.outFeatures * rank), [base.outFeatures, rank])));
  }

  protected override halfParameters(): readonly string[] {
    return ['weight'];
  }

  get inFeatures(): number { return this.base.inFeatures; }
  get outFeatures(): number { return this.base.outFeatures; }
  get loraA(): Tensor { return this.child<LoRAFactor>('lora_A').weight; }
  get loraB(): Tensor { return this.child<LoRAFactor>('lora_B').weight; }
  get isMerged(): boolean { return this.merged; }

  forward(x: Tensor): Tensor {
    if (x.shape[x.rank - 1] !== this.inFeatures) {
      throw new ShapeError(`LoRALinear(${this.inFeatures}→${this.outFeatures}): input [${x.shape}] has last dim ${x.shape[x.rank - 1]}`);
    }
    if (this.bypass && this.merged) throw new LpoError('LoRALinear: cannot bypass a merged adapter (unmerge() first)');
    if (this.merged || this.bypass) return linear(x, this.weight, this.bias ?? undefined);
    return loraLinear(x, this.weight, this.bias ?? undefined, this.loraA, this.loraB, this.scale);
  }

  /** W ← W ± scale·B·A, in place (for inference; unmerge before training the factors again). */
  private fold(sign: 1 | -1): void {
    noGrad(() =>
      tidy(() => {
        const delta = scaleOp(matmul(this.loraB, this.loraA), this.scale);
        const w = sign > 0 ? add(this.weight, delta) : sub(this.weight, delta);
        gpu().copy(w.buffer, 0, this.weight.buffer, 0, this.weight.bytes);
      }),
    );
  }

  merge(): void {
    if (this.merged) return;
    this.fold(1);
    this.merged = true;
  }

  unmerge(): void {
    if (!this.merged) return;
    this.fold(-1);
    this.merged = false;
  }
}

/**
 * Replaces every Linear child whose dotted name `match` accepts with a LoRALinear around it, freezes
 * everything else, and returns the names replaced (e.g. match = /(to_q|to_k|to_v|to_out\.0)$/).
 */
export function injectLoRA(root: Module, match: RegExp | ((name: string) => boolean), opts: LoRAOptions): string[] {
  const test = typeof match === 'function' ? match : (n: string) => match.test(n);
  const gen = initGenerator(opts.gen);
  const targets: [Module, string, string][] = [];
  for (const [prefix, m] of root.namedModules()) {
    for (const [name, c] of m.namedChildren()) {
      const full = prefix ? `${prefix}.${name}` : name;
      if (c instanceof Linear && test(full)) targets.push([m, name, full]);
    }
  }
  root.freeze();
  for (const [m, name] of targets) m.replaceModule(name, new LoRALinear(m.child<Linear>(name), { ...opts, gen }));
  return targets.map(([, , full]) => full);
}

/** Linear or a LoRA-wrapped Linear: what a projection slot holds. */
export type Projection = Linear | LoRALinear;
