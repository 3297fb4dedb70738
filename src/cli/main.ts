#!/usr/bin/env node
// The `lpo` command line: a table of subcommands (each in its own file, loaded on demand), error printing and
// exit codes: 0 success, 1 failure (a failed check, a bad file, a device fault), 2 usage error (bad command line).
import { LpoError, UsageError } from '../errors.js';

type Command = (argv: string[]) => Promise<number | void>;
interface Entry { summary: string; load: () => Promise<Command> }

// One line per subcommand: `name: { summary, load }`. Each parses its argv with ./args.ts.
const commands: Record<string, Entry> = {
  doctor: { summary: 'checks this machine: adapter, a matmul verified against float64, its speed', load: async () => (await import('./doctor.js')).doctor },
  demo: { summary: 'the toy world end to end (pairs → LRM → LPO → evaluation), report in out/report.html', load: async () => (await import('./demo.js')).demo },
  'verify-reference': { summary: 'checks every component against a golden reference folder', load: async () => (await import('./verify.js')).verifyCommand },
  generate: { summary: 'text-to-image from a diffusers Stable Diffusion folder, written as PNG', load: async () => (await import('./generate.js')).generate },
  inspect: { summary: 'lists the tensors of a safetensors file or the components of a model folder', load: async () => (await import('./inspect.js')).inspect },
  'train-lrm': { summary: 'trains a latent reward model (LRM) on preference pairs', load: async () => (await import('./train_lrm.js')).trainLrmCommand },
  'eval-lrm': { summary: 'accuracy of a latent reward model on preference pairs, overall and per timestep', load: async () => (await import('./eval_lrm.js')).evalLrmCommand },
  'train-lpo': { summary: 'tunes a LoRA with latent step-level preference optimisation (LPO) or step-wise GRPO', load: async () => (await import('./train_lpo.js')).trainLpoCommand },
  sample: { summary: "PNG grid of a model's images per prompt and seed; with --lora, base and tuned side by side", load: async () => (await import('./sample.js')).sampleCommand },
  score: { summary: 'scores images or latents for a prompt with a latent reward model', load: async () => (await import('./score.js')).scoreCommand },
};

function usage(): string {
  const w = Math.max(...Object.keys(commands).map((n) => n.length)) + 2;
  return [
    'usage: lpo <command> [options]   (lpo <command> --help for its options)',
    '',
    'commands:',
    ...Object.entries(commands).map(([n, c]) => `  ${n.padEnd(w)}${c.summary}`),
    '',
    'exit codes: 0 ok, 1 failure, 2 usage error. --debug prints the stack trace of an error.',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
  const at = argv.findIndex((a) => a !== '--debug');
  let name: string | undefined = argv[at];
  let rest = at < 0 ? [] : [...argv.slice(0, at), ...argv.slice(at + 1)]; // --debug stays for the subcommand's parser
  if (name === 'help' && rest.some((a) => a !== '--debug')) [name, rest] = [rest.find((a) => a !== '--debug'), ['--help']];
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name === undefined ? 2 : 0;
  }
  const entry = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!entry) {
    console.error(`lpo: unknown command '${name}' (commands: ${Object.keys(commands).join(', ')}; see lpo --help)`);
    return 2;
  }
  try {
    const code = await (await entry.load())(rest);
    return typeof code === 'number' ? code : 0;
  } catch (e) {
    if (debug) console.error(e);
    else if (e instanceof UsageError) console.error(`lpo ${name}: ${e.message} (see lpo ${name} --help)`);
    else if (e instanceof LpoError) console.error(`lpo ${name}: ${e.message}`);
    else console.error(`lpo ${name}: ${(e as Error)?.message ?? e} (rerun with --debug for the stack trace)`);
    return e instanceof UsageError ? 2 : 1;
  }
}

main(process.argv.slice(2)).then((code) => process.exit(code));
