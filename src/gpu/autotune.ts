// Autotuning of kernel choices: for a shape bucket, time each candidate once (GPU timestamps on a
// private command stream), remember the fastest, and use it from then on.
//
// The tuner is generic: candidates are string ids, a bucket is a string key, and the caller supplies
// the `measure(id)` function (ns per run; Infinity or a throw drops the candidate). Tuning is async
// (timestamps come back through mapAsync) while ops are synchronous, so an op that meets a new bucket
// uses its static choice and starts tuning in the background (`Autotuner.request`); `idle()` awaits
// everything started. Tuning jobs run one at a time, in request order.
//
// `timeDispatches` is the private timestamp path: its own encoder, bind groups, params and
// buffers, submitted straight to the queue and wrapped in error scopes, so tuning never touches the
// runtime's recorded stream or its pending-error lists. Candidates' pipelines come from the one
// pipeline cache's `build` (private error scopes too): one that fails to compile is dropped, not
// reported to the next sync().
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { settings } from '../settings.js';

export type Measure = (id: string) => Promise<number>;

export interface TuneRecord {
  /** The winner's id. */
  best: string;
  /** ns per run for every candidate measured (Infinity: failed). */
  times: Record<string, number>;
}

export interface AutotunerOptions {
  /** JSON file holding records across processes ({ version, records }), or null for memory only. */
  file?: string | null;
  /** Records in the file written under another version (kernel source hash, …) are ignored. */
  version?: string;
  /** Called when a job fails as a whole (default: a one-line console.warn). */
  onError?: (bucket: string, e: unknown) => void;
}

export class Autotuner {
  private readonly records = new Map<string, TuneRecord>();
  private readonly jobs = new Map<string, Promise<TuneRecord | undefined>>();
  /** Buckets where every candidate failed (not retried: callers keep their static choice). */
  private readonly failed = new Set<string>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly file: string | null;
  private readonly version: string;
  private readonly onError: (bucket: string, e: unknown) => void;
  /** Buckets tuned by this process (for reports). */
  readonly tunedHere: string[] = [];

  constructor(opts: AutotunerOptions = {}) {
    this.file = opts.file ?? null;
    this.version = opts.version ?? '';
    this.onError = opts.onError ?? ((bucket, e) => console.warn(`[lpo] autotune ${bucket} failed: ${(e as Error)?.message ?? e}`));
    if (this.file) {
      try {
        const j = JSON.parse(readFileSync(this.file, 'utf8')) as { version?: string; records?: Record<string, TuneRecord> };
        if (j.version === this.version && j.records) for (const [k, r] of Object.entries(j.records)) if (r && typeof r.best === 'string') this.records.set(k, r);
      } catch { /* no file yet, or unreadable: start empty */ }
    }
  }

  /** The tuned winner for a bucket, if known. */
  get(bucket: string): string | undefined {
    return this.records.get(bucket)?.best;
  }

  record(bucket: string): TuneRecord | undefined {
    return this.records.get(bucket);
  }

  /** Whether the bucket is tuned or being tuned. */
  has(bucket: string): boolean {
    return this.records.has(bucket) || this.jobs.has(bucket) || this.failed.has(bucket);
  }

  /**
   * Tunes `bucket` unless it is known or in flight: `candidates()` is called when the job starts (so
   * the caller can defer allocations), each candidate is measured with `measure`, the fastest wins.
   * Returns the job's promise (never rejects; undefined when every candidate failed).
   */
  request(bucket: string, candidates: () => string[], measure: Measure): Promise<TuneRecord | undefined> {
    const known = this.records.get(bucket);
    if (known) return Promise.resolve(known);
    if (this.failed.has(bucket)) return Promise.resolve(undefined);
    const inflight = this.jobs.get(bucket);
    if (inflight) return inflight;
    const job = this.queue.then(async () => {
      try {
        const times: Record<string, number> = {};
        let best: string | undefined;
        for (const id of candidates()) {
          let ns: number;
          try {
            ns = await measure(id);
          } catch {
            ns = Infinity;
          }
          times[id] = Number.isFinite(ns) && ns > 0 ? ns : Infinity;
          if (times[id] < Infinity && (best === undefined || times[id] < times[best])) best = id;
        }
        if (best === undefined) {
          this.failed.add(bucket);
          return undefined;
        }
        const rec: TuneRecord = { best, times };
        this.records.set(bucket, rec);
        this.tunedHere.push(bucket);
        this.save();
        return rec;
      } catch (e) {
        this.failed.add(bucket);
        this.onError(bucket, e);
        return undefined;
      } finally {
        this.jobs.delete(bucket);
      }
    });
    this.jobs.set(bucket, job);
    this.queue = job;
    return job;
  }

