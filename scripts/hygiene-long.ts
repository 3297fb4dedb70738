// The 1,000-iteration resource-hygiene loops of issue 13 (the test suite runs short ones): LPO and LRM on tiny
// models; prints the live buffer count and bytes of the pool and the heap after GC, and exits 1 when the pool
// does not come back to its post-warm-up state or the heap grows by more than 2 MiB.
//   npx vite-node --config vitest.config.ts scripts/hygiene-long.ts [-- --iterations 1000]
import { parseArgs } from 'node:util';
import { initGpu } from '../src/gpu/runtime.js';
import { formatReport, lpoLoop, lrmLoop, type LoopReport } from '../test/hygiene-loops.js';

const { values } = parseArgs({ options: { iterations: { type: 'string', default: '1000' }, only: { type: 'string' } } });
const n = Number(values.iterations);
await initGpu();
let ok = true;
for (const [name, loop] of [['lpo', lpoLoop], ['lrm', lrmLoop]] as const) {
  if (values.only && values.only !== name) continue;
  const r: LoopReport = await loop(n, 10, 25);
  const flat = r.last.buffers === r.warm.buffers && r.last.bytes === r.warm.bytes && r.maxBuffers === r.warm.buffers && r.maxBytes === r.warm.bytes && r.heapGrowth < 2 * 2 ** 20;
  ok &&= flat;
  console.log(`${flat ? 'FLAT' : 'NOT FLAT'} ${formatReport(r)}`);
}
process.exit(ok ? 0 : 1);
