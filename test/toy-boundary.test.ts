// The toy world stays outside the core: no core module reaches src/toy (directly or through other modules), and
// the hidden judge is reached only from the toy world itself (its evaluation and pair labelling) — never from
// the models, the reward model or the trainers, which must learn the preference from labelled pairs alone.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(__dirname, '..');
const SRC = join(ROOT, 'src');

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Relative imports (static, dynamic and re-exports) of a file that resolve to .ts files. */
function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)['"](\.[^'"]+)['"]/g)) {
    const base = resolve(dirname(file), m[1]);
    // Bundler resolution: x.js → x.ts, x → x.ts or x/index.ts; text in comments that resolves to nothing is skipped.
    const hit = [base.replace(/\.js$/, '.ts'), `${base}.ts`, join(base, 'index.ts')].find((c) => existsSync(c) && statSync(c).isFile());
    if (hit) out.push(hit);
  }
  return out;
}

const rel = (p: string) => relative(ROOT, p);
const isToy = (p: string) => rel(p).startsWith('src/toy/');
/**
 * Where the toy world may be entered from: its package entry (which also offers the judge to users who evaluate
 * their own methods in the toy world), the CLI command that runs the demo, and the CLI dispatcher that loads
 * that command lazily.
 */
const TOY_ENTRIES = [/^src\/api\/toy\.ts$/, /^src\/cli\/demo[^/]*\.ts$/, /^src\/cli\/toy[^/]*\.ts$/, /^src\/cli\/main\.ts$/];
const isEntry = (p: string) => TOY_ENTRIES.some((r) => r.test(rel(p)));

describe('toy world boundary', () => {
  const files = walk(SRC);

  it('finds the toy world and the core', () => {
    expect(files.filter(isToy).length).toBeGreaterThan(5);
    expect(files.filter((f) => !isToy(f)).length).toBeGreaterThan(50);
  });

  it('no core module imports src/toy, directly or transitively', () => {
    const core = files.filter((f) => !isToy(f) && !isEntry(f));
    const bad: string[] = [];
    for (const start of core) {
      const seen = new Set<string>([start]);
      const stack = [start];
      while (stack.length) {
        const f = stack.pop()!;
        for (const d of imports(f)) {
          if (seen.has(d)) continue;
          seen.add(d);
          if (isToy(d)) {
            bad.push(`${rel(start)} → … → ${rel(d)}`);
            continue;
          }
          if (d.startsWith(SRC)) stack.push(d);
        }
      }
    }
    expect(bad).toEqual([]);
  });

  it('only the toy world imports the hidden judge', () => {
    const bad = files.filter((f) => !isToy(f) && !isEntry(f) && imports(f).some((d) => rel(d).startsWith('src/toy/judge/'))).map(rel);
    expect(bad).toEqual([]);
    // Inside the toy world, only evaluation and pair labelling consult the judge.
    const users = files.filter((f) => isToy(f) && !rel(f).startsWith('src/toy/judge/') && imports(f).some((d) => rel(d).startsWith('src/toy/judge/'))).map(rel);
    expect(users.sort()).toEqual(['src/toy/evaluate.ts', 'src/toy/pairs.ts']);
  });
});
