// The kernel ↔ host contract, checked from the sources: every uniform struct in kernels/ matches its
// host declaration (defineParams: names, order, types), op codes come from the one table, and kernels
// are specialised one way (overrides + composed files, no text substitution).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { declaredParams, packParams, defineParams } from '../src/gpu/params.js';
import { OPCODES, opcode, opcodeDeclarations } from '../src/gpu/opcodes.js';
import { KERNEL_FILES, kernelModule } from '../src/gpu/wgsl.js';
import { MATMUL_ACTIVATIONS, matmulGeometry, planMatmul } from '../src/tensor/plan/matmul.js';
// Every module that declares a kernel's params (a family missing here fails the coverage check below).
import '../src/tensor/ops/elementwise.js';
import '../src/tensor/ops/reduce.js';
import '../src/tensor/ops/layout.js';
import '../src/tensor/ops/softmax.js';
import '../src/tensor/ops/cast.js';
import '../src/tensor/ops/conv2d.js';
import '../src/tensor/ops/norm.js';
import '../src/tensor/ops/pool.js';
import '../src/tensor/ops/attention.js';
import '../src/tensor/ops/lora.js';
import '../src/tensor/ops/geglu.js';
import '../src/tensor/ops/embedding.js';
import '../src/tensor/ops/dpo.js';
import '../src/tensor/ops/guidance.js';
import '../src/optim/adamw.js';
import '../src/gpu/finite.js';
import '../src/tensor/plan/mm16.js';
import '../src/tensor/plan/conv16.js';
import '../src/tensor/plan/attn16.js';

const KERNELS = join(import.meta.dirname, '..', 'kernels');
const files = readdirSync(KERNELS).filter((f) => f.endsWith('.wgsl'));
const stripComments = (s: string) => s.replace(/\/\/[^\n]*/g, '');

/** Splits at commas outside <...>. */
function topLevelSplit(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '<') depth++;
    if (ch === '>') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((x) => x.trim()).filter(Boolean);
}

/** The uniform structs of a WGSL file: struct name → [field, type] in order. */
function uniformStructs(src: string): Map<string, [string, string][]> {
  const code = stripComments(src);
  const out = new Map<string, [string, string][]>();
  for (const m of code.matchAll(/var<uniform>\s+\w+\s*:\s*(\w+)\s*;/g)) {
    const name = m[1];
    const body = new RegExp(`struct\\s+${name}\\s*\\{([^}]*)\\}`).exec(code)?.[1];
    if (body === undefined) throw new Error(`struct ${name} not found`);
    out.set(name, topLevelSplit(body).map((f) => {
      const [n, t] = f.split(/:(.*)/s).map((x) => x.trim());
      return [n, t.replace(/\s+/g, ' ').replace(/\s*,\s*/g, ', ')];
    }));
  }
  return out;
}

describe('kernel params contract', () => {
  const wgsl = new Map<string, [string, string][]>(); // 'file#Struct' → fields
  for (const f of files) for (const [s, fields] of uniformStructs(readFileSync(join(KERNELS, f), 'utf8'))) wgsl.set(`${f}#${s}`, fields);
  const host = new Map(declaredParams().filter((l) => !l.file.startsWith('test')).map((l) => [`${l.file}#${l.struct}`, Object.entries(l.fields)]));

  it('the parser finds the uniform structs (a parser that finds nothing would pass everything)', () => {
    expect(wgsl.size).toBeGreaterThanOrEqual(17);
    expect(wgsl.get('elementwise.wgsl#Params')?.map(([n]) => n)).toEqual(['n', 'rank', 'alpha', 'beta', 'shape', 'a_strides', 'b_strides']);
    expect(wgsl.get('layout.wgsl#AxisParams')?.[0]).toEqual(['outer', 'u32']);
  });

  it('every uniform struct in kernels/ has a host declaration and every declaration a struct', () => {
    expect([...wgsl.keys()].filter((k) => !host.has(k)), 'WGSL structs without defineParams').toEqual([]);
    expect([...host.keys()].filter((k) => !wgsl.has(k)), 'declarations without a WGSL struct').toEqual([]);
  });

  it('each declaration matches its WGSL struct: names, order and types', () => {
    for (const [k, fields] of host) expect(fields, k).toEqual(wgsl.get(k));
  });

  it('packs at WGSL uniform offsets: scalars 4-byte, arrays of vec4 16-byte aligned', () => {
    const P = defineParams('test.wgsl', 'Offsets', { a: 'u32', b: 'f32', s: 'array<vec4<u32>, 1>', c: 'i32' });
    expect(P.words).toBe(9);
    const w = packParams(P.of({ a: 7, b: 0.5, s: [1, 2, 3], c: -2 }));
    expect(Array.from(w.slice(0, 9))).toEqual([7, 0x3f000000, 0, 0, 1, 2, 3, 0, 0xfffffffe]);
    expect(() => packParams(P.of({ a: 1, b: 0, c: 0, s: [1, 2, 3, 4, 5] }))).toThrow(/'s' takes at most 4 numbers/);
  });
});

