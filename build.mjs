// Bundles the library's entry points and the CLI with esbuild; WGSL sources are imported as text, so the kernels
// travel inside the bundle. The entry points are package.json `exports` (scripts/entries.mjs): `./x` → dist/x.js
// built from src/api/x.ts, `.` → dist/index.js from src/index.ts. Code splitting puts what they share (the GPU
// runtime, Tensor, the tape) in one chunk, so `lpo-wgsl` and `lpo-wgsl/ops` see the same device and classes.
// Type declarations are a separate step (`npm run build:types`, tsc → dist/types). `--clean` empties dist/ first
// (prepack does, so the tarball holds only this build).
import { build } from 'esbuild';
import { readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { packageEntries } from './scripts/entries.mjs';

const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));
const entryPoints = { cli: 'src/cli/main.ts' };
for (const { name, source } of Object.values(packageEntries())) entryPoints[name] = source;

if (process.argv.includes('--clean')) rmSync('dist', { recursive: true, force: true });
const started = Date.now();

const result = await build({
  entryPoints,
  outdir: 'dist',
  bundle: true,
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  metafile: true,
  loader: { '.wgsl': 'text' },
  // Native addon (dawn.node) and the readers stay npm dependencies; gpu.js is a bench-only peer.
  external: [...Object.keys(pkg.dependencies ?? {}), 'gpu.js'],
  banner: { js: "import { createRequire as __lpoCreateRequire } from 'module'; const require = __lpoCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});

// Chunks of earlier builds pile up under new hashes: remove those this build did not write. Only ones older than
// two minutes, so that a build running at the same time in this tree (other test runs) keeps the chunks it wrote.
const written = new Set(Object.keys(result.metafile.outputs).map((p) => p.replace(/\\/g, '/')));
for (const f of readdirSync('dist/chunks', { withFileTypes: true })) {
  const p = `dist/chunks/${f.name}`;
  if (f.isFile() && !written.has(p) && statSync(p).mtimeMs < started - 120_000) rmSync(join('dist/chunks', f.name));
}
