// Debug switch settings.checkFinite (LPO_CHECK_FINITE=1): after every op a tiny kernel flags a
// NaN/Inf in its output, in stream order; the next sync or readback throws a NonFiniteError naming the
// first op that produced one. Costs one dispatch per op and a small readback per sync.
import { NonFiniteError } from './errors.js';
import { defineParams } from './params.js';
import type { Gpu } from './runtime.js';
import { kernelModule } from './wgsl.js';

const code = kernelModule('check');
const P = defineParams('check.wgsl', 'Params', { n: 'u32', slot: 'u32' });
const WG = 256;
/** Ops checked between two syncs; later ones go unchecked until the next sync. */
const SLOTS = 16384;

export class FiniteChecker {
  private readonly flags: GPUBuffer;
  private labels: string[] = [];
  private skipped = 0;

  constructor(private readonly gpu: Gpu) {
    // New buffers are zero-filled by WebGPU.
    this.flags = gpu.device.createBuffer({ size: SLOTS * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, label: 'finite-flags' });
  }

  /** Queues the check of an op's f32 output (`label` names the op and shape). */
  check(label: string, buffer: GPUBuffer, n: number): void {
    if (n === 0) return;
    if (this.labels.length >= SLOTS) {
      this.skipped++;
      return;
    }
    const slot = this.labels.length;
    this.labels.push(label);
    this.gpu.dispatch({
      kernel: { name: 'check.finite', code, entry: 'finite', constants: { WG } },
      buffers: [buffer, this.flags],
      params: P.of({ n, slot }),
      workgroups: Math.ceil(n / WG),
    });
  }

  /** After a flush: throws for the first flagged op, and resets for the next batch. */
  async throwIfFlagged(): Promise<void> {
    const n = this.labels.length;
    if (n === 0) return;
    const labels = this.labels;
    this.labels = [];
    const dev = this.gpu.device;
    const staging = dev.createBuffer({ size: n * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = dev.createCommandEncoder();
    enc.copyBufferToBuffer(this.flags, 0, staging, 0, n * 4);
    enc.clearBuffer(this.flags, 0, n * 4);
    dev.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const flags = new Uint32Array(staging.getMappedRange().slice(0));
    staging.destroy();
    const first = flags.findIndex((f) => f !== 0);
    if (first >= 0) {
      const more = flags.filter((f) => f !== 0).length - 1;
      throw new NonFiniteError(`op '${labels[first]}' is the first to produce NaN/Inf${more ? ` (${more} later op${more > 1 ? 's' : ''} too)` : ''}; checked ${n} ops since the last sync${this.skipped ? `, ${this.skipped} unchecked` : ''}`);
    }
    this.skipped = 0;
  }
}
