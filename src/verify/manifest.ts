// The reference folder's manifest.json: sections, files (size + sha256), tensors and tolerance guidance.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LpoError } from '../errors.js';

/** The reference folder is missing, incomplete or corrupted. */
export class ReferenceDataError extends LpoError {}

export interface ManifestFile { sha256?: string; bytes?: number }
export interface ManifestTensor {
  file: string;
  dtype: string;
  shape: number[];
  meaning?: string;
  rel_l2_f32_vs_f64?: number;
}
export interface ManifestSection {
  files?: Record<string, ManifestFile>;
  tensors?: Record<string, ManifestTensor>;
  [k: string]: unknown;
}
export interface Manifest {
  sections: Record<string, ManifestSection>;
  tolerance_guidance?: Record<string, unknown>;
  [k: string]: unknown;
}

export function loadManifest(root: string): Manifest {
  const path = join(root, 'manifest.json');
  if (!existsSync(root)) throw new ReferenceDataError(`reference folder ${root} does not exist`);
  if (!existsSync(path)) throw new ReferenceDataError(`${path} is missing (verify-reference is driven by the folder's manifest.json)`);
  let m: Manifest;
  try {
    m = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ReferenceDataError(`${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (!m || typeof m !== 'object' || !m.sections || typeof m.sections !== 'object') {
    throw new ReferenceDataError(`${path} has no "sections" object`);
  }
  return m;
}

/** Candidate folders of bundled assets (the package's assets/), found by walking up from this module. */
function assetDirs(): string[] {
  const out: string[] = [];
  let d: string;
  try {
    d = dirname(fileURLToPath(import.meta.url));
  } catch {
    return out;
  }
  for (let i = 0; i < 5; i++) {
    const a = join(d, 'assets');
    if (existsSync(a)) out.push(a);
    d = dirname(d);
  }
  return out;
}

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

export interface ResolvedFile { rel: string; path: string; note?: string }

/**
 * Checks every file a section lists (present, byte count, sha256) and returns where each one is.
 * A file absent from the folder may be served by a bundled asset of the same name and the same sha256
 * (the CLIP BPE vocabulary ships in assets/). Anything else throws a ReferenceDataError naming the file.
 */
export function checkSectionFiles(root: string, section: string, spec: ManifestSection): Map<string, ResolvedFile> {
  const out = new Map<string, ResolvedFile>();
  for (const [rel, f] of Object.entries(spec.files ?? {})) {
    let path = resolve(root, rel);
    let note: string | undefined;
    if (!existsSync(path)) {
      const base = rel.split('/').pop()!;
      const alt = assetDirs().map((d) => join(d, base)).find((p) => existsSync(p) && (!f.sha256 || sha256File(p) === f.sha256));
      if (!alt) throw new ReferenceDataError(`${join(root, rel)} is missing (listed in manifest.json, section '${section}')`);
      path = alt;
      note = `${rel} from bundled ${alt}`;
    }
    const st = statSync(path);
    if (!st.isFile()) throw new ReferenceDataError(`${path} is not a file (section '${section}')`);
    if (f.bytes !== undefined && st.size !== f.bytes) {
      throw new ReferenceDataError(`${path} has ${st.size} bytes, manifest.json says ${f.bytes}: the reference data is corrupted or truncated`);
    }
    if (f.sha256) {
      const h = sha256File(path);
      if (h !== f.sha256) throw new ReferenceDataError(`${path}: sha256 ${h.slice(0, 12)}… does not match manifest.json (${f.sha256.slice(0, 12)}…): the reference data is corrupted`);
    }
    out.set(rel, { rel, path, note });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Tolerance guidance: free text per section ("timesteps exact; alphas_cumprod elementwise relative error
// < 1e-6; step / add_noise outputs rel L2 < 1e-5"). Parsed into rules that match tensors by name.

export type Metric = 'exact' | 'relL2' | 'maxRel';

export interface ToleranceRule {
  metric: Metric;
  tol: number;
  /** Where given: a looser bound the guidance calls reasonable for GPUs with fast math. */
  ceiling?: number;
  /** Name patterns (lower-case; `*` a wildcard segment) the clause is about; empty = the section default. */
  subjects: string[];
  /** The clause says "integer outputs". */
  integers: boolean;
  text: string;
}

export interface Tolerance { metric: Metric; tol: number; rule: string }

const NUM = String.raw`(\d+(?:\.\d+)?(?:e[-+]?\d+)?)`;
const STOP = new Set(['and', 'the', 'for', 'of', 'per', 'all', 'outputs', 'output', 'tensor', 'tensors', 'results', 'its', 'their', 'including', 'a', 'an']);

/** Splits on ';' outside parentheses and returns [clause without parentheticals, parentheticals]. */
function clauses(text: string): { main: string; paren: string }[] {
  const out: { main: string; paren: string }[] = [];
  let depth = 0;
  let main = '';
  let paren = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ';' && depth === 0) {
      out.push({ main, paren });
      main = '';
      paren = '';
      continue;
    }
    if (depth > 0) paren += ch;
    else main += ch;
    if (ch === ')') depth = Math.max(0, depth - 1);
  }
  out.push({ main, paren });
  return out.filter((c) => c.main.trim());
}

export function parseGuidance(text: string, extraSubject?: string): ToleranceRule[] {
  const rules: ToleranceRule[] = [];
  for (const { main, paren } of clauses(text)) {
    const m = main.replace(/\s+/g, ' ').trim();
    let metric: Metric | null = null;
    let tol = 0;
    let at = -1;
    const rel = new RegExp(String.raw`rel(?:ative)?\s*L2[^<]*<\s*${NUM}`, 'i').exec(m);
    const elem = new RegExp(String.raw`(?:elementwise\s+)?relative error[^<]*<\s*${NUM}`, 'i').exec(m);
    const exact = /\bexact/i.exec(m);
    if (rel) { metric = 'relL2'; tol = Number(rel[1]); at = rel.index; }
    else if (elem) { metric = 'maxRel'; tol = Number(elem[1]); at = elem.index; }
    else if (exact) { metric = 'exact'; at = exact.index; }
    if (!metric) continue;
    const ceilM = new RegExp(String.raw`${NUM}\s+is a reasonable ceiling`, 'i').exec(paren) ?? new RegExp(String.raw`allow(?: up to)?\s+${NUM}`, 'i').exec(paren);
    const head = m.slice(0, at).toLowerCase();
    const integers = /\binteger/.test(head);
    const subjects = head
      .split(/[\s,/]+/)
      .map((w) => w.replace(/[^a-z0-9_.*-]/g, ''))
      .filter((w) => w && !STOP.has(w) && !/^integer/.test(w));
    if (extraSubject) subjects.push(extraSubject.toLowerCase());
    rules.push({ metric, tol, ceiling: ceilM ? Number(ceilM[1]) : undefined, subjects, integers, text: m });
  }
  return rules;
}

/** The rules that apply to a section: keys naming it ("text_encoder, unet, vae") and sub-keys ("unet down_block_res_samples"). */
export function sectionRules(manifest: Manifest, section: string): ToleranceRule[] {
  const g = manifest.tolerance_guidance ?? {};
  const rules: ToleranceRule[] = [];
  for (const [key, val] of Object.entries(g)) {
    if (typeof val !== 'string') continue;
    const names = key.split(/\s*,\s*/);
    if (names.includes(section)) rules.push(...parseGuidance(val));
    else if (key.startsWith(`${section} `)) rules.push(...parseGuidance(val, key.slice(section.length + 1).trim()));
  }
  return rules;
}

function subjectMatches(subject: string, name: string): boolean {
  const n = name.toLowerCase();
  const variants = new Set([subject, subject.replace(/s$/, ''), subject.replace(/-/g, '_'), subject.replace(/-/g, '_').replace(/s$/, '')]);
  for (const v of variants) {
    if (!v) continue;
    if (v.includes('*')) {
      const re = new RegExp(`^${v.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}`);
      if (re.test(n)) return true;
      continue;
    }
    if (n.split('.').some((s) => s === v)) return true;
  }
  return false;
}

/**
 * The tolerance for one tensor: integers exact; else the clause naming it, else the section's general
 * clause, else the strictest relL2 clause, else relL2 < 1e-4 (the README's default). `useCeiling` takes the
 * looser GPU bound where the guidance gives one.
 */
export function toleranceFor(rules: ToleranceRule[], name: string, dtype: string, useCeiling = false): Tolerance {
  const isInt = /int|i64|i32/i.test(dtype);
  const pick = (r: ToleranceRule): Tolerance => ({
    metric: r.metric,
    tol: useCeiling && r.ceiling !== undefined ? r.ceiling : r.tol,
    rule: r.text,
  });
  if (isInt) {
    const r = rules.find((x) => x.integers || x.metric === 'exact');
    return { metric: 'exact', tol: 0, rule: r ? r.text : 'integers: exact' };
  }
  // the most specific clause: the longest subject that matches
  let best: ToleranceRule | null = null;
  let bestLen = -1;
  for (const r of rules) {
    if (r.integers) continue;
    for (const s of r.subjects) {
      if (subjectMatches(s, name) && s.length > bestLen) {
        best = r;
        bestLen = s.length;
      }
    }
  }
  if (best) return pick(best);
  const general = rules.find((r) => r.subjects.length === 0 && !r.integers && r.metric !== 'exact');
  if (general) return pick(general);
  const relRules = rules.filter((r) => r.metric === 'relL2');
  if (relRules.length) return pick(relRules.reduce((a, b) => (b.tol < a.tol ? b : a)));
  return { metric: 'relL2', tol: 1e-4, rule: 'default rel L2 < 1e-4 (no guidance in manifest.json)' };
}
