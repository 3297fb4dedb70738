// Uniform parameters by name. Each kernel family declares its `struct Params` once on the host with
// defineParams(file, struct, fields): names and WGSL types in the struct's order. Ops pass a typed
// object (`P.of({ M, N, scale })`), and the runtime packs it at the offsets WGSL's uniform layout rules
// give. test/kernel-contract.test.ts parses every `var<uniform>` struct in kernels/ and checks it
// against these declarations (names, order, types), so a field added on one side only fails a test.
//
// Field types: u32, i32, f32 (4 bytes, 4-byte aligned) and `array<vec4<u32>, N>` (16-byte aligned,
// N·16 bytes; for shapes and strides). Array fields may be left out (their words are not written).
import { KernelError } from './errors.js';

export type ScalarType = 'u32' | 'i32' | 'f32';
export type ArrayType = `array<vec4<u32>, ${number}>`;
export type FieldType = ScalarType | ArrayType;
export type Fields = Record<string, FieldType>;

/** The object an op fills in: numbers for scalar fields, up to 4·N numbers for array fields (optional). */
export type ParamValues<F extends Fields> =
  { [K in keyof F as F[K] extends ScalarType ? K : never]: number } &
  { [K in keyof F as F[K] extends ScalarType ? never : K]?: readonly number[] };

interface Slot { name: string; type: ScalarType | 'array'; offset: number; words: number }

/** Values bound to their layout: what Dispatch.params takes. */
export interface BoundParams { readonly layout: ParamsLayout<Fields>; readonly values: Readonly<Record<string, number | readonly number[] | undefined>> }

export class ParamsLayout<F extends Fields> {
  private readonly slots: Slot[] = [];
  private readonly writer: Writer;
  /** Size in 4-byte words (offset of the end of the last field). */
  readonly words: number;

  constructor(readonly file: string, readonly struct: string, readonly fields: F) {
    let offset = 0;
    for (const [name, type] of Object.entries(fields)) {
      const m = /^array<vec4<u32>, (\d+)>$/.exec(type);
      if (m) {
        offset = Math.ceil(offset / 4) * 4; // 16-byte alignment
        this.slots.push({ name, type: 'array', offset, words: 4 * Number(m[1]) });
        offset += 4 * Number(m[1]);
      } else if (type === 'u32' || type === 'i32' || type === 'f32') {
        this.slots.push({ name, type, offset, words: 1 });
        offset += 1;
      } else {
        throw new KernelError(`${file} ${struct}`, `unsupported uniform field type '${type}' for '${name}'`);
      }
    }
    this.words = offset;
    this.writer = compileWriter(this.slots);
  }

  /** Binds values to this layout for a dispatch. */
  of(values: ParamValues<F>): BoundParams {
    return { layout: this as unknown as ParamsLayout<Fields>, values: values as BoundParams['values'] };
  }

  /** Writes `values` at word `base` of the three views of one buffer; `label` names the kernel in errors. */
  write(values: BoundParams['values'], u32: Uint32Array, f32: Float32Array, i32: Int32Array, base: number, label: string): void {
    this.writer(values, u32, f32, i32, base, this.fail, label);
  }

  /** Throws the error for slot i holding v (the generated writer calls it). */
  private readonly fail = (i: number, v: unknown, label: string): never => {
    const s = this.slots[i];
    if (s.type === 'array') throw new KernelError(label, `param '${s.name}' takes at most ${s.words} numbers`);
    if (typeof v !== 'number') throw new KernelError(label, `param '${s.name}' (${s.type}) is missing`);
    throw new KernelError(label, `param '${s.name}' = ${v} is not ${s.type === 'u32' ? 'a u32' : 'an i32'}`);
  };
}

type Writer = (v: BoundParams['values'], u32: Uint32Array, f32: Float32Array, i32: Int32Array, o: number, fail: (i: number, v: unknown, label: string) => never, label: string) => void;

/**
 * A straight-line writer for one layout. Packing runs on every dispatch; a generic loop over the
 * fields does keyed loads that are megamorphic across layouts (≈ 0.5–1 µs a dispatch), while named
 * loads in a function per layout cost what the positional arrays did (≈ 0.1 µs). Names are checked
 * identifiers, so the generated text is only property reads, checks and stores.
 */
function compileWriter(slots: readonly Slot[]): Writer {
  const lines = slots.map((s, i) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(s.name)) throw new KernelError('params', `field name '${s.name}' is not an identifier`);
    const at = `o + ${s.offset}`;
    switch (s.type) {
      case 'u32': return `x = v.${s.name}; if (x >>> 0 !== x) fail(${i}, x, label); u32[${at}] = x;`;
      case 'i32': return `x = v.${s.name}; if (typeof x !== 'number' || (x | 0) !== x) fail(${i}, x, label); i32[${at}] = x;`;
      case 'f32': return `x = v.${s.name}; if (typeof x !== 'number') fail(${i}, x, label); f32[${at}] = x;`;
      default: return `x = v.${s.name}; if (x !== undefined) { if (x.length > ${s.words}) fail(${i}, x, label); for (let j = 0; j < ${s.words}; j++) u32[${at} + j] = x[j] ?? 0; }`;
    }
  });
  return new Function('v', 'u32', 'f32', 'i32', 'o', 'fail', 'label', `let x;\n${lines.join('\n')}`) as Writer;
}

/** The packed words of bound params (for private command streams such as the autotuner's). */
export function packParams(p: BoundParams, label = `${p.layout.file} ${p.layout.struct}`): Uint32Array {
  const u32 = new Uint32Array(Math.max(4, Math.ceil(p.layout.words / 4) * 4));
  p.layout.write(p.values, u32, new Float32Array(u32.buffer), new Int32Array(u32.buffer), 0, label);
  return u32;
}

const registry: ParamsLayout<Fields>[] = [];

/**
 * Declares the uniform struct `struct` of kernels/`file` (fields in WGSL order, with their WGSL
 * types). Registered, so the contract test can compare it with the WGSL source.
 */
export function defineParams<const F extends Fields>(file: string, struct: string, fields: F): ParamsLayout<F> {
  const layout = new ParamsLayout(file, struct, fields);
  const i = registry.findIndex((l) => l.file === file && l.struct === struct);
  if (i >= 0) registry[i] = layout as unknown as ParamsLayout<Fields>;
  else registry.push(layout as unknown as ParamsLayout<Fields>);
  return layout;
}

/** Every declared layout (for the contract test). */
export function declaredParams(): readonly ParamsLayout<Fields>[] {
  return registry;
}
