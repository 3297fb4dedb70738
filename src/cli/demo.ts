// `lpo demo` (`npm run demo`): the toy world's whole method (src/toy/demo.ts) with progress bars, the summary table
// on stdout and out/report.html. `lpo doctor` checks the machine.
import { initGpu } from '../gpu/runtime.js';
import { defineCommand, parseCommand } from './args.js';
import { Progress } from './progress.js';
import { runToyDemo, type DemoPhase } from '../toy/demo.js';
import { parseMpcfStrategy } from '../lrm/mpcf.js';
import { formatDemoSummary, writeDemoReport } from '../toy/report.js';

export const demoSpec = defineCommand({
  name: 'demo',
  summary: 'the toy world end to end: pairs → MPCF → LRM → LPO → evaluation, report in out/report.html',
  details: 'Writes <out>/report.html, <out>/samples/<model>/*.png with <out>/samples/index.json, <out>/results.json, and the pairs, LRM and LoRA it trained. About 10 minutes on 2 CPU cores (lavapipe).',
  options: {
    out: { type: 'string', short: 'o', default: 'out', value: 'folder', help: 'output folder' },
    base: { type: 'string', path: 'dir', value: 'diffusers folder', help: 'the toy base model (default: assets/toy/base)' },
    minutes: { type: 'number', min: 0.1, default: 10, help: 'budget of the run on the 2-core machine; scales the LRM and LPO training' },
    prompts: { type: 'int', min: 1, default: 16, help: 'held-out prompts evaluated' },
    seeds: { type: 'int', min: 1, default: 6, help: 'seeds per prompt' },
    seed: { type: 'int', min: 0, default: 0, help: 'seed of every draw' },
    mpcf: { type: 'string', choices: ['none', '1', '2', '3'], default: 'none', help: "MPCF strategy of the LRM's training pairs (the report lists what each keeps)" },
    smoke: { type: 'boolean', help: 'a few of everything: checks the mechanics in a minute (the numbers mean nothing)' },
  },
});

export async function demo(argv: string[]): Promise<number> {
  const a = parseCommand(demoSpec, argv);
  if (!a) return 0;
  const err = process.stderr;
  const g = await initGpu();
  err.write(`adapter: ${g.summary.description}${g.summary.isSoftware ? ' (software)' : ''}\n`);
  const t0 = performance.now();
  const stamp = () => `[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s]`;
  let bar: Progress | null = null;
  let barPhase: DemoPhase | null = null;
  const result = await runToyDemo({
    out: a.out, base: a.base, minutes: a.minutes, prompts: a.prompts, seeds: a.seeds, seed: a.seed, smoke: a.smoke, mpcf: parseMpcfStrategy(a.mpcf),
    log: (line) => (bar ? bar.log(`${stamp()} ${line}`) : err.write(`${stamp()} ${line}\n`)),
    onProgress: (phase, done, total, fields) => {
      if (phase !== barPhase || !bar) {
        bar?.done();
        bar = new Progress({ total, label: phase, stream: err });
        barPhase = phase;
      }
      bar.update(done, fields);
      if (done >= total) bar = null;
    },
  });
  (bar as Progress | null)?.done();
  const file = writeDemoReport(result);
  console.log(formatDemoSummary(result));
  console.log(`\nreport: ${file}\nsamples: ${result.out}/samples/index.json`);
  return 0;
}
