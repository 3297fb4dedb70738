// Buffer pool: reuses released storage buffers by size class, and tracks what is held.
//
// Size classes are 256 bytes and up, stepping by a sixteenth of the power of two
// (1, 1.0625, …, 1.9375 × 2^k): a buffer wastes at most 6.25% (model weights are mostly in big
// buffers, so this is what a 3.4 GB U-Net pays), while activations of nearby sizes still share.
import { GpuOutOfMemoryError, LimitError } from './errors.js';

export interface PoolStats {
  /** Bytes of all GPU buffers the pool has created and not destroyed. */
  allocatedBytes: number;
  peakAllocatedBytes: number;
  /** Bytes currently handed out (live tensors and scratch). */
  inUseBytes: number;
  /** Buffers currently handed out (the live count a leak test watches). */
  inUseBuffers: number;
  peakInUseBytes: number;
  freeBuffers: number;
  hits: number;
  misses: number;
}

export function sizeClass(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes));
  const pow = 2 ** Math.floor(Math.log2(b));
  const step = Math.max(256, pow / 16);
  return Math.ceil(b / step) * step;
}

/** What to try when a buffer does not fit (the LimitError and GpuOutOfMemoryError messages end with it). */
export const MEMORY_HINT = 'try a smaller batch or micro-batch, gradient checkpointing, or f16 weights';

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;

export const STORAGE_USAGE = 0x80 /* STORAGE */ | 0x4 /* COPY_SRC */ | 0x8; /* COPY_DST */

export class BufferPool {
  private readonly free = new Map<number, GPUBuffer[]>();
  private readonly sizes = new WeakMap<GPUBuffer, number>();
  private s: PoolStats = { allocatedBytes: 0, peakAllocatedBytes: 0, inUseBytes: 0, inUseBuffers: 0, peakInUseBytes: 0, freeBuffers: 0, hits: 0, misses: 0 };
  /** Allocation errors reported asynchronously by Dawn; checked at the next sync. */
  readonly pendingErrors: Promise<Error | null>[] = [];

  private readonly maxBufferSize: number;

  constructor(private readonly device: GPUDevice) {
    this.maxBufferSize = device.limits.maxBufferSize;
  }

  acquire(bytes: number, label = 'tensor'): GPUBuffer {
    const size = sizeClass(bytes);
    if (size > this.maxBufferSize) {
      throw new LimitError(`${label}: ${bytes} bytes (${mib(bytes)}) exceeds the adapter's maxBufferSize ${this.maxBufferSize} (${mib(this.maxBufferSize)}); ${MEMORY_HINT}`);
    }
    let buf = this.free.get(size)?.pop();
    if (buf) {
      this.s.hits++;
      this.s.freeBuffers--;
    } else {
      this.s.misses++;
      this.device.pushErrorScope('out-of-memory');
      buf = this.device.createBuffer({ size, usage: STORAGE_USAGE, label });
      this.pendingErrors.push(
        this.device.popErrorScope().then((e) => (e ? new GpuOutOfMemoryError(label, size, `${e.message}; ${MEMORY_HINT}`) : null)),
      );
      this.sizes.set(buf, size);
      this.s.allocatedBytes += size;
      this.s.peakAllocatedBytes = Math.max(this.s.peakAllocatedBytes, this.s.allocatedBytes);
    }
    this.s.inUseBytes += size;
    this.s.inUseBuffers++;
    this.s.peakInUseBytes = Math.max(this.s.peakInUseBytes, this.s.inUseBytes);
    return buf;
  }

  /**
   * Returns a buffer for reuse. Safe while commands using it are still unsubmitted: later GPU
   * work on the same queue is ordered after them, and uploads flush first (see Gpu.write).
   */
  release(buf: GPUBuffer): void {
    const size = this.sizes.get(buf);
    if (size === undefined) throw new Error('BufferPool.release: buffer not from this pool');
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(buf);
    this.s.freeBuffers++;
    this.s.inUseBytes -= size;
    this.s.inUseBuffers--;
  }

  /** Destroys all free buffers (call after a sync, when none is referenced by pending work). */
  trim(): void {
    for (const list of this.free.values()) {
      for (const b of list) {
        this.s.allocatedBytes -= this.sizes.get(b) ?? 0;
        b.destroy();
      }
    }
    this.free.clear();
    this.s.freeBuffers = 0;
  }

  resetPeaks(): void {
    this.s.peakAllocatedBytes = this.s.allocatedBytes;
    this.s.peakInUseBytes = this.s.inUseBytes;
  }

  stats(): PoolStats {
    return { ...this.s };
  }
}
