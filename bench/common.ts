// What every bench suite shares: the machine's roofline, the timing loop, the table and the results file.
//
// Method: tinybench, `samples` iterations after warm-up, median. One sample is R back-to-back launches
// followed by a sync (`await gpu().sync()` unless the suite passes its own), with R sized so a sample
// lasts ≥ ~25 ms on GPUs (R = 1 on the software adapter, where one launch already takes that long).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import { Bench } from 'tinybench';
import { gpu } from '../src/gpu/runtime.js';
import type { AdapterSummary } from '../src/gpu/device.js';
import { settings } from '../src/settings.js';

/**
 * On the software adapter the SD-size shapes take minutes, so suites run smaller stand-ins (labelled
 * as such) unless LPO_BENCH_FULL=1 asks for the real shapes (then with 3 samples).
 */
export const fullShapesOnSoftware = settings.benchFull;

export interface Peak { gflops: number; gbps: number; source: string }

/** FP32 compute and memory-bandwidth peaks of the machine behind the adapter. */
export function machinePeak(s: AdapterSummary): Peak {
  const desc = `${s.description} ${s.device}`;
  if (s.isSoftware) return { gflops: 173, gbps: 12, source: 'CPU: FMA peak 173 GFLOP/s and numpy streaming ~12 GB/s measured on the 2-core CI box (PERF-ANCHORS §1.2, §5.3), not re-measured here' };
  if (/H200/i.test(desc)) return { gflops: 66_900, gbps: 4_800, source: 'H200 SXM: FP32 (CUDA cores) 66.9 TFLOP/s, HBM3e 4.8 TB/s (PERF-ANCHORS §1.1)' };
  if (/H100.*PCIe/i.test(desc)) return { gflops: 51_000, gbps: 2_000, source: 'H100 PCIe: FP32 51 TFLOP/s, 2.0 TB/s (PERF-ANCHORS §1.1)' };
  if (/H100/i.test(desc)) return { gflops: 66_900, gbps: 3_350, source: 'H100 SXM: FP32 66.9 TFLOP/s, 3.35 TB/s (PERF-ANCHORS §1.1)' };
  return { gflops: NaN, gbps: NaN, source: 'unknown adapter: no peak on file' };
}

export interface Timing { ms: number; reps: number }

/** Median time of one `runOnce` (ms). */
export async function timeIt(runOnce: () => void, opts: { software: boolean; samples: number; sync?: () => Promise<void>; maxReps?: number; name?: string }): Promise<Timing> {
  const sync = opts.sync ?? (() => gpu().sync());
  runOnce(); // warm-up: pipeline compilation, pool growth
  await sync();
  const t0 = performance.now();
  runOnce();
  await sync();
  const one = performance.now() - t0;
  const reps = opts.software ? 1 : Math.max(1, Math.min(opts.maxReps ?? 256, Math.ceil(25 / Math.max(one, 1e-3))));
  const b = new Bench({ iterations: opts.samples, warmupIterations: opts.software ? 1 : 3, time: 0, warmupTime: 0, throws: true });
  b.add(opts.name ?? 'x', async () => {
    for (let r = 0; r < reps; r++) runOnce();
    await sync();
  });
  await b.run();
  const res = b.tasks[0].result as unknown as { latency: { p50: number } };
  return { ms: res.latency.p50 / reps, reps };
}

export const pct = (f: number) => `${(100 * f).toFixed(f < 0.01 ? 2 : 1)}%`;

export function printTable(head: string[], rows: string[][]): void {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (c ?? '').padEnd(w[i])).join(' | ');
  console.log(`\n${line(head)}\n${w.map((n) => '-'.repeat(n)).join('-|-')}\n${rows.map(line).join('\n')}`);
}

/** bench/results/<adapter>.json: one file per adapter, one section per suite. */
export function resultsFile(s: AdapterSummary): string {
  const name = s.isSoftware ? s.description : s.device || s.description || s.vendor || 'adapter';
  return `bench/results/${name.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80)}.json`;
}

/** Merges `{ [section]: data }` into the adapter's results file and returns its path. */
export function writeSection(s: AdapterSummary, section: string, data: unknown): string {
  mkdirSync('bench/results', { recursive: true });
  const file = resultsFile(s);
  let prior: Record<string, unknown> = {};
  try { prior = JSON.parse(readFileSync(file, 'utf8')); } catch { /* first run */ }
  writeFileSync(file, JSON.stringify({ ...prior, [section]: data }, null, 2));
  return file;
}

export interface AbResult { name: string; medianMs: number; samples: number[] }

/**
 * Times variants of one workload in the same process, interleaved: each round runs every variant once (the
 * order rotates per round), so load on a shared machine hits all of them alike. `run` returns when the work
 * is done (it syncs). Returns each variant's median and the median per-round ratio of each to the first.
 */
export async function interleaved(variants: { name: string; run: () => Promise<void> }[], rounds: number, warmups = 2): Promise<{ results: AbResult[]; ratioToFirst: number[] }> {
  for (const v of variants) for (let w = 0; w < warmups; w++) await v.run(); // warm-up: pipelines, pool
  const times = variants.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    for (let j = 0; j < variants.length; j++) {
      const i = (j + r) % variants.length;
      const t0 = performance.now();
      await variants[i].run();
      times[i].push(performance.now() - t0);
    }
  }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
  const results = variants.map((v, i) => ({ name: v.name, medianMs: med(times[i]), samples: times[i] }));
  const ratioToFirst = variants.map((_, i) => med(times[i].map((t, r) => t / times[0][r])));
  return { results, ratioToFirst };
}

/** The machine, for every results section: CPU, cores, load (a shared box inflates timings), adapter. */
export function machineInfo(s: AdapterSummary): Record<string, unknown> {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown', cores: cpus.length, memGiB: Math.round(os.totalmem() / 2 ** 30),
    loadavg: os.loadavg().map((l) => Number(l.toFixed(2))), node: process.version, platform: `${os.platform()} ${os.release()}`,
    adapter: `${s.vendor} / ${s.architecture} / ${s.description || s.device}`, software: s.isSoftware,
    lpNumThreads: process.env.LP_NUM_THREADS ?? null,
  };
}
