// Drives test/sigkill-child.ts: runs it, watches its lines, and kills it with SIGKILL at a chosen point — inside
// a checkpoint write (between the durable temporary folder and the rename) or at a random delay — then runs it
// again until it finishes. Used by test/sigkill.test.ts (a few kills) and scripts/sigkill-loop.ts (ten runs).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointStore, verifyCheckpoint } from '../src/io/checkpoint/index.js';

const ROOT = path.resolve(__dirname, '..');
const VITE_NODE = path.join(ROOT, 'node_modules/vite-node/vite-node.mjs');

/** When to kill: at the `COMMIT` line of a checkpoint (then it sleeps `commitDelayMs` there), or `afterMs` after the run's first line. */
export type KillPoint = { commitStep: number } | { afterMs: number };

export interface ChildRun { lines: string[]; killed: boolean; code: number | null; signal: NodeJS.Signals | null; stderr: string; /** From the first line to the exit. */ ms: number }

export function runChild(out: string, kill: KillPoint | null, commitDelayMs = 0, extraArgs: readonly string[] = [], timeoutMs = 1_800_000): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const args = [VITE_NODE, '--config', path.join(ROOT, 'vitest.config.ts'), path.join(ROOT, 'test/sigkill-child.ts'), '--', '--out', out, '--commit-delay-ms', String(commitDelayMs), ...extraArgs];
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: string[] = [];
    let stderr = '';
    let killed = false;
    let buf = '';
    const doKill = () => { if (!killed) { killed = true; child.kill('SIGKILL'); } };
    const guard = setTimeout(doKill, timeoutMs);
    let timer: NodeJS.Timeout | null = null;
    let first = 0;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        lines.push(line);
        if (lines.length === 1) first = Date.now();
        if (!kill || killed) continue;
        if ('commitStep' in kill && line.startsWith(`COMMIT .tmp-step-${String(kill.commitStep).padStart(8, '0')}-`)) doKill();
        if ('afterMs' in kill && lines.length === 1) timer = setTimeout(doKill, kill.afterMs);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      if (timer) clearTimeout(timer);
      resolve({ lines, killed, code, signal, stderr, ms: first ? Date.now() - first : 0 });
    });
  });
}

export interface InterruptedResult {
  /** What each run did: 'killed in the commit of step 3', 'killed after 1200 ms (last: ITER 4)', 'finished'. */
  runs: string[];
  final: Float32Array;
}

/**
 * A kill plan: inside the checkpoint write of a random step (1–5 of the run's 6), then at a random point of the
 * resumed run, scaled to the iterations it has left (`refMs`: an uninterrupted run's time from its first line).
 */
export function randomKills(next: () => number, refMs: number): KillPoint[] {
  const commitStep = 1 + Math.floor(next() * 5);
  const left = (6 - (commitStep - 1)) / 6;
  return [{ commitStep }, { afterMs: Math.round((0.1 + 0.5 * next()) * refMs * left) }];
}

/** Runs the child with each kill in turn (each resuming from the last), then once more to the end. */
export async function interruptedRun(out: string, kills: readonly KillPoint[]): Promise<InterruptedResult> {
  fs.rmSync(out, { recursive: true, force: true });
  const runs: string[] = [];
  for (const k of kills) {
    const r = await runChild(out, k, 'commitStep' in k ? 5_000 : 0);
    if (!r.killed && 'afterMs' in k && r.code === 0) {
      // A slow machine can make a random kill come after the end; the run still resumed correctly, say so.
      runs.push(`finished before the kill at ${k.afterMs} ms (${r.lines[0]})`);
      continue;
    }
    if (!r.killed) throw new Error(`the run meant to be killed (${JSON.stringify(k)}) ended with code ${r.code}: ${r.lines.join(' | ')}\n${r.stderr.slice(-2000)}`);
    const last = r.lines[r.lines.length - 1] ?? '(no output)';
    runs.push('commitStep' in k ? `killed inside the checkpoint write of step ${k.commitStep} (${r.lines[0]})` : `killed after ${k.afterMs} ms (${r.lines[0]}; last line: ${last})`);
    // Whatever was on disk when the process died: every published checkpoint verifies.
    const root = path.join(out, 'checkpoints');
    if (fs.existsSync(root)) for (const c of new CheckpointStore(root).list()) verifyCheckpoint(c.dir);
  }
  const done = await runChild(out, null);
  if (done.code !== 0 || done.lines[done.lines.length - 1] !== 'DONE') throw new Error(`the final run failed (code ${done.code}, signal ${done.signal}): ${done.lines.join(' | ')}\n${done.stderr.slice(-3000)}`);
  runs.push(`finished (${done.lines[0]})`);
  return { runs, final: readFinal(out) };
}

export function readFinal(out: string): Float32Array {
  const b = fs.readFileSync(path.join(out, 'final.bin'));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return Number.isNaN(m) ? Infinity : m;
}
