// The GPU runtime: one device, its buffer pool and pipeline cache, and a command stream that
// batches many dispatches into one compute pass and one submission.
import { acquireDevice, type AcquiredDevice, type DeviceOptions } from './device.js';
import { LpoError } from '../errors.js';
import { DeviceLostError, KernelError, LimitError } from './errors.js';
import { BufferPool } from './pool.js';
import { PipelineCache, type KernelSpec } from './pipelines.js';
import { FiniteChecker } from './finite.js';
import { BIND_GROUPS_PER_COLLECTION, collectGarbage, throttleDawnPolling } from './poll.js';
import type { BoundParams } from './params.js';
import { settings } from '../settings.js';

export interface BufferBinding { buffer: GPUBuffer; offset?: number; size?: number }

export interface Dispatch {
  kernel: KernelSpec;
  /** Storage buffers at @binding(1), @binding(2), … in order (@binding(0) is the params block). */
  buffers: (GPUBuffer | BufferBinding)[];
  /** The `params` uniform at @binding(0), by name: `P.of({ ... })` of the family's defineParams layout. */
  params?: BoundParams;
  /** Workgroup counts. A single number is a linear count folded into x/y (see WGSL `wg_linear`). */
  workgroups: number | [number, number?, number?];
}

const PARAM_SLOT = 256; // minUniformBufferOffsetAlignment
// Submitting in chunks (settings.submitEvery ≤ this) lets the GPU start on early dispatches while the
// host encodes later ones.
const MAX_DISPATCHES_PER_SUBMIT = 512;
// createBindGroup costs ~5–20 µs (most of a dispatch's host time); loops repeat the same bindings.
const BIND_GROUP_CACHE_SIZE = 8192;

/** Folds a linear workgroup count into (x, y) with x ≤ maxPerDim. Kernels rebuild the id as x + y·nx. */
export function foldWorkgroups(n: number, maxPerDim = 65535): [number, number, number] {
  if (n <= maxPerDim) return [Math.max(1, n), 1, 1];
  const y = Math.ceil(n / maxPerDim);
  if (y > maxPerDim) throw new LimitError(`dispatch of ${n} workgroups exceeds ${maxPerDim}² per dimension pair`);
  return [Math.ceil(n / y), y, 1];
}

export interface KernelTiming { kernel: string; calls: number; ns: number }

export class Gpu {
  readonly device: GPUDevice;
  readonly pool: BufferPool;
  readonly pipelines: PipelineCache;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private dispatches = 0;
  private readonly boundThisSubmit = new Set<GPUBuffer>();
  private readonly paramData = new ArrayBuffer(PARAM_SLOT * MAX_DISPATCHES_PER_SUBMIT);
  private readonly paramU32 = new Uint32Array(this.paramData);
  private readonly paramF32 = new Float32Array(this.paramData);
  private readonly paramI32 = new Int32Array(this.paramData);
  private readonly paramBuffer: GPUBuffer;
  private readonly uncaptured: string[] = [];
  private lostReason: string | null = null;
  private readonly bindErrors: Promise<Error | null>[] = [];
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 1;
  private profiling: { querySet: GPUQuerySet; names: string[]; results: Map<string, KernelTiming>; pending: Promise<void>[] } | null = null;
  private finite: FiniteChecker | null = null;
  /** Launches and queue submissions since the device was created (benches read differences). */
  readonly counters = { dispatches: 0, submits: 0, collections: 0 };
  private bindGroupsSinceCollection = 0;
  // dawn.node builds a fresh limits object on every `device.limits` read: cache what the hot path needs.
  private readonly maxWorkgroupsPerDim: number;

  constructor(readonly acquired: AcquiredDevice) {
    this.device = acquired.device;
    this.maxWorkgroupsPerDim = this.device.limits.maxComputeWorkgroupsPerDimension;
    this.pool = new BufferPool(this.device);
    this.pipelines = new PipelineCache(this.device, { f16: acquired.hasF16, subgroups: acquired.hasSubgroups });
    this.paramBuffer = this.device.createBuffer({ size: this.paramData.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, label: 'params' });
    const poll = settings.dawnPoll;
    if (poll === 'throttle' || (poll === 'auto' && acquired.summary.isSoftware)) throttleDawnPolling();
    this.device.lost.then((info) => { this.lostReason = `${info.reason}: ${info.message}`; });
    this.device.addEventListener('uncapturederror', (ev) => {
      this.uncaptured.push((ev as GPUUncapturedErrorEvent).error.message);
    });
  }