describe('op codes', () => {
  const unaryLib = stripComments(readFileSync(join(KERNELS, 'lib', 'unary.wgsl'), 'utf8'));
  const elementwise = stripComments(KERNEL_FILES.elementwise);
  const switchBody = (src: string, fn: string) => {
    const i = src.indexOf(`fn ${fn}(`);
    expect(i, fn).toBeGreaterThanOrEqual(0);
    return src.slice(i, src.indexOf('\n}\n', i));
  };
  const cases = (body: string) => [...body.matchAll(/case\s+(\w+)\s*:/g)].map((m) => m[1]);

  it('the generated WGSL constants are the table positions', () => {
    const decl = opcodeDeclarations();
    expect(decl).toContain('const UNARY_IDENTITY: u32 = 0u;');
    expect(decl).toContain(`const UNARY_GELU_TANH: u32 = ${opcode('UNARY', 'geluTanh')}u;`);
    expect(decl).toContain(`const BINARY_EQUAL: u32 = ${opcode('BINARY', 'equal')}u;`);
    expect(decl).toContain('const REDUCE_MAX: u32 = 2u;');
    for (const names of Object.values(OPCODES)) expect(new Set(names).size).toBe(names.length);
  });

  it('the unary function and its gradient handle every unary op by name (identity is the default)', () => {
    const want = OPCODES.UNARY.filter((n) => n !== 'identity').map((n) => `UNARY_${n.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`);
    expect(cases(switchBody(unaryLib, 'unary_fn')).sort()).toEqual([...want].sort());
    expect(cases(switchBody(unaryLib, 'unary_grad_fn')).sort()).toEqual([...want].sort());
  });

  it('the binary kernel handles every binary op by name (first is the default) and nothing else', () => {
    const want = OPCODES.BINARY.filter((n) => n !== 'first').map((n) => `BINARY_${n.toUpperCase()}`);
    expect(cases(switchBody(elementwise, 'binary_op')).sort()).toEqual([...want].sort());
  });

  it('no kernel switches on or compares an op code as a number', () => {
    for (const f of files) {
      const src = stripComments(readFileSync(join(KERNELS, f), 'utf8'));
      expect(src, f).not.toMatch(/case\s+\d+u?\s*:/);
      expect(src, f).not.toMatch(/\b(OP|ACT)\s*[=!]=\s*\d/);
    }
  });

  it("matmul's fused activations use the unary codes of the same functions", () => {
    const buf = {} as GPUBuffer;
    for (const act of MATMUL_ACTIVATIONS) {
      const [d] = planMatmul({ variant: 'naive', splitK: 1, bk: 8 }, matmulGeometry(2, 3, 4), { act, hasBias: false, transA: false, transB: false }, { a: buf, b: buf, bias: buf, c: buf });
      expect(d.kernel.constants?.ACT, act).toBe(opcode('UNARY', act === 'none' ? 'identity' : act));
    }
  });
});

describe('one way to specialise WGSL', () => {
  it('kernel files carry no text-substitution markers; enable directives lead the composed module', () => {
    for (const f of files) expect(readFileSync(join(KERNELS, f), 'utf8'), f).not.toMatch(/@host-replaced|---- subgroups ----/);
    const m = kernelModule('matmul', { libs: ['unary'], also: ['matmul_sg'] });
    expect(m.startsWith('enable subgroups;\n')).toBe(true);
    expect(m.match(/^enable /gm)).toHaveLength(1);
  });

  it('generated consts are typed u32 declarations; bad ones are refused', () => {
    expect(kernelModule('attention', { libs: ['rows_f32'], consts: { DV: 5, QPT: 1 } })).toContain('const DV: u32 = 5u;');
    expect(() => kernelModule('attention', { libs: ['rows_f32'], consts: { DV: 2.5 } })).toThrow(/expected a name and a u32/);
  });
});
