// Shared test helpers: the GPU, float64 comparisons and random inputs.
import { spawn } from 'node:child_process';
import { initGpu, type Gpu } from '../src/gpu/runtime.js';
import { Generator } from '../src/tensor/random.js';

export async function setupGpu(): Promise<Gpu> {
  return initGpu();
}

/** ||a - b||₂ / ||b||₂ in float64 (b is the reference). */
export function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`relL2: length ${a.length} vs ${b.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  if (!Number.isFinite(num)) return Infinity;
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** Random non-zero values in ±[lo, hi] (never zeros, so a missed write or a dropped term shows). */
export function randNonZero(gen: Generator, n: number, lo = 0.1, hi = 1): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = (gen.uniform() < 0.5 ? -1 : 1) * (lo + (hi - lo) * gen.uniform());
  return out;
}

export function randn64(gen: Generator, n: number, std = 1): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = std * gen.normal();
  return out;
}

/** Rounds float64 values to float32 (what the GPU actually receives). */
export function f32round(a: ArrayLike<number>): Float64Array {
  return Float64Array.from(Float32Array.from(a));
}

export interface NodeRun { code: number | null; stdout: string; stderr: string }

/**
 * Runs `node ...args` without blocking the event loop. spawnSync would: vitest's worker RPC gives up
 * after 60 s of a blocked loop, and with a cold lavapipe shader cache a CLI run can take that long.
 */
export function runNode(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<NodeRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 600_000);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}
