// LoRA adapters on a model's attention projections, PEFT-style: which layers get one, how they start,
// the bypass switch that turns the adapted model back into its frozen base, and merge/unmerge.
//
// LPO-SPEC §5.4 (from the authors' config): rank 4, alpha 4 (scale 1), targets to_q, to_k, to_v, to_out.0
// of every attention of the U-Net, PEFT's init_lora_weights="gaussian". PEFT 0.13's reset_lora_parameters
// draws that as nn.init.normal_(lora_A, std=1/r) — a standard deviation of 1/r, i.e. variance 1/r² — and
// zeros lora_B, so a fresh adapter leaves the model's output unchanged.
import { ArgumentError, LpoError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Generator } from '../tensor/random.js';
import { injectLoRA, LoRALinear } from './linear.js';
import type { Module } from './module.js';

/** PEFT target_modules of SPO/LPO (and diffusers' LoRA examples) for an SD U-Net. */
export const DEFAULT_LORA_TARGETS: readonly string[] = ['to_q', 'to_k', 'to_v', 'to_out.0'];

export interface LoRAConfig {
  rank: number;
  /** Scale = alpha / rank; default alpha = rank (scale 1), as LPO. */
  alpha?: number;
  /** Module-name suffixes (PEFT matching: the full dotted name equals one, or ends with `.<target>`). */
  targets?: readonly string[];
  /** Default 'gaussian' (PEFT's "gaussian": lora_A ~ N(0, std 1/r)); 'kaiming' is PEFT's default init. */
  init?: 'gaussian' | 'kaiming';
  gen?: Generator;
}

/** PEFT's module matching: `name` is a target or ends with `.target`. */
export function matchesTarget(name: string, targets: readonly string[]): boolean {
  return targets.some((t) => name === t || name.endsWith(`.${t}`));
}

/**
 * Wraps every Linear of `model` whose dotted name matches a target in a LoRALinear, freezes every other
 * parameter and returns the adapted layers' names. Throws when nothing matches (a wrong target list would
 * otherwise train nothing) or when the model already has adapters.
 */
export function addLoRA(model: Module, cfg: LoRAConfig): string[] {
  const targets = cfg.targets ?? DEFAULT_LORA_TARGETS;
  if (targets.length === 0) throw new ArgumentError('addLoRA: the target list is empty');
  if (loraLayers(model).length) throw new LpoError('addLoRA: the model already has LoRA adapters');
  const names = injectLoRA(model, (n) => matchesTarget(n, targets), { rank: cfg.rank, alpha: cfg.alpha, init: cfg.init ?? 'gaussian', gen: cfg.gen });
  if (names.length === 0) throw new ArgumentError(`addLoRA: no Linear layer matches the targets ${targets.join(', ')}`);
  return names;
}

/** Every LoRALinear of the model with its dotted module name, in module order. */
export function loraLayers(model: Module): [string, LoRALinear][] {
  const out: [string, LoRALinear][] = [];
  for (const [name, m] of model.namedModules()) if (m instanceof LoRALinear) out.push([name, m]);
  return out;
}

/** The trainable factors (lora_A, lora_B of each layer, in module order): what the optimizer updates. */
export function loraParameters(model: Module): Tensor[] {
  return loraLayers(model).flatMap(([, l]) => [l.loraA, l.loraB]);
}

function layersOrThrow(model: Module, what: string): LoRALinear[] {
  const ls = loraLayers(model).map(([, l]) => l);
  if (ls.length === 0) throw new LpoError(`${what}: the model has no LoRA adapters`);
  return ls;
}

/** Turns every adapter off (true: the frozen base model) or back on. */
export function setLoRABypass(model: Module, on: boolean): void {
  for (const l of layersOrThrow(model, 'setLoRABypass')) l.bypass = on;
}

/**
 * Runs fn with every adapter bypassed (the reference model) and restores the previous switches after it,
 * even when it throws. Synchronous on purpose: an await inside would let other work see the bypassed model.
 */
export function withLoRABypassed<T>(model: Module, fn: () => T): T {
  const ls = layersOrThrow(model, 'withLoRABypassed');
  const before = ls.map((l) => l.bypass);
  for (const l of ls) l.bypass = true;
  try {
    const out = fn();
    if (out instanceof Promise) throw new LpoError('withLoRABypassed: fn must be synchronous');
    return out;
  } finally {
    ls.forEach((l, i) => { l.bypass = before[i]; });
  }
}

/** W ← W + scale·B·A in every adapted layer (inference speed; unmerge before training again). */
export function mergeLoRA(model: Module): void {
  for (const l of layersOrThrow(model, 'mergeLoRA')) l.merge();
}

export function unmergeLoRA(model: Module): void {
  for (const l of layersOrThrow(model, 'unmergeLoRA')) l.unmerge();
}
