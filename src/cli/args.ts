// The one argument parser of the `lpo` command: each subcommand declares its options (type, default, range,
// path check, help line) once, and gets typed values, a generated `--help`, and a UsageError with a one-line
// message for anything it cannot run. Tokenising is node:util's parseArgs; this adds the declarations,
// conversion and checks that parseArgs leaves to the caller.
import { statSync } from 'node:fs';
import { dirname, extname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { LpoError, UsageError } from '../errors.js';

/** What must be true of a path argument before the command runs: an existing file, folder, either, or (for outputs) an existing parent folder. */
export type PathCheck = 'file' | 'dir' | 'exists' | 'parent';

interface Common {
  /** One line for --help. */
  help: string;
  /** One-letter alias (`-o`). */
  short?: string;
  /** Keys of options that must be given too when this one is (`bestOf: { requires: ['lrm'] }`). */
  requires?: readonly string[];
}
/** A string; with `path` checked on disk, with `ext` restricted to endings (case-insensitive), with `choices` to a set. */
export interface StringOption extends Common {
  type: 'string';
  default?: string;
  required?: boolean;
  choices?: readonly string[];
  path?: PathCheck;
  ext?: readonly string[];
  /** Name of the value in --help (`--model <folder>`). */
  value?: string;
}
/** `int` or `number`, checked against the inclusive range [min, max] (and, with `atMost`, against another option's value). */
export interface NumberOption extends Common {
  type: 'int' | 'number';
  default?: number;
  required?: boolean;
  min?: number;
  max?: number;
  /** The key of a number option this one may not exceed (`microBatch: { atMost: 'batch' }`). */
  atMost?: string;
  value?: string;
}
/** A switch: false unless given. `negatable` adds `--no-<flag>` and leaves the value undefined when neither is given. */
export interface BooleanOption extends Common {
  type: 'boolean';
  negatable?: boolean;
}
/** A comma-separated list (`--only a,b`). */
export interface ListOption extends Common {
  type: 'list';
  default?: readonly string[];
  required?: boolean;
  choices?: readonly string[];
  value?: string;
}
export type OptionSpec = StringOption | NumberOption | BooleanOption | ListOption;

export interface PositionalSpec {
  name: string;
  help: string;
  required?: boolean;
  path?: PathCheck;
}

export interface CommandSpec {
  /** The subcommand as typed (`generate`). */
  name: string;
  /** One line: what the command does (shown in `lpo --help` too). */
  summary: string;
  /** More lines for --help (exit codes, what the output is). */
  details?: string;
  positionals?: readonly PositionalSpec[];
  /** Keys are camelCase; the flag is the kebab-case form (`gpuCeiling` → `--gpu-ceiling`). */
  options: Readonly<Record<string, OptionSpec>>;
  /**
   * Checks across options that `min`/`max`/`atMost`/`requires` cannot say; each returns the problem (one line)
   * or null. They run after parsing, before the command does any work.
   */
  checks?: readonly ((args: Readonly<Record<string, unknown>>) => string | null)[];
}

type OptionValue<O> = O extends { type: 'boolean'; negatable: true } ? boolean | undefined
  : O extends { type: 'boolean' } ? boolean
  : O extends { type: 'int' | 'number' } ? (O extends { default: number } | { required: true } ? number : number | undefined)
  : O extends { type: 'list' } ? (O extends { default: readonly string[] } | { required: true } ? string[] : string[] | undefined)
  : O extends { default: string } | { required: true } ? string : string | undefined;

type PositionalValues<P> = P extends readonly PositionalSpec[]
  ? { [E in P[number] as E['name']]: E extends { required: true } ? string : string | undefined }
  : unknown;

/** The parsed command line of a spec: one typed field per option and per positional, plus the global `debug`. */
export type Args<S extends CommandSpec> = { [K in keyof S['options']]: OptionValue<S['options'][K]> } & PositionalValues<S['positionals']> & {
  debug: boolean;
};

/** Declares a subcommand (an identity function that keeps the literal types `Args<S>` needs). */
export function defineCommand<const S extends CommandSpec>(spec: S): S {
  return spec;
}

const flagOf = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/**
 * Parses `argv` (the words after the subcommand) against `spec`. Prints the help to `out` and returns null for
 * `-h`/`--help`; throws UsageError naming the flag for an unknown flag, a missing or bad value, a failed path check.
 */
export function parseCommand<const S extends CommandSpec>(spec: S, argv: readonly string[], out: { write(s: string): unknown } = process.stdout): Args<S> | null {
  const end = argv.indexOf('--');
  const flags = end < 0 ? argv : argv.slice(0, end);
  if (flags.includes('--help') || flags.includes('-h')) {
    out.write(`${helpText(spec)}\n`);
    return null;
  }
  const config: Record<string, { type: 'string' | 'boolean'; short?: string }> = { debug: { type: 'boolean' } };
  for (const [key, o] of Object.entries(spec.options)) {
    const flag = flagOf(key);
    config[flag] = { type: o.type === 'boolean' ? 'boolean' : 'string', ...(o.short ? { short: o.short } : {}) };
    if (o.type === 'boolean' && o.negatable) config[`no-${flag}`] = { type: 'boolean' };
  }
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...argv], options: config, strict: true, allowPositionals: true }) as typeof parsed;
  } catch (e) {
    throw new UsageError(tokenizerMessage(e as Error & { code?: string }));
  }
  const v = parsed.values;
  const args: Record<string, unknown> = { debug: v.debug === true };
  for (const [key, o] of Object.entries(spec.options)) {
    const flag = flagOf(key);
    const raw = v[flag];
    if (o.type === 'boolean') {
      if (o.negatable && v[`no-${flag}`] && raw) throw new UsageError(`--${flag} and --no-${flag} contradict each other`);
      args[key] = raw === true ? true : o.negatable ? (v[`no-${flag}`] ? false : undefined) : false;
      continue;
    }
    if (raw === undefined) {
      if (o.required) throw new UsageError(`--${flag} ${valueName(key, o)} is required`);
      args[key] = o.type === 'list' && o.default ? [...o.default] : o.default;
      continue;
    }
    args[key] = convert(`--${flag}`, o, raw as string);
  }
  const specs = spec.positionals ?? [];
  const pos = parsed.positionals;
  if (pos.length > specs.length) {
    const extra = pos[specs.length];
    throw new UsageError(specs.length ? `unexpected argument '${extra}' (one ${specs.map((p) => `<${p.name}>`).join(' ')} expected)` : `unexpected argument '${extra}'`);
  }
  specs.forEach((p, i) => {
    const raw = pos[i];
    if (raw === undefined && p.required) throw new UsageError(`missing <${p.name}> (${p.help})`);
    if (raw !== undefined && p.path) checkPath(`<${p.name}>`, raw, p.path);
    args[p.name] = raw;
  });
  checkCombinations(spec, args, v);
  return args as Args<S>;
}

