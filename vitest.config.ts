import { readFileSync } from 'node:fs';
import { defineConfig, type Plugin } from 'vitest/config';

// Imports `.wgsl` files as text, as esbuild's text loader does for the bundle.
function wgslText(): Plugin {
  return {
    name: 'wgsl-text',
    enforce: 'pre',
    load(id) {
      if (!id.endsWith('.wgsl')) return null;
      return `export default ${JSON.stringify(readFileSync(id, 'utf8'))};`;
    },
  };
}

export default defineConfig({
  plugins: [wgslText()],
  test: {
    include: ['test/**/*.test.ts'],
    // One Dawn device per worker; lavapipe already uses every core, so run files one at a time, each in a
    // fresh process: lavapipe maps memory for every descriptor set and buffer it ever allocated, and one
    // process running the whole suite reaches the kernel's vm.max_map_count (65530) and segfaults.
    pool: 'forks',
    poolOptions: { forks: { singleFork: false, minForks: 1, maxForks: 1, isolate: true } },
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    benchmark: { include: ['bench/**/*.bench.ts'] },
  },
});
