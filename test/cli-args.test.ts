// The CLI's one argument parser (src/cli/args.ts): typed values, defaults, ranges, path checks, generated help,
// and one-line UsageErrors. No GPU and no subprocess: the parser is called directly.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, expectTypeOf, it } from 'vitest';
import { defineCommand, helpText, parseCommand } from '../src/cli/args.js';
import { UsageError } from '../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'lpo-args-'));
const file = join(dir, 'w.safetensors');
writeFileSync(file, '');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const spec = defineCommand({
  name: 'train',
  summary: 'trains a thing',
  positionals: [{ name: 'data', required: true, path: 'dir', help: 'the data folder' }, { name: 'extra', help: 'an optional word' }],
  options: {
    steps: { type: 'int', min: 1, default: 20, help: 'steps' },
    lr: { type: 'number', min: 0, max: 1, help: 'learning rate' },
    init: { type: 'string', path: 'file', help: 'weights to start from' },
    out: { type: 'string', short: 'o', ext: ['.png'], path: 'parent', default: 'x.png', help: 'output' },
    mode: { type: 'string', choices: ['fast', 'exact'], default: 'fast', help: 'how' },
    only: { type: 'list', help: 'sections' },
    fp16: { type: 'boolean', help: 'half' },
    tensors: { type: 'boolean', negatable: true, help: 'list tensors' },
    name: { type: 'string', required: true, value: 'text', help: 'a name' },
  },
});

const parse = (...argv: string[]) => parseCommand(spec, argv, { write: () => undefined });
const usage = (...argv: string[]): string => {
  try {
    parse(...argv);
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    const msg = (e as Error).message;
    expect(msg).not.toContain('\n');
    return msg;
  }
  throw new Error(`no UsageError for ${argv.join(' ')}`);
};