/** `requires`, `atMost` and the spec's `checks`, on the parsed values (`given`: what the command line set). */
function checkCombinations(spec: CommandSpec, args: Record<string, unknown>, given: Record<string, unknown>): void {
  for (const [key, o] of Object.entries(spec.options)) {
    const flag = flagOf(key);
    const set = o.type === 'boolean' ? args[key] === true : given[flag] !== undefined;
    for (const other of o.requires ?? []) {
      if (set && args[other] === undefined) throw new UsageError(`--${flag} needs --${flagOf(other)}`);
    }
    if (o.type !== 'boolean' && o.type !== 'list' && o.type !== 'string' && o.atMost !== undefined) {
      const x = args[key] as number | undefined;
      const cap = args[o.atMost] as number | undefined;
      if (x !== undefined && cap !== undefined && x > cap) throw new UsageError(`--${flag} ${x} exceeds --${flagOf(o.atMost)} ${cap}`);
    }
  }
  for (const check of spec.checks ?? []) {
    let problem: string | null;
    try {
      problem = check(args);
    } catch (e) {
      // A check may reuse a library validator (an ArgumentError): on the command line that is a usage error.
      if (e instanceof LpoError && !(e instanceof UsageError)) throw new UsageError(e.message);
      throw e;
    }
    if (problem) throw new UsageError(problem);
  }
}

function valueName(key: string, o: Exclude<OptionSpec, BooleanOption>): string {
  return `<${o.value ?? (o.type === 'int' || o.type === 'number' ? 'n' : o.type === 'list' ? 'a,b,…' : key.toLowerCase())}>`;
}

function convert(flag: string, o: Exclude<OptionSpec, BooleanOption>, raw: string): unknown {
  if (o.type === 'int' || o.type === 'number') {
    const x = raw.trim() === '' ? NaN : Number(raw);
    const kind = o.type === 'int' ? 'an integer' : 'a number';
    if (!Number.isFinite(x) || (o.type === 'int' && !Number.isInteger(x)) || (o.min !== undefined && x < o.min) || (o.max !== undefined && x > o.max)) {
      throw new UsageError(`${flag} needs ${kind}${rangeText(o)}, got '${raw}'`);
    }
    return x;
  }
  if (o.type === 'list') {
    const items = raw.split(',').map((s) => s.trim()).filter(Boolean);
    if (items.length === 0) throw new UsageError(`${flag} needs a comma-separated list, got '${raw}'`);
    for (const it of items) checkChoice(flag, it, o.choices);
    return items;
  }
  const so = o as StringOption; // TS does not narrow a union discriminant ('int' | 'number') checked in two parts
  checkChoice(flag, raw, so.choices);
  if (so.ext && !so.ext.some((e) => extname(raw).toLowerCase() === e.toLowerCase())) {
    throw new UsageError(`${flag} must name a ${so.ext.join(' or ')} file, got '${raw}'`);
  }
  if (so.path) checkPath(flag, raw, so.path);
  return raw;
}

