// The README's library example, extracted as written (the ```ts block after the `readme-example` marker), and a
// runner for it: a scratch folder holding the tiny model at the example's placeholder path, the example compiled
// by esbuild, run by node. readme-example.test.ts runs it against the sources, pack.test.ts against the tarball.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, writeTinySd } from './tiny-sd.js';

const MARKER = '<!-- readme-example:';

/** The code of the README block that follows the marker comment; throws if there is none (so a test cannot pass on nothing). */
export function readmeExample(readme = readFileSync(join(ROOT, 'README.md'), 'utf8')): string {
  const at = readme.indexOf(MARKER);
  if (at < 0) throw new Error(`README.md has no '${MARKER} …-->' marker before its library example`);
  const m = /```ts\n([\s\S]*?)\n```/.exec(readme.slice(at));
  if (!m) throw new Error('README.md: no ```ts block after the readme-example marker');
  return m[1];
}

/** The model folder the example names (`fromPretrained('…')`), to be created relative to the example's cwd. */
export function examplePaths(code: string): { model: string } {
  const m = /fromPretrained\('([^']+)'/.exec(code);
  if (!m) throw new Error('the README example no longer loads a model with fromPretrained(\'<folder>\')');
  return { model: m[1] };
}

/** Prepares `cwd` for the example: the tiny model at its placeholder path. */
export function prepareExampleCwd(cwd: string, code: string): void {
  writeTinySd(join(cwd, examplePaths(code).model));
}
