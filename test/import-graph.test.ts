// The layering rules of docs/CONVENTIONS.md, checked on the source: every `import`/`export … from` of src/ is
// parsed and resolved to a file, then
//   - nothing in src/nn imports src/io (models declare; io reads and writes files),
//   - nothing in src/gpu imports src/tensor or any layer above it,
//   - no import cycle except the documented tape ↔ ops pair (ops record onto the tape; the tape sums with `add`).
// Type-only imports (`import type`) count for the layering rules but not for cycles (they are erased).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(__dirname, '../src');

interface Edge { from: string; to: string; typeOnly: boolean }

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return /\.ts$/.test(e.name) && !/\.d\.ts$/.test(e.name) ? [p] : [];
  });
}

/** Specifiers of static imports/re-exports (with whether they are type-only) and dynamic imports. */
function importsOf(text: string): { spec: string; typeOnly: boolean }[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  const out: { spec: string; typeOnly: boolean }[] = [];
  const stat = /(?:^|;|\n)\s*(import|export)\s+(type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"]([^'"]+)['"]/g;
  for (let m; (m = stat.exec(code)); ) out.push({ spec: m[3], typeOnly: !!m[2] });
  const dyn = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (let m; (m = dyn.exec(code)); ) out.push({ spec: m[1], typeOnly: false });
  return out;
}

function resolveSpec(from: string, spec: string): string | null {
  if (!spec.startsWith('.')) return null; // a package or node: built-in
  const base = path.resolve(path.dirname(from), spec);
  for (const c of [base.replace(/\.js$/, '.ts'), `${base}.ts`, path.join(base, 'index.ts'), base]) {
    if (fs.existsSync(c) && fs.statSync(c).isFile()) return c;
  }
  return null; // a missing file: the type check reports it; here there is no edge to judge
}

function graph(): Edge[] {
  const edges: Edge[] = [];
  for (const f of sourceFiles(SRC)) {
    for (const { spec, typeOnly } of importsOf(fs.readFileSync(f, 'utf8'))) {
      const to = resolveSpec(f, spec);
      if (to && to.endsWith('.ts')) edges.push({ from: f, to, typeOnly });
    }
  }
  return edges;
}

const rel = (f: string) => path.relative(SRC, f).split(path.sep).join('/');
const inDir = (f: string, d: string) => rel(f).startsWith(`${d}/`);

/** Strongly connected components with more than one file (Tarjan). */
function cycles(edges: Edge[]): string[][] {
  const next = new Map<string, string[]>();
  for (const e of edges) if (!e.typeOnly) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  let i = 0;
  const visit = (v: string): void => {
    index.set(v, i);
    low.set(v, i++);
    stack.push(v);
    on.add(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        comp.push(rel(w));
      } while (w !== v);
      if (comp.length > 1) out.push(comp.sort());
    }
  };
  for (const v of next.keys()) if (!index.has(v)) visit(v);
  return out;
}

describe('import graph of src/', () => {
  const edges = graph();

  it('parses imports, re-exports, type-only and dynamic imports (and skips comments)', () => {
    const found = importsOf([
      "import { a, type B } from './a.js';",
      "import type { C } from '../c.js';",
      "export { d } from './d.js';",
      "export * from './e.js';",
      "import './side.js';",
      'import {\n  f,\n  g,\n} from "./fg.js";',
      "const h = await import('./h.js');",
      "// import { x } from './commented.js';",
      "/* import { y } from './block.js'; */",
    ].join('\n'));
    expect(found).toEqual([
      { spec: './a.js', typeOnly: false },
      { spec: '../c.js', typeOnly: true },
      { spec: './d.js', typeOnly: false },
      { spec: './e.js', typeOnly: false },
      { spec: './side.js', typeOnly: false },
      { spec: './fg.js', typeOnly: false },
      { spec: './h.js', typeOnly: false },
    ]);
    expect(edges.length).toBeGreaterThan(100); // the whole tree was read
  });

  it('nothing in src/nn imports src/io', () => {
    const bad = edges.filter((e) => inDir(e.from, 'nn') && inDir(e.to, 'io')).map((e) => `${rel(e.from)} → ${rel(e.to)}`);
    expect(bad).toEqual([]);
  });

  it('nothing in src/gpu imports src/tensor or a layer above it', () => {
    const above = ['tensor', 'autograd', 'nn', 'optim', 'io', 'diffusion', 'lrm', 'lpo', 'toy', 'verify', 'cli'];
    const bad = edges
      .filter((e) => inDir(e.from, 'gpu') && (above.some((d) => inDir(e.to, d)) || rel(e.to) === 'index.ts'))
      .map((e) => `${rel(e.from)} → ${rel(e.to)}`);
    expect(bad).toEqual([]);
  });

  it('no import cycle other than the tape ↔ ops pair', () => {
    const allowed = (f: string) => f === 'autograd/tape.ts' || f.startsWith('tensor/ops/');
    const found = cycles(edges);
    expect(found.filter((c) => !c.every(allowed))).toEqual([]);
    // The documented pair is what it says (if it is ever broken up, this test should be tightened).
    expect(found.some((c) => c.includes('autograd/tape.ts'))).toBe(true);
  });
});