  get summary() { return this.acquired.summary; }

  /** Called by every op on its result: queues the NaN/Inf check when settings.checkFinite is on (src/gpu/finite.ts). */
  checkOutput(op: string, t: { buffer: GPUBuffer; size: number; shape: readonly number[]; dtype: string }): void {
    if (!settings.checkFinite || t.dtype !== 'f32') return;
    this.finite ??= new FiniteChecker(this);
    this.finite.check(`${op} [${t.shape.join(', ')}]`, t.buffer, t.size);
  }
  get isSoftware(): boolean { return this.acquired.summary.isSoftware; }

  /**
   * Whether the subgroup kernels can run: subgroups with at least 8 lanes (the barrier-free lavapipe
   * variants of matmul and conv2d broadcast 8 rows across a subgroup).
   */
  get hasSubgroups8(): boolean {
    return this.acquired.hasSubgroups && this.summary.subgroupMinSize >= 8;
  }

  private checkAlive(): void {
    if (this.lostReason !== null) throw new DeviceLostError(`GPU device lost (${this.lostReason}); restart the process`);
  }

  dispatch(d: Dispatch): void {
    this.checkAlive();
    if (this.dispatches >= Math.min(settings.submitEvery, MAX_DISPATCHES_PER_SUBMIT)) this.flush();
    const slot = this.dispatches;
    const entries: GPUBindGroupEntry[] = [];
    // Params first: a bad value throws before anything is created or recorded.
    if (d.params) {
      if (d.params.layout.words * 4 > PARAM_SLOT) throw new KernelError(d.kernel.name, `params of ${d.params.layout.words * 4} bytes exceed ${PARAM_SLOT}`);
      d.params.layout.write(d.params.values, this.paramU32, this.paramF32, this.paramI32, slot * (PARAM_SLOT / 4), d.kernel.name);
    }
    const pipe = this.pipelines.get(d.kernel);
    if (d.params) {
      entries.push({ binding: 0, resource: { buffer: this.paramBuffer, offset: slot * PARAM_SLOT, size: PARAM_SLOT } });
    }
    let key = `${pipe.id}|${entries.length ? slot : '-'}`;
    d.buffers.forEach((b, i) => {
      const binding: BufferBinding = 'buffer' in b ? b : { buffer: b };
      this.boundThisSubmit.add(binding.buffer);
      entries.push({ binding: i + 1, resource: binding });
      key += `|${this.bufferId(binding.buffer)}${binding.offset || binding.size ? `@${binding.offset ?? 0}+${binding.size ?? ''}` : ''}`;
    });
    const bindGroup = this.bindGroupFor(key, pipe.label, pipe.layout, entries);

    const [x, y = 1, z = 1] = typeof d.workgroups === 'number' ? foldWorkgroups(d.workgroups) : d.workgroups;
    const maxDim = this.maxWorkgroupsPerDim;
    if (x > maxDim || y > maxDim || z > maxDim) throw new LimitError(`${pipe.label}: workgroups [${x},${y},${z}] exceed ${maxDim} per dimension`);
    if (x === 0 || y === 0 || z === 0) return;

    this.encoder ??= this.device.createCommandEncoder();
    let pass = this.pass;
    if (this.profiling) {
      // One pass per dispatch so each gets its own timestamps.
      this.endPass();
      const q = this.profiling.names.length;
      if (q * 2 + 2 > this.profiling.querySet.count) this.flush();
      const qi = this.profiling.names.length;
      this.encoder ??= this.device.createCommandEncoder();
      pass = this.encoder.beginComputePass({ timestampWrites: { querySet: this.profiling.querySet, beginningOfPassWriteIndex: qi * 2, endOfPassWriteIndex: qi * 2 + 1 } });
      this.profiling.names.push(d.kernel.name);
    } else if (!pass) {
      pass = this.pass = this.encoder.beginComputePass();
    }
    pass.setPipeline(pipe.pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    if (this.profiling) pass.end();
    this.dispatches++;
    this.counters.dispatches++;
    if (settings.debugSync) this.flush();
  }

  private bufferId(b: GPUBuffer): number {
    let id = this.bufferIds.get(b);
    if (id === undefined) this.bufferIds.set(b, (id = this.nextBufferId++));
    return id;
  }

  /** A bind group for these entries, reused while its buffers live (the cache is cleared on trim). */
  private bindGroupFor(key: string, label: string, layout: GPUBindGroupLayout, entries: GPUBindGroupEntry[]): GPUBindGroup {
    let bg = this.bindGroups.get(key);
    if (bg) return bg;
    // An error scope per dispatch costs a promise round trip on the hot path; only debug mode pays it.
    // Otherwise a bad binding reaches the uncaptured-error handler, whose message names the bind
    // group's label (the kernel).
    // A storage binding past the adapter's limit (128 MiB on lavapipe) would only surface as a validation error
    // at the next sync; name the kernel and the buffer now.
    const limit = this.device.limits.maxStorageBufferBindingSize;
    for (const e of entries) {
      const r = e.resource as GPUBufferBinding;
      if (e.binding === 0 || !r.buffer) continue;
      const bytes = r.size ?? r.buffer.size - (r.offset ?? 0);
      if (bytes > limit) {
        const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;
        throw new LimitError(`${label}: binding ${e.binding} ("${r.buffer.label}") is ${mib(bytes)}, over this adapter's maxStorageBufferBindingSize of ${mib(limit)}; split the batch or the image into smaller pieces`);
      }
    }
    const debug = settings.debugSync;
    if (debug) this.device.pushErrorScope('validation');
    bg = this.device.createBindGroup({ layout, entries, label });
    this.bindGroupsSinceCollection++;
    if (debug) {
      this.bindErrors.push(this.device.popErrorScope().then((e) => (e ? new KernelError(label, `bad bindings: ${e.message}`) : null)));
    }
    if (this.bindGroups.size >= BIND_GROUP_CACHE_SIZE) this.bindGroups.clear();
    this.bindGroups.set(key, bg);
    return bg;
  }

  /** Destroys the pool's free buffers (after a sync); cached bind groups may name them, so they go too. */
  async trimPool(): Promise<void> {
    await this.sync();
    this.bindGroups.clear();
    this.pool.trim();
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  /** Encodes a buffer-to-buffer copy in stream order. */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.checkAlive();
    this.endPass();
    this.encoder ??= this.device.createCommandEncoder();
    this.encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
    this.boundThisSubmit.add(src).add(dst);
  }

  /** Submits everything recorded so far. */
  flush(): void {
    if (!this.encoder) return;
    this.endPass();
    if (this.dispatches > 0) this.device.queue.writeBuffer(this.paramBuffer, 0, this.paramData, 0, this.dispatches * PARAM_SLOT);
    let resolve: GPUBuffer | null = null;
    if (this.profiling && this.profiling.names.length) {
      const n = this.profiling.names.length * 2;
      const qbuf = this.device.createBuffer({ size: n * 8, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
      resolve = this.device.createBuffer({ size: n * 8, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      this.encoder.resolveQuerySet(this.profiling.querySet, 0, n, qbuf, 0);
      this.encoder.copyBufferToBuffer(qbuf, 0, resolve, 0, n * 8);
    }
    this.device.queue.submit([this.encoder.finish()]);
    this.counters.submits++;
    this.encoder = null;
    this.dispatches = 0;
    this.boundThisSubmit.clear();
    if (resolve && this.profiling) {
      const p = this.profiling;
      const names = p.names.splice(0);
      const rb = resolve;
      p.pending.push(rb.mapAsync(GPUMapMode.READ).then(() => {
        const t = new BigUint64Array(rb.getMappedRange().slice(0));
        rb.destroy();
        names.forEach((name, i) => {
          const r = p.results.get(name) ?? { kernel: name, calls: 0, ns: 0 };
          r.calls++;
          r.ns += Number(t[2 * i + 1] - t[2 * i]);
          p.results.set(name, r);
        });
      }));
    }
  }

  /** Flushes, waits for the GPU, and throws the first error any kernel, binding or allocation raised. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.releaseFinished();
    await this.throwPendingErrors();
  }

  /**
   * Throws the first error that kernels, bindings or allocations raised since the last check. One
   * failure cascades (a bad module makes an invalid pipeline, bind group and command buffer), so
   * everything pending is drained and the root cause, the earliest scoped error, is the one reported.
   */
  private async throwPendingErrors(): Promise<void> {
    const scoped: (Error | null)[] = [];
    for (const list of [this.pipelines.pendingErrors, this.pool.pendingErrors, this.bindErrors]) scoped.push(...(await Promise.all(list.splice(0))));
    const uncaptured = this.uncaptured.splice(0);
    const first = scoped.find((e) => e);
    if (first) throw first;
    if (uncaptured.length) {
      // Dawn's messages quote the failing object's label, which is the kernel's label.
      const label = /"([^"]+:[^"]+)"/.exec(uncaptured[0])?.[1] ?? 'unknown (rerun with LPO_DEBUG_SYNC=1 to locate)';
      throw new KernelError(label, uncaptured.join(' | '));
    }
    this.checkAlive();
    await this.finite?.throwIfFlagged();
  }

  /** Writes host data into a buffer in stream order. */
  write(buffer: GPUBuffer, data: ArrayBufferView, offset = 0): void {
    this.checkAlive();
    // queue.writeBuffer runs before unsubmitted commands; flush if they may touch this buffer.
    if (this.boundThisSubmit.has(buffer)) this.flush();
    this.device.queue.writeBuffer(buffer, offset, data.buffer, data.byteOffset, data.byteLength);
  }

  /**
   * After a wait: a full garbage collection once BIND_GROUPS_PER_COLLECTION bind groups were created since the last,
   * so the driver gets their descriptor sets back (src/gpu/poll.ts says why this cannot be left to V8).
   */
  private releaseFinished(): void {
    if (this.bindGroupsSinceCollection < BIND_GROUPS_PER_COLLECTION) return;
    this.bindGroupsSinceCollection = 0;
    this.counters.collections++;
    collectGarbage();
  }

  /** Reads `bytes` from a buffer after all recorded work (async readback). */
  async read(buffer: GPUBuffer, bytes: number, offset = 0): Promise<ArrayBuffer> {
    this.checkAlive();
    const size = Math.ceil(bytes / 4) * 4;
    const staging = this.device.createBuffer({ size: Math.max(size, 4), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.copy(buffer, offset, staging, 0, size);
    this.flush();
    try {
      await staging.mapAsync(GPUMapMode.READ);
    } catch (e) {
      staging.destroy();
      await this.throwPendingErrors();
      throw new LpoError(`readback failed: ${(e as Error).message}`);
    }
    const out = staging.getMappedRange().slice(0, bytes);
    staging.unmap();
    staging.destroy();
    this.releaseFinished();
    await this.throwPendingErrors();
    return out;
  }

  /** Runs `fn` with per-dispatch GPU timestamps; returns per-kernel totals (needs timestamp-query). */
  async profile(fn: () => void | Promise<void>): Promise<KernelTiming[]> {
    if (!this.acquired.hasTimestamps) throw new LpoError("profiling needs the adapter's 'timestamp-query' feature");
    await this.sync();
    const querySet = this.device.createQuerySet({ type: 'timestamp', count: 2 * 1024 });
    this.profiling = { querySet, names: [], results: new Map(), pending: [] };
    try {
      await fn();
      this.flush();
      await Promise.all(this.profiling.pending);
      return [...this.profiling.results.values()].sort((a, b) => b.ns - a.ns);
    } finally {
      this.profiling = null;
      querySet.destroy();
    }
  }

  destroy(): void {
    this.flush();
    this.bindGroups.clear();
    this.pool.trim();
    this.paramBuffer.destroy();
    this.device.destroy();
  }
}

let current: Gpu | null = null;
let pending: Promise<Gpu> | null = null;

/** The process-wide GPU (created on first use). */
export async function initGpu(opts: DeviceOptions = {}): Promise<Gpu> {
  if (current) return current;
  pending ??= acquireDevice(opts).then((a) => (current = new Gpu(a)));
  try {
    return await pending;
  } catch (e) {
    pending = null;
    throw e;
  }
}

/** The GPU created by initGpu(); throws when there is none yet. */
export function gpu(): Gpu {
  if (!current) throw new LpoError('no GPU yet: await initGpu() first');
  return current;
}
