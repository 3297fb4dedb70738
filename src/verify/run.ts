// Runs the section runners over a reference folder, driven by its manifest.json.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile, type HostTensor } from '../io/safetensors.js';
import { Tensor } from '../tensor/tensor.js';
import { initGpu } from '../gpu/runtime.js';
import {
  checkSectionFiles, loadManifest, ReferenceDataError, sectionRules, toleranceFor,
  type Manifest, type ManifestTensor, type ResolvedFile, type Tolerance,
} from './manifest.js';
import type { Row, SectionContext, SectionRunner } from './types.js';

export interface VerifyOptions {
  /** Only these sections (others are not listed). */
  only?: string[];
  /** Use the guidance's looser "reasonable ceiling for a GPU with fast math" where it gives one. */
  gpuCeiling?: boolean;
  /** Progress lines (to stderr by the CLI). */
  log?: (msg: string) => void;
  /** Rethrow runner exceptions (for --debug) instead of reporting them as FAIL rows. */
  rethrow?: boolean;
}

export interface VerifyReport {
  root: string;
  rows: Row[];
  notes: string[];
  failed: number;
  passed: number;
  skipped: number;
}

export function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    const d = a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  if (!Number.isFinite(num)) return Infinity;
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    const e = b[i] === 0 ? Math.abs(a[i]) : Math.abs(a[i] / b[i] - 1);
    if (!(e <= m)) m = Number.isNaN(e) ? Infinity : e;
  }
  return m;
}

