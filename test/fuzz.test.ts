// The CI-sized fuzz run (issue 13): a few hundred generated malformed inputs per reader, each either accepted or
// rejected with a FileFormatError naming the file (test/fuzz-harness.ts). `npm run fuzz` runs ≥ 10,000 per reader.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupGpu } from './helpers.js';
import { formatCounts, fuzzReader, type FuzzCounts } from './fuzz-harness.js';
import { FUZZ_TARGETS } from './fuzz-targets.js';

// Runs per reader: a few hundred, fewer where one case costs more (a parquet pass starts a parser worker; a
// tokenizer whose merges count is right builds the whole vocabulary).
const RUNS: Record<string, number> = { parquet: 40, 'tokenizer merges': 120, 'prompt file': 150 };
const DEFAULT_RUNS = 200;
const work = mkdtempSync(join(tmpdir(), 'lpo-fuzz-'));
const results: FuzzCounts[] = [];
beforeAll(setupGpu);
afterAll(() => {
  console.log(formatCounts(results));
  rmSync(work, { recursive: true, force: true });
});

describe('fuzzed readers reject malformed files with a typed error naming the file', () => {
  for (const t of FUZZ_TARGETS) {
    it(t.name, async () => {
      const c = await fuzzReader(t, work, { numRuns: RUNS[t.name] ?? DEFAULT_RUNS, seed: 20261206, caseTimeoutMs: 10_000 });
      results.push(c);
      expect(c.runs).toBe(RUNS[t.name] ?? DEFAULT_RUNS);
      expect(c.rejected).toBeGreaterThan(0); // the cases do attack the reader
    });
  }
});
