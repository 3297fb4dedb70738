// Device errors: what only the GPU runtime raises. Argument, shape and file errors live in src/errors.ts.
import { LpoError } from '../errors.js';

/** No WebGPU adapter or device could be obtained. */
export class NoAdapterError extends LpoError {}

/** A WGSL compile/validation error, an invalid dispatch, or an invalid binding. */
export class KernelError extends LpoError {
  constructor(readonly kernel: string, readonly detail: string) {
    super(`kernel '${kernel}': ${detail}`);
  }
}

/** The device ran out of memory while allocating `bytes`. */
export class GpuOutOfMemoryError extends LpoError {
  constructor(readonly what: string, readonly bytes: number, detail: string) {
    super(`out of GPU memory allocating ${bytes} bytes for ${what}: ${detail}`);
  }
}

/** The device was lost (driver reset, destroyed); nothing on it can be used any more. */
export class DeviceLostError extends LpoError {}

/** A request exceeds an adapter limit (buffer size, workgroups). */
export class LimitError extends LpoError {}

/** A NaN or ±Inf appeared in an op's output (LPO_CHECK_FINITE=1 names the first op). */
export class NonFiniteError extends LpoError {}
