#!/usr/bin/env node
// The `lpo` command line. Subcommands live in their own files; this dispatches and prints errors.
import { LpoError } from '../errors.js';

type Command = (args: string[]) => Promise<number | void>;
const commands: Record<string, () => Promise<Command>> = {
  demo: async () => (await import('./demo.js')).demo,
  'verify-reference': async () => (await import('./verify.js')).verifyCommand,
  generate: async () => (await import('./generate.js')).generate,
  inspect: async () => (await import('./inspect.js')).inspect,
};

async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
  const args = argv.filter((a) => a !== '--debug');
  const name = args[0];
  if (!name || name === '--help' || name === 'help' || !commands[name]) {
    console.log(`usage: lpo <command> [options] [--debug]\ncommands: ${Object.keys(commands).join(', ')}`);
    return name && name !== '--help' && name !== 'help' ? 2 : 0;
  }
  try {
    const code = await (await commands[name]())(args.slice(1));
    return typeof code === 'number' ? code : 0;
  } catch (e) {
    if (debug) console.error(e);
    else if (e instanceof LpoError) console.error(`lpo ${name}: ${e.message}`);
    else console.error(`lpo ${name}: ${(e as Error).message ?? e} (rerun with --debug for the stack trace)`);
    return 1;
  }
}

main(process.argv.slice(2)).then((code) => process.exit(code));
