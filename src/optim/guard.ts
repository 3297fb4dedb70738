// The non-finite step guard of the trainers: before an optimizer step, one tiny kernel per tensor ORs "has a
// NaN or ±Inf" of the loss and of every gradient into a single u32 flag on the GPU; the flag is read back in the
// same readback as the step's scalars (loss, gradient norm), so the check costs no extra sync and no gradient
// ever comes to the host. A bad step is skipped — the gradients are dropped, the parameters and the optimizer
// state (moments, step counts) stay as they were — and logged; after `maxConsecutive` bad steps in a row the
// guard throws NonFiniteTrainingError (a run that keeps producing NaNs will not recover by skipping).
//
// With f16 and dynamic loss scaling, an overflow is exactly such a step: the guard reports every verdict to an
// optional LossScaleListener (`update(false)` → scale down; `update(true)` → count towards growing it again).
import { ArgumentError, DTypeError } from '../errors.js';
import { NonFiniteError } from '../gpu/errors.js';
import { defineParams } from '../gpu/params.js';
import { gpu } from '../gpu/runtime.js';
import { kernelModule } from '../gpu/wgsl.js';
import { Tensor } from '../tensor/tensor.js';
import type { AdamW } from './adamw.js';

// kernels/check.wgsl `finite`: flags[slot] = 1 when any value of x is NaN/±Inf (read as bits; see the kernel).
const code = kernelModule('check');
const P = defineParams('check.wgsl', 'Params', { n: 'u32', slot: 'u32' });
const WG = 256;

/** Training produced non-finite values step after step; the message says how many and what to try. */
export class NonFiniteTrainingError extends NonFiniteError {}

/** A dynamic loss scaler's side of the guard (issue 12): told after every step whether it was finite. */
export interface LossScaleListener {
  update(finite: boolean): void;
}

export interface StepGuardOptions {
  /** Bad steps in a row that stop training (default 5). */
  maxConsecutive?: number;
  /** Where a skipped step is reported (default: a line on stderr). */
  log?: (message: string) => void;
  scaler?: LossScaleListener;
}

export interface StepVerdict {
  /** Whether the loss and every gradient were finite (and the optimizer stepped). */
  finite: boolean;
  /** The requested scalars, read back with the flag. */
  scalars: number[];
}

export class StepGuard {
  readonly maxConsecutive: number;
  /** Bad steps in a row so far, and in total. */
  consecutive = 0;
  skipped = 0;
  private readonly log: (message: string) => void;

  constructor(private readonly opts: StepGuardOptions = {}) {
    this.maxConsecutive = opts.maxConsecutive ?? 5;
    if (!(Number.isInteger(this.maxConsecutive) && this.maxConsecutive >= 1)) throw new ArgumentError(`StepGuard: maxConsecutive must be a positive integer, got ${opts.maxConsecutive}`);
    this.log = opts.log ?? ((m) => process.stderr.write(`${m}\n`));
  }

  /**
   * Whether every value of `tensors` is finite, with the values of the one-element `scalars` (their first
   * element), in a single readback. Null entries are ignored (a parameter without a gradient).
   */
  static async check(tensors: readonly (Tensor | null)[], scalars: readonly Tensor[] = []): Promise<StepVerdict> {
    const g = gpu();
    const packed = Tensor.empty([1 + scalars.length], 'f32', 'step-guard');
    try {
      g.write(packed.buffer, new Uint32Array([0])); // word 0: the flag
      for (const t of new Set([...scalars, ...tensors])) {
        if (!t || t.size === 0) continue;
        if (t.dtype !== 'f32') throw new DTypeError(`StepGuard: tensors must be f32, got ${t.dtype} [${t.shape}]`);
        g.dispatch({
          kernel: { name: 'check.finite', code, entry: 'finite', constants: { WG } },
          buffers: [t.buffer, packed.buffer],
          params: P.of({ n: t.size, slot: 0 }),
          workgroups: Math.ceil(t.size / WG),
        });
      }
      scalars.forEach((s, i) => g.copy(s.buffer, 0, packed.buffer, 4 * (i + 1), 4));
      const raw = await g.read(packed.buffer, 4 * (1 + scalars.length));
      return { finite: new Uint32Array(raw, 0, 1)[0] === 0, scalars: Array.from(new Float32Array(raw, 4)) };
    } finally {
      packed.dispose();
    }
  }

  /**
   * The guarded end of a training step: checks the gradients of the optimizer's parameters (and `scalars`,
   * e.g. the loss); steps the optimizer only when all are finite; always frees the gradients. `what` names the
   * step in the log ("step 12"). Throws NonFiniteTrainingError after `maxConsecutive` bad steps in a row.
   */
  async step(optimizer: AdamW, scalars: readonly Tensor[] = [], what = 'step'): Promise<StepVerdict> {
    const v = await StepGuard.check(optimizer.params.map((p) => p.grad), scalars);
    if (v.finite) optimizer.step();
    optimizer.zeroGrad();
    this.record(v.finite, what, v.scalars);
    return v;
  }

  /** Counts a verdict made elsewhere (e.g. a host-side loss that is NaN): logs, informs the scaler, may throw. */
  record(finite: boolean, what: string, scalars: readonly number[] = []): void {
    this.opts.scaler?.update(finite);
    if (finite) {
      this.consecutive = 0;
      return;
    }
    this.consecutive++;
    this.skipped++;
    const vals = scalars.length ? ` (${scalars.map((x) => String(x)).join(', ')})` : '';
    this.log(`${what}: NaN/Inf in the loss or the gradients${vals}; step skipped (${this.consecutive} in a row, ${this.skipped} in all)`);
    if (this.consecutive >= this.maxConsecutive) {
      throw new NonFiniteTrainingError(
        `training stopped: ${this.consecutive} steps in a row had NaN/Inf in the loss or the gradients (the limit is ${this.maxConsecutive}). `
        + 'Try a lower learning rate, gradient clipping, f32 instead of f16, or LPO_CHECK_FINITE=1 to name the first op that produces one.',
      );
    }
  }
}
