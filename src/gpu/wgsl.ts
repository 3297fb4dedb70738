// The one template step for WGSL. A kernel module is assembled from whole files, never edited inside:
//
//   enable directives   hoisted from the parts below (a file that needs `enable subgroups;` says so itself)
//   generated consts    the op-code table (src/gpu/opcodes.ts) and the module's typed `consts`
//   kernels/lib/common.wgsl, then the requested libs (kernels/lib/*.wgsl)
//   the family file, then the `also` files (e.g. matmul_sg.wgsl: entry points that need subgroups)
//
// Values that the pipeline can take (workgroup size, tile sizes, op codes, flags) are WGSL `override`s
// passed as KernelSpec `constants`; generated `consts` are only for what an override cannot be (the
// size of a private array). Compile errors are mapped back to the file and line they come from.
import common from '../../kernels/lib/common.wgsl';
import rowsF32 from '../../kernels/lib/rows_f32.wgsl';
import rowsVec4 from '../../kernels/lib/rows_vec4.wgsl';
import unaryLib from '../../kernels/lib/unary.wgsl';
import wgSum from '../../kernels/lib/wg_sum.wgsl';
import fragSm from '../../kernels/lib/frag_sm.wgsl';
import fragSimt from '../../kernels/lib/frag_simt.wgsl';
import half from '../../kernels/lib/half.wgsl';
import fragGemm from '../../kernels/lib/frag_gemm.wgsl';
import bcast8 from '../../kernels/lib/bcast8.wgsl';
import adamw from '../../kernels/adamw.wgsl';
import attention from '../../kernels/attention.wgsl';
import attentionSg from '../../kernels/attention_sg.wgsl';
import cast from '../../kernels/cast.wgsl';
import check from '../../kernels/check.wgsl';
import conv2d from '../../kernels/conv2d.wgsl';
import conv2dSg from '../../kernels/conv2d_sg.wgsl';
import dpoLoss from '../../kernels/dpo_loss.wgsl';
import elementwise from '../../kernels/elementwise.wgsl';
import embedding from '../../kernels/embedding.wgsl';
import geglu from '../../kernels/geglu.wgsl';
import groupnorm from '../../kernels/groupnorm.wgsl';
import groupnormSg from '../../kernels/groupnorm_sg.wgsl';
import guidance from '../../kernels/guidance.wgsl';
import layernorm from '../../kernels/layernorm.wgsl';
import layout from '../../kernels/layout.wgsl';
import lora from '../../kernels/lora.wgsl';
import matmul from '../../kernels/matmul.wgsl';
import matmulGemm from '../../kernels/matmul_gemm.wgsl';
import matmulSg from '../../kernels/matmul_sg.wgsl';
import matmulPro from '../../kernels/matmul_pro.wgsl';
import matmulF16 from '../../kernels/matmul_f16.wgsl';
import conv2dF16 from '../../kernels/conv2d_f16.wgsl';
import attentionF16 from '../../kernels/attention_f16.wgsl';
import pool from '../../kernels/pool.wgsl';
import reduce from '../../kernels/reduce.wgsl';
import softmax from '../../kernels/softmax.wgsl';
import { ArgumentError } from '../errors.js';
import { opcodeDeclarations } from './opcodes.js';

/** Every kernel family file (kernels/<name>.wgsl). */
export const KERNEL_FILES = {
  adamw, attention, attention_sg: attentionSg, cast, check, conv2d, conv2d_sg: conv2dSg, dpo_loss: dpoLoss, elementwise, embedding, geglu,
  groupnorm, groupnorm_sg: groupnormSg, guidance, layernorm, layout, lora, matmul, matmul_gemm: matmulGemm, matmul_sg: matmulSg, matmul_pro: matmulPro, pool, reduce, softmax,
  matmul_f16: matmulF16, conv2d_f16: conv2dF16, attention_f16: attentionF16,
} as const;
/** Library files (kernels/lib/<name>.wgsl) a module may ask for; common.wgsl is always in. */
export const LIB_FILES = {
  wg_sum: wgSum, unary: unaryLib, rows_vec4: rowsVec4, rows_f32: rowsF32,
  frag_sm: fragSm, frag_simt: fragSimt, frag_gemm: fragGemm, half, bcast8,
} as const;

export type KernelFile = keyof typeof KERNEL_FILES;
export type LibFile = keyof typeof LIB_FILES;

export interface ModuleOptions {
  /** Libraries from kernels/lib/ after common.wgsl. */
  libs?: readonly LibFile[];
  /** Further family files after the first. */
  also?: readonly KernelFile[];
  /** Module-scope `const NAME: u32 = v;` declarations (only where an override cannot serve). */
  consts?: Readonly<Record<string, number>>;
  /**
   * Module-scope `alias NAME = f16|f32;` declarations: the storage or staging type of a binding that
   * varies per pipeline (the f16 kernels read f16 or f32 tensors), where a lib per combination would
   * multiply files. Each alias comes with `const NAME_F16: bool` (kernels/lib/half.wgsl's `narrow`
   * uses it); an f16 alias brings `enable f16;`.
   */
  types?: Readonly<Record<string, 'f16' | 'f32'>>;
}

