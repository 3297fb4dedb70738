// `lpo verify-reference <folder>`: checks our components against a golden reference folder, driven by its
// manifest.json (sections, files with sha256, tensors, tolerance guidance). Prints one table row per result.
import { LpoError } from '../errors.js';
import { SECTION_RUNNERS } from '../verify/registry.js';
import { formatReport, verifyReference } from '../verify/run.js';

export class UsageError extends LpoError {}

const USAGE = `usage: lpo verify-reference <folder> [--only sec1,sec2] [--gpu-ceiling] [--quiet]
  Runs every section of <folder>/manifest.json that lpo supports and compares each result with the
  reference under the manifest's tolerance guidance. Exit 0 if everything run passes, 1 otherwise.
  --only         run just these sections
  --gpu-ceiling  use the looser bound the guidance allows for GPUs with fast math, where it gives one
  --quiet        no progress lines on stderr`;

export async function verifyCommand(args: string[]): Promise<number> {
  let folder: string | undefined;
  let only: string[] | undefined;
  let gpuCeiling = false;
  let quiet = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--help' || a === '-h') {
      console.log(USAGE);
      return 0;
    } else if (a === '--only') {
      const v = args[++i];
      if (!v) throw new UsageError('--only needs a comma-separated list of sections');
      only = v.split(',').map((s) => s.trim()).filter(Boolean);
    } else if (a.startsWith('--only=')) only = a.slice(7).split(',').filter(Boolean);
    else if (a === '--gpu-ceiling') gpuCeiling = true;
    else if (a === '--quiet' || a === '-q') quiet = true;
    else if (a.startsWith('-')) throw new UsageError(`unknown option ${a} (see lpo verify-reference --help)`);
    else if (folder === undefined) folder = a;
    else throw new UsageError(`one folder expected, got '${folder}' and '${a}'`);
  }
  if (!folder) throw new UsageError('missing the reference folder (usage: lpo verify-reference <folder>)');
  const log = quiet ? undefined : (m: string) => process.stderr.write(`${m}\n`);
  const rep = await verifyReference(folder, SECTION_RUNNERS, { only, gpuCeiling, log, rethrow: process.argv.includes('--debug') });
  for (const n of rep.notes) log?.(`note: ${n}`);
  console.log(formatReport(rep));
  return rep.failed > 0 ? 1 : 0;
}
