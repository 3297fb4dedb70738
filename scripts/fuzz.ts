// `npm run fuzz`: ≥ 10,000 generated malformed inputs per reader (test/fuzz-targets.ts), each of which must be
// accepted or rejected with a FileFormatError naming the file, within the per-case limit. Prints the counts
// per reader. Options: --runs N (default 10000), --seed S, --only / --skip <reader substring>, --keep <folder> (keeps
// the work folder and any failing input there).
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { initGpu } from '../src/gpu/runtime.js';
import { formatCounts, fuzzReader, type FuzzCounts } from '../test/fuzz-harness.js';
import { FUZZ_TARGETS } from '../test/fuzz-targets.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '10000' }, seed: { type: 'string' }, only: { type: 'string' }, skip: { type: 'string' }, keep: { type: 'string' } } });
const runs = Number(values.runs);
const seed = values.seed === undefined ? Date.now() % 2 ** 31 : Number(values.seed);
const work = values.keep ?? mkdtempSync(join(tmpdir(), 'lpo-fuzz-'));
mkdirSync(work, { recursive: true });
await initGpu();
console.log(`fuzzing with seed ${seed}, ${runs} cases per reader (work folder ${work})`);
const results: FuzzCounts[] = [];
let failed = 0;
for (const t of FUZZ_TARGETS) {
  if (values.only && !t.name.toLowerCase().includes(values.only.toLowerCase())) continue;
  if (values.skip && t.name.toLowerCase().includes(values.skip.toLowerCase())) continue;
  try {
    const c = await fuzzReader(t, work, { numRuns: runs, seed, caseTimeoutMs: 10_000, onProgress: (p) => console.log(`  ${t.name}: ${p.runs} cases so far, ${p.accepted} accepted, ${p.rejected} rejected (typed)`) });
    results.push(c);
    console.log(`${t.name}: ${c.runs} cases, ${c.accepted} accepted, ${c.rejected} rejected with a typed error, worst ${c.worstMs.toFixed(0)} ms, ${c.seconds.toFixed(1)} s`);
  } catch (e) {
    failed++;
    console.log(`${t.name}: FAILED: ${(e as Error).message}`);
  }
}
console.log(`\n${formatCounts(results)}`);
if (!values.keep && !failed) rmSync(work, { recursive: true, force: true });
process.exit(failed ? 1 : 0);
