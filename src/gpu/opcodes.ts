// The op-code table shared by the host and WGSL. A code is its name's position in its list; every
// kernel module gets the table as WGSL constants (`const UNARY_GELU_TANH: u32 = 7u;`, see wgsl.ts),
// and kernels switch on those names, never on numbers, so host and kernels cannot drift apart.
// Matmul's fused activation epilogue takes the unary codes too ('none' is `identity`).

export const OPCODES = {
  UNARY: [
    'identity', 'neg', 'exp', 'log', 'sqrt', 'rsqrt', 'silu', 'geluTanh', 'gelu', 'quickGelu', 'sigmoid',
    'tanh', 'relu', 'abs', 'square', 'affine', 'pow', 'reciprocal', 'sin', 'cos',
  ],
  /** `equal` (1/0) and `first` (a, the broadcast copy of expandTo) are the non-differentiable two. */
  BINARY: ['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'equal', 'first'],
  REDUCE: ['sum', 'mean', 'max'],
} as const;

export type OpTable = keyof typeof OPCODES;
export type UnaryCode = (typeof OPCODES.UNARY)[number];
export type BinaryCode = (typeof OPCODES.BINARY)[number];
export type ReduceCode = (typeof OPCODES.REDUCE)[number];

/** The code of `name` in `table`. */
export function opcode<T extends OpTable>(table: T, name: (typeof OPCODES)[T][number]): number {
  return (OPCODES[table] as readonly string[]).indexOf(name);
}

/** geluTanh → GELU_TANH */
const constName = (table: string, op: string) => `${table}_${op.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

/** The WGSL constant that carries `name`'s code, e.g. UNARY_GELU_TANH. */
export function opcodeConst<T extends OpTable>(table: T, name: (typeof OPCODES)[T][number]): string {
  return constName(table, name);
}

/** The whole table as WGSL `const` declarations (part of every module's prelude). */
export function opcodeDeclarations(): string {
  const lines: string[] = [];
  for (const [table, names] of Object.entries(OPCODES)) {
    names.forEach((n: string, i: number) => lines.push(`const ${constName(table, n)}: u32 = ${i}u;`));
  }
  return lines.join('\n');
}
