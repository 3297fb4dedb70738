// Property-based fuzzing of the file readers (issue 13): each target turns fast-check's generated inputs into
// a file (or folder), runs the real reader on it, and demands one of two outcomes — the reader accepts it, or
// it throws a FileFormatError that names the file. Anything else (a TypeError, a RangeError, a plain Error, a
// crash, a case slower than the per-case limit) fails the property, and fast-check shrinks it to a small input.
// test/fuzz.test.ts runs a few hundred cases per reader; scripts/fuzz.ts runs ≥ 10,000 (`npm run fuzz`).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import fc from 'fast-check';
import { FileFormatError } from '../src/errors.js';

export interface FuzzCase<T> {
  arb: fc.Arbitrary<T>;
  /** Writes the input and runs the reader on it; resolves when the reader accepted it. */
  run(input: T): Promise<void> | void;
  /** The file (or folder) name every rejection must mention. */
  names: string;
  /** Other typed rejections this reader may give (e.g. a StateDictError naming the weights file). */
  alsoTyped?(e: unknown): boolean;
  dispose?(): void | Promise<void>;
}

export interface FuzzTarget {
  name: string;
  /** Builds fixtures under `work` (a fresh folder) and returns the case. */
  setup(work: string): Promise<FuzzCase<any>> | FuzzCase<any>;
}

export interface FuzzCounts {
  reader: string;
  runs: number;
  accepted: number;
  rejected: number;
  /** Rejections by error class. */
  errors: Record<string, number>;
  worstMs: number;
  seconds: number;
}

export interface FuzzOptions {
  numRuns: number;
  seed?: number;
  /** A case slower than this fails the property (async cases are also cut off by fast-check's timeout). */
  caseTimeoutMs?: number;
  /** Called every 1,000 cases with the counts so far (long runs). */
  onProgress?: (c: FuzzCounts) => void;
}

/** A rejection that counts as handled: a FileFormatError (or subclass) whose message names the file. */
export function isTypedRejection(e: unknown, names: string): boolean {
  return e instanceof FileFormatError && e.message.includes(names);
}

export async function fuzzReader(target: FuzzTarget, work: string, opts: FuzzOptions): Promise<FuzzCounts> {
  const dir = path.join(work, target.name.replace(/[^a-z0-9]+/gi, '_'));
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const c = await target.setup(dir);
  const limit = opts.caseTimeoutMs ?? 10_000;
  const counts: FuzzCounts = { reader: target.name, runs: 0, accepted: 0, rejected: 0, errors: {}, worstMs: 0, seconds: 0 };
  const t0 = performance.now();
  try {
    const r = await fc.check(
      fc.asyncProperty(c.arb, async (input) => {
        const s = performance.now();
        counts.runs++;
        try {
          await c.run(input);
          counts.accepted++;
        } catch (e) {
          if (!isTypedRejection(e, c.names) && !c.alsoTyped?.(e)) {
            const what = e instanceof Error ? `${e.constructor.name}: ${e.message.slice(0, 300)}` : String(e);
            throw new Error(`untyped rejection (${what})`, { cause: e });
          }
          counts.rejected++;
          const k = (e as Error).constructor.name;
          counts.errors[k] = (counts.errors[k] ?? 0) + 1;
        }
        const ms = performance.now() - s;
        counts.worstMs = Math.max(counts.worstMs, ms);
        if (counts.runs % 1000 === 0) opts.onProgress?.(counts);
        if (ms > limit) throw new Error(`one case took ${ms.toFixed(0)} ms (limit ${limit})`);
      }),
      { numRuns: opts.numRuns, seed: opts.seed, timeout: limit, endOnFailure: true, maxSkipsPerRun: 0 },
    );
    if (r.failed) {
      // The counterexample can be megabytes: keep it in a file and say where, with fast-check's replay values.
      const saved = path.join(work, `failure-${path.basename(dir)}.json`);
      fs.writeFileSync(saved, JSON.stringify(r.counterexample, (_, v) => (v instanceof Uint8Array ? { bytes: Buffer.from(v).toString('base64') } : v)));
      const err = r.errorInstance instanceof Error ? r.errorInstance : new Error(String(r.errorInstance));
      throw new Error(`${target.name}: ${err.message} — counterexample in ${saved} (replay: seed ${r.seed}, path "${r.counterexamplePath}")`, { cause: err });
    }
  } finally {
    counts.seconds = (performance.now() - t0) / 1000;
    await c.dispose?.();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return counts;
}

export function formatCounts(rows: readonly FuzzCounts[]): string {
  const head = ['reader', 'cases', 'accepted', 'rejected (typed)', 'worst ms', 'seconds', 'rejections by class'];
  const body = rows.map((r) => [r.reader, String(r.runs), String(r.accepted), String(r.rejected), r.worstMs.toFixed(0), r.seconds.toFixed(1),
    Object.entries(r.errors).map(([k, v]) => `${k} ${v}`).join(', ')]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  return [head, ...body].map((r) => r.map((x, i) => (i === r.length - 1 ? x : x.padEnd(w[i]))).join('  ')).join('\n');
}

// ---- byte-level mutations shared by the targets ------------------------------------------------------------

/** A file that is `base` as is, truncated, with a few bytes changed, with bytes inserted, or random bytes. */
export function mutatedBytes(base: Uint8Array, maxRandom = 512): fc.Arbitrary<Uint8Array> {
  const n = base.length;
  return fc.oneof(
    { weight: 1, arbitrary: fc.constant(base) },
    { weight: 3, arbitrary: fc.nat(Math.max(0, n - 1)).map((k) => base.slice(0, k)) },
    { weight: 4, arbitrary: fc.array(fc.tuple(fc.nat(Math.max(0, n - 1)), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }).map((fl) => {
      const b = base.slice();
      for (const [i, v] of fl) b[i] = v;
      return b;
    }) },
    { weight: 1, arbitrary: fc.tuple(fc.nat(n), fc.uint8Array({ minLength: 1, maxLength: 64 })).map(([at, ins]) => {
      const b = new Uint8Array(n + ins.length);
      b.set(base.subarray(0, at));
      b.set(ins, at);
      b.set(base.subarray(at), at + ins.length);
      return b;
    }) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: maxRandom }) },
  );
}

/** A JSON value of any kind, small: what a malformed field may hold instead of the right type. */
export const anyJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null), fc.boolean(), fc.integer({ min: -5, max: 1 << 20 }), fc.double({ noNaN: true }), fc.constantFrom(-1, 0, 1, 0.5, 1e308, -1e-300, 2 ** 53),
  fc.string({ maxLength: 8 }), fc.array(fc.integer({ min: -2, max: 9 }), { maxLength: 4 }), fc.constant({}), fc.constant([]),
);

/** Bytes that are not UTF-8 (a lone continuation byte, an overlong form, a surrogate, 0xff). */
export const notUtf8: fc.Arbitrary<Uint8Array> = fc.constantFrom(
  new Uint8Array([0x80]), new Uint8Array([0xc0, 0xaf]), new Uint8Array([0xed, 0xa0, 0x80]), new Uint8Array([0xff, 0xfe]), new Uint8Array([0xe2, 0x82]),
);