interface Part { file: string; text: string }
interface Segment { file: string; first: number; lines: number }

/** Segments of every module handed out (for compile-error lines). */
const segmentsOf = new Map<string, Segment[]>();
const built = new Map<string, string>();

const ENABLE = /^\s*enable\s+[\w\s,]+;\s*$/;

function compose(parts: Part[]): string {
  const header: string[] = [];
  const body: Part[] = parts.map((p) => ({
    file: p.file,
    // Keep the line count so error lines still match the file.
    text: p.text.split('\n').map((l) => (ENABLE.test(l) ? (header.push(l.trim()), `// ${l.trim()} (hoisted)`) : l)).join('\n'),
  }));
  const all: Part[] = [...(header.length ? [{ file: 'enable directives', text: [...new Set(header)].join('\n') }] : []), ...body];
  const segs: Segment[] = [];
  let line = 1;
  const texts: string[] = [];
  for (const p of all) {
    const text = p.text.endsWith('\n') ? p.text : `${p.text}\n`;
    const lines = text.split('\n').length - 1;
    segs.push({ file: p.file, first: line, lines });
    line += lines;
    texts.push(text);
  }
  const code = texts.join('');
  segmentsOf.set(code, segs);
  return code;
}

function constDeclarations(consts: Readonly<Record<string, number>>): string {
  return Object.entries(consts).map(([k, v]) => {
    if (!/^[A-Za-z_]\w*$/.test(k) || !Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new ArgumentError(`WGSL const ${k} = ${v}: expected a name and a u32`);
    return `const ${k}: u32 = ${v}u;`;
  }).join('\n');
}

function typeDeclarations(types: Readonly<Record<string, 'f16' | 'f32'>>): string {
  const lines = Object.entries(types).map(([k, t]) => {
    if (!/^[A-Za-z_]\w*$/.test(k) || (t !== 'f16' && t !== 'f32')) throw new ArgumentError(`WGSL alias ${k} = ${String(t)}: expected a name and f16 or f32`);
    return `alias ${k} = ${t};\nconst ${k}_F16: bool = ${t === 'f16'};`;
  });
  return [...(Object.values(types).includes('f16') ? ['enable f16;'] : []), ...lines].join('\n');
}

/**
 * The WGSL module for a kernel family: the template step described at the top of this file. `family`
 * is a file of kernels/ or, for tests and user kernels, `{ name, text }`. Memoized.
 */
export function kernelModule(family: KernelFile | { name: string; text: string }, opts: ModuleOptions = {}): string {
  const name = typeof family === 'string' ? family : family.name;
  const key = `${name}|${opts.libs ?? ''}|${opts.also ?? ''}|${JSON.stringify(opts.consts ?? {})}|${JSON.stringify(opts.types ?? {})}${typeof family === 'string' ? '' : `|${family.text}`}`;
  const hit = built.get(key);
  if (hit) return hit;
  const parts: Part[] = [
    { file: 'generated constants (src/gpu/opcodes.ts, consts)', text: [opcodeDeclarations(), constDeclarations(opts.consts ?? {}), typeDeclarations(opts.types ?? {})].filter(Boolean).join('\n') },
    { file: 'kernels/lib/common.wgsl', text: common },
    ...(opts.libs ?? []).map((l) => ({ file: `kernels/lib/${l}.wgsl`, text: LIB_FILES[l] })),
    typeof family === 'string' ? { file: `kernels/${family}.wgsl`, text: KERNEL_FILES[family] } : { file: family.name, text: family.text },
    ...(opts.also ?? []).map((f) => ({ file: `kernels/${f}.wgsl`, text: KERNEL_FILES[f] })),
  ];
  const code = compose(parts);
  built.set(key, code);
  return code;
}

/** The extensions a module enables (its leading `enable` directives). */
export function enablesOf(code: string): string[] {
  const out: string[] = [];
  for (const line of code.split('\n', 8)) {
    if (!ENABLE.test(line)) break;
    out.push(...line.trim().slice(6, -1).split(',').map((s) => s.trim()));
  }
  return out;
}

/** Maps line `n` (1-based) of a module back to its file and line, with that line's text. */
export function sourceLineOf(code: string, n: number): { where: string; text: string } {
  const raw = code.split('\n')[n - 1]?.trim() ?? '';
  const text = raw.length > 80 ? `${raw.slice(0, 77)}...` : raw;
  const seg = segmentsOf.get(code)?.find((s) => n >= s.first && n < s.first + s.lines);
  return { where: seg ? `${seg.file} line ${n - seg.first + 1}` : `line ${n}`, text };
}