export function mismatches(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < b.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

function measure(got: ArrayLike<number>, ref: ArrayLike<number>, tol: Tolerance): { value: number; pass: boolean } {
  if (tol.metric === 'exact') {
    const v = mismatches(got, ref);
    return { value: v, pass: v === 0 };
  }
  const v = tol.metric === 'relL2' ? relL2(got, ref) : maxRelErr(got, ref);
  return { value: v, pass: Number.isFinite(v) && v < tol.tol };
}

const shapeStr = (s: readonly number[]) => `[${s.join(', ')}]`;

export async function verifyReference(root: string, runners: readonly SectionRunner[], opts: VerifyOptions = {}): Promise<VerifyReport> {
  const log = opts.log ?? (() => {});
  const manifest = loadManifest(root);
  const rows: Row[] = [];
  const notes: string[] = [];
  const sections = Object.keys(manifest.sections).filter((s) => !opts.only || opts.only.includes(s));
  if (opts.only) {
    const unknown = opts.only.filter((s) => !(s in manifest.sections));
    if (unknown.length) throw new ReferenceDataError(`section(s) ${unknown.join(', ')} not in ${join(root, 'manifest.json')} (it has ${Object.keys(manifest.sections).join(', ')})`);
  }
  // Every file the manifest lists (all sections: runners share files) must be there and intact before anything runs.
  const files = new Map<string, ResolvedFile>();
  for (const s of Object.keys(manifest.sections)) {
    for (const [rel, f] of checkSectionFiles(root, s, manifest.sections[s])) {
      files.set(rel, f);
      if (f.note) notes.push(f.note);
    }
  }
  const byName = new Map(runners.map((r) => [r.section, r]));
  if (sections.some((s) => byName.has(s))) await initGpu();
  const openFiles = new Map<string, SafetensorsFile>();
  try {
    for (const section of sections) {
      const runner = byName.get(section);
      if (!runner) {
        rows.push({ section, name: '(all)', metric: '-', value: null, tol: null, status: 'SKIPPED', note: 'not supported yet' });
        continue;
      }
      log(`${section}: ${runner.describe}`);
      const t0 = Date.now();
      const before = rows.length;
      const ctx = makeContext(root, section, manifest, files, openFiles, rows, opts, log);
      try {
        await runner.run(ctx);
      } catch (e) {
        if (opts.rethrow) throw e;
        rows.push({ section, name: '(runner)', metric: '-', value: null, tol: null, status: 'FAIL', note: `error: ${(e as Error).message ?? e}` });
      }
      // Results the manifest lists that this runner did not produce.
      const done = new Set(rows.slice(before).map((r) => r.name));
      for (const [name] of ctx.outputs()) {
        if (!done.has(name)) rows.push({ section, name, metric: '-', value: null, tol: null, status: 'SKIPPED', note: 'not computed' });
      }
      log(`${section}: done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
  } finally {
    for (const f of openFiles.values()) f.closeSync();
  }
  const count = (s: Row['status']) => rows.filter((r) => r.status === s).length;
  return { root, rows, notes, failed: count('FAIL'), passed: count('PASS'), skipped: count('SKIPPED') };
}

function makeContext(
  root: string, section: string, manifest: Manifest, files: Map<string, ResolvedFile>, openFiles: Map<string, SafetensorsFile>,
  rows: Row[], opts: VerifyOptions, log: (m: string) => void,
): SectionContext {
  const spec = manifest.sections[section];
  const rules = sectionRules(manifest, section);
  const tensors = spec.tensors ?? {};
  const file = (rel: string): string => {
    const f = files.get(rel);
    if (f) return f.path;
    throw new ReferenceDataError(`${join(root, rel)} is needed by section '${section}' but manifest.json does not list it`);
  };
  const sectionFile = (rel: string) => file(`${section}/${rel}`);
  const open = (rel: string) => {
    let f = openFiles.get(rel);
    if (!f) openFiles.set(rel, (f = SafetensorsFile.openSync(file(rel))));
    return f;
  };
  const entry = (name: string): ManifestTensor => {
    const t = tensors[name];
    if (!t) throw new ReferenceDataError(`manifest.json section '${section}' lists no tensor '${name}'`);
    return t;
  };
  const readFrom = async (relFile: string, key: string): Promise<HostTensor> => open(relFile).read(key);
  const tensor = async (name: string): Promise<HostTensor> => {
    const t = entry(name);
    const h = await readFrom(`${section}/${t.file}`, name);
    if (shapeStr(h.shape) !== shapeStr(t.shape)) throw new ReferenceDataError(`${section}/${t.file}: '${name}' has shape ${shapeStr(h.shape)}, manifest.json says ${shapeStr(t.shape)}`);
    return h;
  };
  const push = (r: Omit<Row, 'section'>) => rows.push({ section, ...r });
  return {
    root, section, spec, manifest, file, sectionFile,
    json<T>(rel: string): T {
      const p = sectionFile(rel);
      try {
        return JSON.parse(readFileSync(p, 'utf8')) as T;
      } catch (e) {
        throw new ReferenceDataError(`${p} is not valid JSON: ${(e as Error).message}`);
      }
    },
    outputs: () => Object.entries(tensors).filter(([, t]) => !/^inputs?\b/.test(t.file)),
    tensor,
    async gpuTensor(name: string) {
      const h = await tensor(name);
      return Tensor.fromArray(h.data, h.shape, h.data instanceof Int32Array ? 'i32' : 'f32');
    },
    readFrom,
    async produce(name, values, shape) {
      const t = entry(name);
      const tol = toleranceFor(rules, name, t.dtype, opts.gpuCeiling);
      if (shape && shapeStr(shape) !== shapeStr(t.shape)) {
        push({ name, metric: tol.metric, value: null, tol: tol.tol, status: 'FAIL', note: `shape ${shapeStr(shape)}, expected ${shapeStr(t.shape)}` });
        return;
      }
      const ref = (await tensor(name)).data;
      if (values.length !== ref.length) {
        push({ name, metric: tol.metric, value: null, tol: tol.tol, status: 'FAIL', note: `${values.length} values, expected ${ref.length}` });
        return;
      }
      const { value, pass } = measure(values, ref, tol);
      push({ name, metric: tol.metric, value, tol: tol.tol, status: pass ? 'PASS' : 'FAIL' });
    },
    compare(name, got, expected, tolerance) {
      const tol = tolerance && 'metric' in tolerance ? tolerance : toleranceFor(rules, name, tolerance?.dtype ?? 'float32', opts.gpuCeiling);
      if (got.length !== expected.length) {
        push({ name, metric: tol.metric, value: null, tol: tol.tol, status: 'FAIL', note: `${got.length} values, expected ${expected.length}` });
        return;
      }
      const { value, pass } = measure(got, expected, tol);
      push({ name, metric: tol.metric, value, tol: tol.tol, status: pass ? 'PASS' : 'FAIL' });
    },
    row: push,
    log: (m) => log(`${section}: ${m}`),
  };
}

/** The report as an aligned text table. */
export function formatReport(rep: VerifyReport): string {
  const fmt = (r: Row): string[] => {
    let value = '';
    if (r.value !== null) value = r.metric === 'exact' ? (r.value === 0 ? 'match' : `${r.value} differ`) : r.value.toExponential(2);
    const metric = r.metric === '-' ? '' : r.metric === 'maxRel' ? 'max rel err' : r.metric === 'relL2' ? 'relL2' : 'exact';
    const tol = r.tol === null || r.metric === 'exact' ? (r.metric === 'exact' ? 'exact' : '') : `< ${r.tol.toExponential(0)}`;
    return [r.section, r.name, metric, value, tol, r.status + (r.note ? ` (${r.note})` : '')];
  };
  const head = ['section', 'output', 'metric', 'value', 'tolerance', 'result'];
  const body = rep.rows.map(fmt);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => (i < 5 ? b[i].length : 0))));
  const line = (c: string[]) => c.map((x, i) => (i < 5 ? x.padEnd(w[i]) : x)).join('  ').trimEnd();
  const out = [line(head), line(w.map((n) => '-'.repeat(n))), ...body.map(line)];
  out.push('', `${rep.passed} passed, ${rep.failed} failed, ${rep.skipped} skipped`);
  return out.join('\n');
}