describe('parseCommand', () => {
  it('fills defaults and converts values to their declared types', () => {
    const a = parse(dir, '--name', 'n')!;
    expect(a).toEqual({
      data: dir, extra: undefined, steps: 20, lr: undefined, init: undefined, out: 'x.png', mode: 'fast', only: undefined,
      fp16: false, tensors: undefined, name: 'n', debug: false,
    });
    const b = parse(dir, 'w', '--steps', '3', '--lr=0.5', '--init', file, '-o', join(dir, 'y.PNG'), '--mode', 'exact', '--only', 'a, b,', '--fp16', '--no-tensors', '--name=', '--debug')!;
    expect(b).toEqual({
      data: dir, extra: 'w', steps: 3, lr: 0.5, init: file, out: join(dir, 'y.PNG'), mode: 'exact', only: ['a', 'b'],
      fp16: true, tensors: false, name: '', debug: true,
    });
    expect(parse(dir, '--name', 'n', '--tensors')!.tensors).toBe(true);
    expect(parse(dir, '--name', 'n', '--lr=-0', '--', '--not-a-flag')!.extra).toBe('--not-a-flag');
  });

  it('types each value from its declaration', () => {
    const a = parse(dir, '--name', 'n')!;
    expectTypeOf(a.steps).toEqualTypeOf<number>();
    expectTypeOf(a.lr).toEqualTypeOf<number | undefined>();
    expectTypeOf(a.out).toEqualTypeOf<string>();
    expectTypeOf(a.init).toEqualTypeOf<string | undefined>();
    expectTypeOf(a.name).toEqualTypeOf<string>();
    expectTypeOf(a.only).toEqualTypeOf<string[] | undefined>();
    expectTypeOf(a.fp16).toEqualTypeOf<boolean>();
    expectTypeOf(a.tensors).toEqualTypeOf<boolean | undefined>();
    expectTypeOf(a.data).toEqualTypeOf<string>();
    expectTypeOf(a.extra).toEqualTypeOf<string | undefined>();
    expectTypeOf(a.debug).toEqualTypeOf<boolean>();
  });

  it.each([
    [['--name', 'n'], /^missing <data> \(the data folder\)$/],
    [[dir], /^--name <text> is required$/],
    [[dir, '--name', 'n', '--frobnicate'], /^unknown option '--frobnicate'$/],
    [[dir, '--name', 'n', '-z'], /^unknown option '-z'$/],
    [[dir, '--name'], /^--name needs a value$/],
    [[dir, '--name', 'n', '--steps', '--fp16'], /^--steps needs a value/],
    [[dir, '--name', 'n', '--fp16=yes'], /^--fp16 takes no value$/],
    [[dir, '--name', 'n', '--steps', 'many'], /^--steps needs an integer ≥ 1, got 'many'$/],
    [[dir, '--name', 'n', '--steps', '2.5'], /^--steps needs an integer ≥ 1, got '2.5'$/],
    [[dir, '--name', 'n', '--steps', '0'], /^--steps needs an integer ≥ 1, got '0'$/],
    [[dir, '--name', 'n', '--steps='], /^--steps needs an integer ≥ 1, got ''$/],
    [[dir, '--name', 'n', '--lr', '2'], /^--lr needs a number in \[0, 1\], got '2'$/],
    [[dir, '--name', 'n', '--lr', 'Infinity'], /^--lr needs a number in \[0, 1\]/],
    [[dir, '--name', 'n', '--mode', 'slow'], /^--mode: 'slow' is not one of fast, exact$/],
    [[dir, '--name', 'n', '--only', ','], /^--only needs a comma-separated list/],
    [[dir, '--name', 'n', '--out', join(dir, 'y.jpg')], /^--out must name a \.png file, got/],
    [[dir, '--name', 'n', '--out', join(dir, 'no/such/y.png')], /^--out: folder '.*no\/such' does not exist$/],
    [[dir, '--name', 'n', '--init', join(dir, 'nope')], /^--init: '.*nope' does not exist$/],
    [[dir, '--name', 'n', '--init', dir], /^--init: '.*' is a folder, not a file$/],
    [[file, '--name', 'n'], /^<data>: '.*w\.safetensors' is not a folder$/],
    [[dir, 'a', 'b', '--name', 'n'], /^unexpected argument 'b'/],
    [[dir, '--name', 'n', '--tensors', '--no-tensors'], /^--tensors and --no-tensors contradict each other$/],
  ])('%j → UsageError %s', (argv, pattern) => {
    expect(usage(...argv)).toMatch(pattern);
  });

  it('--help / -h print the generated help and return null, even with other (bad) flags', () => {
    let out = '';
    expect(parseCommand(spec, ['--help'], { write: (s: string) => (out += s) })).toBeNull();
    expect(out).toBe(`${helpText(spec)}\n`);
    expect(parseCommand(spec, ['--bogus', '-h'], { write: () => undefined })).toBeNull();
  });

  it('help lists the usage line, every flag with its value name, range, default, and the global flags', () => {
    const h = helpText(spec);
    expect(h.split('\n')[0]).toBe('usage: lpo train <data> [<extra>] --name <text> [options]');
    expect(h).toMatch(/^ {2}<data>\s+the data folder$/m);
    expect(h).toMatch(/^ {2}--steps <n>\s+steps \(integer ≥ 1; default 20\)$/m);
    expect(h).toMatch(/^ {2}--lr <n>\s+learning rate \(number in \[0, 1\]\)$/m);
    expect(h).toMatch(/^ {2}-o, --out <out>\s+output \(default x\.png\)$/m);
    expect(h).toMatch(/^ {2}--mode <mode>\s+how \(one of fast, exact; default fast\)$/m);
    expect(h).toMatch(/^ {2}--\[no-\]tensors\s+list tensors$/m);
    expect(h).toMatch(/^ {2}--name <text>\s+a name \(required\)$/m);
    expect(h).toMatch(/^ {2}--debug\s+/m);
    expect(h).toMatch(/^ {2}-h, --help\s+print this help$/m);
  });
});
