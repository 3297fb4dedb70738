// AdamW state ⇄ named host arrays, for training checkpoints: `<name>.exp_avg` and `<name>.exp_avg_sq` per
// parameter that has stepped, and each parameter's step count. The file format is the caller's (safetensors).
import { FileFormatError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { AdamW } from './adamw.js';

export interface HostArray { shape: readonly number[]; data: Float32Array }

/** The moments (host copies) and step counts of `named` parameters of `opt`. */
export async function adamwStateToHost(opt: AdamW, named: readonly (readonly [string, Tensor])[]): Promise<{ tensors: Record<string, HostArray>; steps: Record<string, number> }> {
  const tensors: Record<string, HostArray> = {};
  const steps: Record<string, number> = {};
  for (const [name, p] of named) {
    steps[name] = opt.stepCount(p);
    const m = opt.moments(p);
    if (!m) continue;
    tensors[`${name}.exp_avg`] = { shape: p.shape, data: await m.m.toArray() };
    tensors[`${name}.exp_avg_sq`] = { shape: p.shape, data: await m.v.toArray() };
  }
  return { tensors, steps };
}

/** What restoreAdamwState reads from (a SafetensorsFile fits): the moments, and the step counts as JSON in `metadata.steps`. */
export interface MomentSource {
  readonly metadata: Readonly<Record<string, string>>;
  has(key: string): boolean;
  info(key: string): { shape: readonly number[] };
  readF32Sync(key: string): Float32Array;
}

/** Restores every named parameter's step count and moments; FileFormatError naming `file` for anything missing or misshapen. */
export function restoreAdamwState(opt: AdamW, named: readonly (readonly [string, Tensor])[], src: MomentSource, file: string): void {
  let steps: unknown;
  try {
    steps = JSON.parse(src.metadata.steps ?? '');
  } catch {
    throw new FileFormatError(file, '__metadata__ has no valid "steps" entry');
  }
  if (typeof steps !== 'object' || steps === null) throw new FileFormatError(file, '__metadata__ "steps" is not an object');
  const counts = steps as Record<string, unknown>;
  for (const [name, p] of named) {
    const n = counts[name];
    if (!(Number.isInteger(n) && (n as number) >= 0)) throw new FileFormatError(file, `no step count for '${name}'`);
    if (n === 0) continue;
    for (const k of [`${name}.exp_avg`, `${name}.exp_avg_sq`]) {
      if (!src.has(k)) throw new FileFormatError(file, `'${k}' is missing`);
      if (src.info(k).shape.join() !== p.shape.join()) throw new FileFormatError(file, `'${k}' has shape [${src.info(k).shape}], the parameter [${p.shape}]`);
    }
    opt.setState(p, n as number, src.readF32Sync(`${name}.exp_avg`), src.readF32Sync(`${name}.exp_avg_sq`));
  }
}
