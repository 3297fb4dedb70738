// The package's entry points, read from package.json `exports` (the one list): `.` → src/index.ts, `./x` →
// src/api/x.ts, each bundled to dist/<x>.js. Used by build.mjs and by the tests that resolve `lpo-wgsl/…` to sources.
import { readFileSync } from 'node:fs';

const ROOT = new URL('../', import.meta.url);

/** { subpath ('.', './ops', …): { name ('index', 'ops', …), source (repo-relative .ts) } } */
export function packageEntries() {
  const pkg = JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8'));
  const out = {};
  for (const [sub, target] of Object.entries(pkg.exports)) {
    if (typeof target === 'string') continue; // ./package.json
    const name = /^\.\/dist\/([\w-]+)\.js$/.exec(target.default)?.[1];
    if (!name) throw new Error(`package.json exports['${sub}'].default must be ./dist/<name>.js, got ${target.default}`);
    out[sub] = { name, source: sub === '.' ? 'src/index.ts' : `src/api/${name}.ts` };
  }
  return out;
}
