// `lpo verify-reference <folder>`: checks our components against a golden reference folder, driven by its
// manifest.json (sections, files with sha256, tensors, tolerance guidance). Prints one table row per result.
import { SECTION_RUNNERS } from '../verify/registry.js';
import { formatReport, verifyReference } from '../verify/run.js';
import { defineCommand, parseCommand } from './args.js';

export const verifySpec = defineCommand({
  name: 'verify-reference',
  summary: 'checks every component against a golden reference folder (its manifest.json)',
  details: `Runs every section of <folder>/manifest.json that lpo supports and compares each result with the
reference under the manifest's tolerance guidance. Exit 0 if everything run passes, 1 otherwise.`,
  positionals: [{ name: 'folder', required: true, path: 'dir', help: 'the reference folder (holds manifest.json)' }],
  options: {
    only: { type: 'list', value: 'section,…', help: 'run just these sections' },
    gpuCeiling: { type: 'boolean', help: 'use the looser bound the guidance allows for GPUs with fast math, where it gives one' },
    quiet: { type: 'boolean', short: 'q', help: 'no progress lines on stderr' },
  },
});

export async function verifyCommand(argv: string[]): Promise<number> {
  const a = parseCommand(verifySpec, argv);
  if (!a) return 0;
  const log = a.quiet ? undefined : (m: string) => process.stderr.write(`${m}\n`);
  const rep = await verifyReference(a.folder, SECTION_RUNNERS, { only: a.only, gpuCeiling: a.gpuCeiling, log, rethrow: a.debug });
  for (const n of rep.notes) log?.(`note: ${n}`);
  console.log(formatReport(rep));
  return rep.failed > 0 ? 1 : 0;
}