  /** Resolves when every job requested so far has finished. */
  async idle(): Promise<void> {
    while (this.jobs.size) await Promise.all([...this.jobs.values()]);
  }

  /** Forgets every record (memory only; the file is rewritten on the next tune). */
  clear(): void {
    this.records.clear();
    this.failed.clear();
  }

  private save(): void {
    if (!this.file) return;
    try {
      mkdirSync(join(this.file, '..'), { recursive: true });
      const records: Record<string, TuneRecord> = {};
      for (const [k, r] of this.records) records[k] = { best: r.best, times: Object.fromEntries(Object.entries(r.times).map(([i, t]) => [i, Number.isFinite(t) ? Math.round(t) : -1])) };
      writeFileSync(this.file, JSON.stringify({ version: this.version, records }, null, 1));
    } catch { /* a read-only home is fine: memory only */ }
  }
}

/** <settings.cacheDir>/<name>-<adapter>.json (LPO_CACHE_DIR; default ~/.cache/lpo-wgsl). */
export function tuneCacheFile(name: string, adapter: string): string {
  return join(settings.cacheDir, `${name}-${adapter.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80)}.json`);
}

/** Small stable string hash (FNV-1a, hex) for cache versions. */
export function hashString(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

export interface TimedDispatch {
  pipeline: GPUComputePipeline;
  /** Storage buffers at @binding(1), … */
  buffers: GPUBuffer[];
  /** The packed params block at @binding(0) (ParamsLayout.pack). */
  params: Uint32Array;
  workgroups: [number, number, number];
}

/**
 * Median GPU time (ns) of running `dispatches` (in order, in one compute pass) over `reps` passes,
 * after `warmup` untimed passes. Private encoder and error scopes: failures throw here only.
 */
export async function timeDispatches(device: GPUDevice, dispatches: TimedDispatch[], reps = 5, warmup = 1): Promise<number> {
  const uniforms: GPUBuffer[] = [];
  const extra: GPUBuffer[] = [];
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  let querySet: GPUQuerySet | null = null;
  let scopes = 2;
  try {
    const groups = dispatches.map((d) => {
      const u = device.createBuffer({ size: Math.max(16, Math.ceil((d.params.length * 4) / 16) * 16), usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, label: 'autotune.params' });
      uniforms.push(u);
      device.queue.writeBuffer(u, 0, d.params);
      const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: u } }, ...d.buffers.map((buffer, i) => ({ binding: i + 1, resource: { buffer } }))];
      return device.createBindGroup({ layout: d.pipeline.getBindGroupLayout(0), entries, label: 'autotune' });
    });
    querySet = device.createQuerySet({ type: 'timestamp', count: 2 * reps });
    const enc = device.createCommandEncoder({ label: 'autotune' });
    const encodePass = (ts?: GPUComputePassTimestampWrites) => {
      const pass = enc.beginComputePass(ts ? { timestampWrites: ts } : {});
      dispatches.forEach((d, i) => {
        pass.setPipeline(d.pipeline);
        pass.setBindGroup(0, groups[i]);
        pass.dispatchWorkgroups(...d.workgroups);
      });
      pass.end();
    };
    for (let w = 0; w < warmup; w++) encodePass();
    for (let r = 0; r < reps; r++) encodePass({ querySet, beginningOfPassWriteIndex: 2 * r, endOfPassWriteIndex: 2 * r + 1 });
    const qbuf = device.createBuffer({ size: 16 * reps, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const rb = device.createBuffer({ size: 16 * reps, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    extra.push(qbuf, rb);
    enc.resolveQuerySet(querySet, 0, 2 * reps, qbuf, 0);
    enc.copyBufferToBuffer(qbuf, 0, rb, 0, 16 * reps);
    device.queue.submit([enc.finish()]);
    scopes = 0;
    // Pop both scopes before awaiting: an allocation elsewhere in between would land in the outer one.
    const [verr, merr] = await Promise.all([device.popErrorScope(), device.popErrorScope()]);
    if (verr || merr) throw new Error((verr ?? merr)!.message);
    await rb.mapAsync(GPUMapMode.READ);
    const t = new BigUint64Array(rb.getMappedRange().slice(0));
    rb.unmap();
    const per: number[] = [];
    for (let r = 0; r < reps; r++) per.push(Number(t[2 * r + 1] - t[2 * r]));
    per.sort((x, y) => x - y);
    return per[per.length >> 1];
  } catch (e) {
    // Pop whatever scopes are still pushed (a throw before the pops above).
    for (; scopes > 0; scopes--) await device.popErrorScope().catch(() => null);
    throw e;
  } finally {
    querySet?.destroy();
    for (const b of [...uniforms, ...extra]) b.destroy();
  }
}
