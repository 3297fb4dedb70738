// Runs the SIGKILL resume check ten times in a row (issue 13's acceptance): each time an uninterrupted reference
// run of test/sigkill-child.ts and a run killed inside a checkpoint write of a random step and at a random point,
// resumed, compared with that reference (a fresh reference per run: in a working tree that others edit, the code
// can change between runs). Prints one line per run and a summary; exits 1 on any miss.
//   npx vite-node --config vitest.config.ts scripts/sigkill-loop.ts [-- --runs 10 --seed 1]
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Generator } from '../src/tensor/random.js';
import { interruptedRun, maxAbsDiff, randomKills, readFinal, runChild } from '../test/sigkill-driver.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '10' }, seed: { type: 'string', default: String(Date.now() % 100_000) } } });
const work = fs.mkdtempSync(path.join(tmpdir(), 'lpo-sigkill-loop-'));
const g = new Generator(Number(values.seed));
const t0 = Date.now();
console.log(`seed ${values.seed}`);
let pass = 0;
const n = Number(values.runs);
for (let i = 1; i <= n; i++) {
  const s = Date.now();
  try {
    const refOut = path.join(work, `reference${i}`);
    const ref = await runChild(refOut, null);
    if (ref.lines[ref.lines.length - 1] !== 'DONE') throw new Error(`reference run failed: ${ref.stderr.slice(-2000)}`);
    const want = readFinal(refOut);
    const r = await interruptedRun(path.join(work, `run${i}`), randomKills(() => g.uniform(), ref.ms));
    const d = maxAbsDiff(r.final, want);
    const ok = d <= 1e-6;
    pass += ok ? 1 : 0;
    console.log(`run ${i}/${n}: ${ok ? 'PASS' : 'FAIL'} max |diff| ${d} — ${r.runs.join('; ')} (${((Date.now() - s) / 1000).toFixed(0)} s)`);
  } catch (e) {
    console.log(`run ${i}/${n}: FAIL ${(e as Error).message.split('\n')[0]}`);
  }
}
console.log(`${pass}/${n} runs resumed to the uninterrupted result (${((Date.now() - t0) / 60000).toFixed(1)} min)`);
fs.rmSync(work, { recursive: true, force: true });
process.exit(pass === n ? 0 : 1);
