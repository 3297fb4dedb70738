// `lpo demo`: for now the machine check of `lpo doctor`, with a note; the toy-world demo will take its place.
import { defineCommand, parseCommand } from './args.js';
import { doctor } from './doctor.js';

export const demoSpec = defineCommand({
  name: 'demo',
  summary: 'runs `lpo doctor` for now (the toy-world demo is coming)',
  options: {},
});

export async function demo(argv: string[]): Promise<number> {
  if (!parseCommand(demoSpec, argv)) return 0;
  console.log('note: `lpo demo` runs `lpo doctor` (adapter + verified matmul) until the toy-world demo lands.');
  return doctor([]);
}
