// Wall time by phase for long runs (the demo: pair generation, LRM training, LPO, evaluation), written as JSON
// that `npm run bench` collects (bench/demo.bench.ts reads settings.bench.demoPhases). A phase ends with a GPU
// sync when `sync` is given, so queued work is charged to the phase that issued it.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface PhaseRecord { name: string; seconds: number }
export interface PhaseReport { phases: (PhaseRecord & { share: number })[]; totalSeconds: number; date: string; meta: Record<string, unknown> }

export class PhaseTimer {
  private readonly records: PhaseRecord[] = [];

  constructor(private readonly sync?: () => Promise<void>) {}

  /** Runs `fn` as phase `name` (a repeated name adds up) and returns its result. */
  async run<T>(name: string, fn: () => T | Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      const r = await fn();
      await this.sync?.();
      return r;
    } finally {
      this.add(name, (performance.now() - t0) / 1000);
    }
  }

  /** Adds `seconds` to phase `name` (for phases timed by the caller, e.g. between two milestones of one loop). */
  add(name: string, seconds: number): void {
    const prior = this.records.find((p) => p.name === name);
    if (prior) prior.seconds += seconds;
    else this.records.push({ name, seconds });
  }

  /** The phases in first-run order with their share of the total. */
  report(meta: Record<string, unknown> = {}): PhaseReport {
    const total = this.records.reduce((s, p) => s + p.seconds, 0);
    return {
      phases: this.records.map((p) => ({ ...p, share: total > 0 ? p.seconds / total : 0 })),
      totalSeconds: total, date: new Date().toISOString(), meta,
    };
  }

  /** Writes report(meta) to `file` (folders created). */
  write(file: string, meta: Record<string, unknown> = {}): PhaseReport {
    const r = this.report(meta);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${JSON.stringify(r, null, 2)}\n`);
    return r;
  }
}