function checkChoice(flag: string, value: string, choices: readonly string[] | undefined): void {
  if (choices && !choices.includes(value)) throw new UsageError(`${flag}: '${value}' is not one of ${choices.join(', ')}`);
}

function rangeText(o: NumberOption): string {
  if (o.min !== undefined && o.max !== undefined) return ` in [${o.min}, ${o.max}]`;
  if (o.min !== undefined) return ` ≥ ${o.min}`;
  if (o.max !== undefined) return ` ≤ ${o.max}`;
  return '';
}

function checkPath(what: string, p: string, check: PathCheck): void {
  const kindOf = (q: string): 'file' | 'dir' | null => {
    try {
      return statSync(q).isDirectory() ? 'dir' : 'file';
    } catch {
      return null;
    }
  };
  if (check === 'parent') {
    const dir = dirname(resolve(p));
    if (kindOf(dir) !== 'dir') throw new UsageError(`${what}: folder '${dir}' does not exist`);
    return;
  }
  const k = kindOf(p);
  if (k === null) throw new UsageError(`${what}: '${p}' does not exist`);
  if (check === 'dir' && k !== 'dir') throw new UsageError(`${what}: '${p}' is not a folder`);
  if (check === 'file' && k !== 'file') throw new UsageError(`${what}: '${p}' is a folder, not a file`);
}

/** parseArgs' own messages are several lines with advice about `--`; ours name the flag in one line. */
function tokenizerMessage(e: Error & { code?: string }): string {
  const flag = /'(-[^' ]+)/.exec(e.message)?.[1] ?? '';
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown option '${flag}'`;
  if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    if (/does not take an argument/.test(e.message)) return `${flag} takes no value`;
    if (/ambiguous/.test(e.message)) return `${flag} needs a value (write ${flag}=-1 for a value that starts with '-')`;
    return `${flag} needs a value`;
  }
  return e.message.split('\n')[0];
}

/** The --help text of a command, generated from its declaration. */
export function helpText(spec: CommandSpec): string {
  const pos = (spec.positionals ?? []).map((p) => (p.required ? `<${p.name}>` : `[<${p.name}>]`));
  const required = Object.entries(spec.options).filter(([, o]) => o.type !== 'boolean' && o.required)
    .map(([k, o]) => `--${flagOf(k)} ${valueName(k, o as Exclude<OptionSpec, BooleanOption>)}`);
  const lines = [`usage: lpo ${[spec.name, ...pos, ...required, '[options]'].join(' ')}`, '', spec.summary];
  if (spec.details) lines.push('', spec.details);
  const rows: [string, string][] = [];
  for (const p of spec.positionals ?? []) rows.push([`<${p.name}>`, p.help]);
  if (rows.length) rows.unshift(['arguments:', '']);
  rows.push(['options:', '']);
  for (const [k, o] of Object.entries(spec.options)) {
    const flag = flagOf(k);
    const left = `${o.short ? `-${o.short}, ` : ''}--${o.type === 'boolean' && o.negatable ? `[no-]${flag}` : flag}${o.type === 'boolean' ? '' : ` ${valueName(k, o)}`}`;
    rows.push([left, o.help + noteText(o)]);
  }
  rows.push(['--debug', 'on an error, print the stack trace too'], ['-h, --help', 'print this help']);
  const w = Math.min(32, Math.max(...rows.filter(([, h]) => h).map(([l]) => l.length)) + 2);
  for (const [l, h] of rows) lines.push(h ? `  ${l.padEnd(w)}${l.length >= w ? ' ' : ''}${h}` : `\n${l}`);
  return lines.join('\n');
}

function noteText(o: OptionSpec): string {
  const notes: string[] = [];
  if (o.type === 'int' || o.type === 'number') {
    const r = rangeText(o).trim();
    if (r || o.type === 'int') notes.push(`${o.type === 'int' ? 'integer' : 'number'}${r ? ` ${r}` : ''}`);
  }
  if ((o.type === 'string' || o.type === 'list') && o.choices) notes.push(`one of ${o.choices.join(', ')}`);
  if (o.type !== 'boolean' && o.required) notes.push('required');
  if (o.type !== 'boolean' && o.default !== undefined) notes.push(`default ${Array.isArray(o.default) ? o.default.join(',') : o.default}`);
  return notes.length ? ` (${notes.join('; ')})` : '';
}
