// Host overhead of the runtime (`npx vitest bench --run bench/dispatch.bench.ts`): µs per dispatch and per
// submit on the current adapter, with kernels too small for GPU time to matter (one workgroup each).
//
//   record    gpu().dispatch of a cached pipeline and bind group (the steady state of a training loop),
//             host time only: nothing is submitted inside the timed loop (submits every 128 are).
//   op        a whole op: fill([1]) = Tensor.empty + dispatch + dispose (pool hit), host time only.
//   submit    one dispatch then flush(): a command encoder, a pass and a queue submission each.
//   round trip  one dispatch then sync(): submit + onSubmittedWorkDone.
// Each row: tinybench median over `samples` runs of N repetitions, divided by N.
import { bench, describe } from 'vitest';
import { Bench } from 'tinybench';
import { printTable, writeSection } from './common.js';
import { initGpu, gpu } from '../src/gpu/runtime.js';
import { Tensor } from '../src/tensor/tensor.js';
import { fill } from '../src/tensor/ops/elementwise.js';

async function median(name: string, n: number, run: () => void | Promise<void>, after: () => Promise<void>): Promise<number> {
  const b = new Bench({ iterations: 15, warmupIterations: 3, time: 0, warmupTime: 0, throws: true });
  b.add(name, async () => {
    for (let i = 0; i < n; i++) await run();
  }, { afterEach: after });
  await b.run();
  return ((b.tasks[0].result as unknown as { latency: { p50: number } }).latency.p50 * 1000) / n;
}

async function runSuite(): Promise<void> {
  await initGpu();
  const g = gpu();
  const t = fill([1], 0); // the target of the tiny dispatches; its pipeline and bind group get cached
  const dispatchOnce = () => {
    // The same kernel and params the fill op uses: one workgroup, one element.
    fill([1], 1).dispose();
  };
  dispatchOnce();
  await g.sync();
  const sync = () => g.sync();
  const noop = async () => {};
  const rows: [string, number][] = [];
  rows.push(['op: fill([1]) recorded (Tensor.empty + dispatch + dispose)', await median('op', 500, dispatchOnce, sync)]);
  // Raw dispatch: reuse one pre-built dispatch description.
  const spec = captureFillDispatch(t);
  rows.push(['record: gpu().dispatch (cached pipeline + bind group)', await median('record', 500, () => g.dispatch(spec), sync)]);
  rows.push(['submit: dispatch + flush', await median('submit', 100, () => { g.dispatch(spec); g.flush(); }, sync)]);
  rows.push(['round trip: dispatch + sync', await median('sync', 30, async () => { g.dispatch(spec); await g.sync(); }, noop)]);
  t.dispose();
  printTable(['what', 'µs each'], rows.map(([w, us]) => [w, us.toFixed(1)]));
  const file = writeSection(g.summary, 'dispatch', { date: new Date().toISOString(), adapter: g.summary.description, usPer: Object.fromEntries(rows) });
  console.log(`wrote ${file}`);
}

/** The Dispatch the fill op issues for `t`, captured once by wrapping gpu().dispatch. */
function captureFillDispatch(t: Tensor): Parameters<ReturnType<typeof gpu>['dispatch']>[0] {
  const g = gpu();
  const orig = g.dispatch.bind(g);
  let captured: Parameters<typeof orig>[0] | undefined;
  g.dispatch = (d) => { captured = { ...d, buffers: [t.buffer] }; orig(captured); };
  try {
    fill([1], 2).dispose();
  } finally {
    g.dispatch = orig;
  }
  return captured!;
}

describe('dispatch overhead', () => {
  bench('dispatch suite (table above)', async () => {
    await runSuite();
  }, { iterations: 1, warmupIterations: 0, time: 0, warmupTime: 0 });
});
