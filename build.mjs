// Bundles the library and the CLI with esbuild. WGSL sources are imported as text.
import { build } from 'esbuild';

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  loader: { '.wgsl': 'text' },
  // dawn.node is a native addon: keep the package external. pngjs stays external too.
  external: ['webgpu', 'pngjs', 'gpu.js'],
  banner: { js: "import { createRequire as __lpoCreateRequire } from 'module'; const require = __lpoCreateRequire(import.meta.url);" },
  logLevel: 'warning',
};

await build({ ...common, entryPoints: { index: 'src/index.ts', cli: 'src/cli/main.ts' }, outdir: 'dist' });
