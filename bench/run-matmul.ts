// Standalone entry for the matmul suite (bundled with esbuild for machines without npm/vitest):
//   node build-bench.mjs && node dist/bench-matmul.mjs
import { runSuite } from './matmul-suite.js';

runSuite().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
