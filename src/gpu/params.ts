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
  }

  /** Binds values to this layout for a dispatch. */
  of(values: ParamValues<F>): BoundParams {
    return { layout: this as unknown as ParamsLayout<Fields>, values: values as BoundParams['values'] };
  }

  /** Writes `values` at word `base` of the three views of one buffer; `label` names the kernel in errors. */
  write(values: BoundParams['values'], u32: Uint32Array, f32: Float32Array, i32: Int32Array, base: number, label: string): void {
    for (const s of this.slots) {
      const v = values[s.name];
      if (s.type === 'array') {
        if (v === undefined) continue;
        if (typeof v === 'number' || v.length > s.words) throw new KernelError(label, `param '${s.name}' takes at most ${s.words} numbers`);
        for (let i = 0; i < s.words; i++) u32[base + s.offset + i] = v[i] ?? 0;
        continue;
      }
      if (typeof v !== 'number') throw new KernelError(label, `param '${s.name}' (${s.type}) is missing`);
      const o = base + s.offset;
      if (s.type === 'f32') f32[o] = v;
      else if (s.type === 'u32') {
        if (!(Number.isInteger(v) && v >= 0 && v <= 0xffffffff)) throw new KernelError(label, `param '${s.name}' = ${v} is not a u32`);
        u32[o] = v;
      } else {
        if (!(Number.isInteger(v) && v >= -0x80000000 && v <= 0x7fffffff)) throw new KernelError(label, `param '${s.name}' = ${v} is not an i32`);
        i32[o] = v;
      }
    }
  }
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
