// Standalone entry for the attention bench (bundled with esbuild for machines without npm/vitest):
//   npx esbuild bench/run-attention.ts --bundle --platform=node --format=esm --loader:.wgsl=text \
//     --external:webgpu --outfile=<dir>/bench-attention.mjs && node <dir>/bench-attention.mjs
import { runSuite } from './attention-suite.js';

runSuite({ write: process.env.LPO_BENCH_WRITE !== '0' }).then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
