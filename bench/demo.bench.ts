// The demo's phases (pair generation, LRM training, LPO, evaluation) and their share of its wall time: the demo
// times each phase with PhaseTimer (src/perf/phases.ts) and writes the report; this suite collects it into the
// results file (section `demo`). Run the demo first; the report's path is settings.bench.demoPhases
// (LPO_BENCH_DEMO_PHASES, default bench/results/demo-phases.json). Without a report the suite says so and skips.
import { existsSync, readFileSync } from 'node:fs';
import { bench, describe } from 'vitest';
import { machineInfo, printTable, writeSection } from './common.js';
import { initGpu } from '../src/gpu/runtime.js';
import { settings } from '../src/settings.js';
import type { PhaseReport } from '../src/perf/phases.js';

export async function runDemoSuite(): Promise<void> {
  const file = settings.bench.demoPhases;
  if (!existsSync(file)) {
    console.log(`demo phases: no report at ${file} (the demo writes it; set LPO_BENCH_DEMO_PHASES to another path)`);
    return;
  }
  const r = JSON.parse(readFileSync(file, 'utf8')) as PhaseReport;
  const g = await initGpu();
  printTable(['phase', 'seconds', 'share'], r.phases.map((p) => [p.name, p.seconds.toFixed(1), `${(100 * p.share).toFixed(1)}%`]));
  console.log(`total ${r.totalSeconds.toFixed(1)} s (demo run ${r.date})`);
  console.log(`wrote ${writeSection(g.summary, 'demo', { collected: new Date().toISOString(), machine: machineInfo(g.summary), source: file, ...r })}`);
}

describe('demo phases', () => {
  bench('the demo phase report (table above)', async () => {
    await runDemoSuite();
  }, { iterations: 1, warmupIterations: 0, time: 0, warmupTime: 0 });
});
