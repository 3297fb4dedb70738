// The one check for an op's options object (CONVENTIONS: an op with more than one numeric argument takes
// one). Options replace positional numbers so that `groupNorm(x, 32, w, b, 1e-6)` can no longer be misread
// or shifted by one; the price is that a misspelt key (`{ esp: 1e-6 }`) would otherwise be silently
// ignored and the default used, and a NaN would reach the kernel as a uniform. So every op reads its
// options through `readOptions`, which throws an ArgumentError naming the op and the field.
import { ArgumentError } from '../../errors.js';
import { Tensor } from '../tensor.js';

/** What a field may hold. `tensor` also accepts null (diffusers-style "no affine"); every kind accepts undefined unless required. */
export type OptionKind = 'number' | 'integer' | 'boolean' | 'string' | 'tensor';

export interface OptionField {
  kind: OptionKind;
  /** Must be present (not undefined). */
  required?: boolean;
}

export type OptionSpec = Readonly<Record<string, OptionKind | OptionField>>;

const describe = (v: unknown) => (typeof v === 'string' ? `'${v}'` : v instanceof Tensor ? `a Tensor [${v.shape}]` : String(v));

function fits(kind: OptionKind, v: unknown): boolean {
  switch (kind) {
    case 'number': return typeof v === 'number' && !Number.isNaN(v);
    case 'integer': return Number.isInteger(v);
    case 'boolean': return typeof v === 'boolean';
    case 'string': return typeof v === 'string';
    case 'tensor': return v === null || v instanceof Tensor;
  }
}

/**
 * Returns `opts` (or `{}` when undefined) after checking it against `spec`: a plain object, only known keys,
 * required keys present, and each value of its kind (numbers not NaN). The ops' TypeScript types already
 * say this; the check is for JavaScript callers, computed keys and values that became NaN at run time.
 */
export function readOptions<T extends object>(op: string, opts: T | undefined, spec: OptionSpec): T {
  if (opts === undefined) opts = {} as T;
  // A number here is almost always a caller of the old positional signature (`affine(x, 2, 1)`).
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts) || opts instanceof Tensor) {
    throw new ArgumentError(`${op}: options must be an object { ${Object.keys(spec).join(', ')} }, got ${describe(opts)}`);
  }
  const rec = opts as Record<string, unknown>;
  for (const key of Object.keys(rec)) {
    if (!(key in spec)) throw new ArgumentError(`${op}: unknown option '${key}' (known: ${Object.keys(spec).join(', ')})`);
  }
  for (const [key, f] of Object.entries(spec)) {
    const { kind, required } = typeof f === 'string' ? { kind: f, required: false } : f;
    const v = rec[key];
    if (v === undefined) {
      if (required) throw new ArgumentError(`${op}: option '${key}' is required`);
      continue;
    }
    if (!fits(kind, v)) throw new ArgumentError(`${op}: option '${key}' must be ${kind === 'integer' ? 'an integer' : kind === 'tensor' ? 'a Tensor or null' : `a ${kind}`}${kind === 'number' ? ' (not NaN)' : ''}, got ${describe(v)}`);
  }
  return opts;
}
