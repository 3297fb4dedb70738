// The one state-dict check: which checkpoint key feeds which parameter, and what is missing, unexpected or
// wrong-shaped, each by name. Module.checkStateDict / loadStateDict use it; io's loaders go through those.
//
// Key names are the model's business, so modules declare them (CheckpointKeys, relative to the module):
// older names (the VAE's query/key/value/proj_attn), buffers checkpoints carry and the model rebuilds (CLIP's
// position_ids), 1×1-conv shapes stored for Linear weights. A declaration applies to the keys under the
// module that makes it, so a model that contains a VAE or a text encoder inherits their rules.
import { LpoError } from '../errors.js';

/** What a state dict is read from: a safetensors file, a sharded set, or anything shaped like them. */
export interface StateDictReader {
  /** Named in errors when present (the file path). */
  readonly path?: string;
  keys(): Iterable<string>;
  info(key: string): { shape: readonly number[]; dtype?: string };
  readF32(key: string): Float32Array | Promise<Float32Array>;
}

/** How a module's checkpoints name its parameters; every key is relative to the declaring module. */
export interface CheckpointKeys {
  /** A checkpoint key → the module's key (older names to current ones). Applied before everything else. */
  rename?(key: string): string;
  /** Checkpoint keys (after renaming) that are accepted and not loaded when the module has no such parameter. */
  ignore?(key: string): boolean;
  /** Accept an [o, i, 1, 1] tensor for an [o, i] parameter (1×1 convs stored for Linear weights). */
  squeeze1x1?: boolean;
}

export interface ShapeMismatch { key: string; expected: number[]; got: number[] }

/** The result of comparing a source with a module: every problem by name, and the keys dropped on purpose. */
export interface StateDictReport {
  /** Parameters the source lacks (model key names). */
  missing: string[];
  /** Source keys that match no parameter (source key names; a rename or a duplicate is said in brackets). */
  unexpected: string[];
  /** Parameters whose source tensor has another shape (model key names). */
  wrongShape: ShapeMismatch[];
  /** Source keys accepted and not loaded (a declared `ignore`). */
  ignored: string[];
}

/** Missing, unexpected and wrong-shaped keys, all named in one error. */
export class StateDictError extends LpoError implements Omit<StateDictReport, 'ignored'> {
  readonly missing: string[];
  readonly unexpected: string[];
  readonly wrongShape: ShapeMismatch[];

  constructor(report: Omit<StateDictReport, 'ignored'>, what = 'loadStateDict') {
    const parts: string[] = [];
    const list = (xs: string[]) => (xs.length > 12 ? `${xs.slice(0, 12).join(', ')}, … (${xs.length} in all)` : xs.join(', '));
    if (report.missing.length) parts.push(`missing keys: ${list(report.missing)}`);
    if (report.unexpected.length) parts.push(`unexpected keys: ${list(report.unexpected)}`);
    if (report.wrongShape.length) parts.push(`wrong shapes: ${list(report.wrongShape.map((m) => `${m.key} [${m.got}] (expected [${m.expected}])`))}`);
    super(`${what}: ${parts.join('; ')}. Check that the checkpoint matches the model config (and the key prefix).`);
    this.missing = report.missing;
    this.unexpected = report.unexpected;
    this.wrongShape = report.wrongShape;
  }
}

/** A source key's shape, or only its element count (a flat Float32Array carries no shape). */
export type SourceShape = { shape: readonly number[] } | { count: number };

export interface StateDictPlan {
  report: StateDictReport;
  /** Model key → source key, for every parameter present in the source (right shape or not). */
  sources: Map<string, string>;
}

/**
 * Matches source keys to parameters under the declared rules (`rules` in pre-order, outer modules first, each
 * with the dotted prefix of its module; '' for the root).
 */
export function planStateDict(
  params: ReadonlyMap<string, { readonly shape: readonly number[] }>,
  sourceKeys: Iterable<string>,
  sourceShape: (key: string) => SourceShape,
  rules: readonly (readonly [prefix: string, keys: CheckpointKeys])[],
): StateDictPlan {
  const under = (key: string, prefix: string) => prefix === '' || key.startsWith(`${prefix}.`);
  const rel = (key: string, prefix: string) => (prefix === '' ? key : key.slice(prefix.length + 1));
  const sources = new Map<string, string>();
  const squeeze = new Set<string>();
  const unexpected: string[] = [];
  const ignored: string[] = [];
  for (const src of sourceKeys) {
    let key = src;
    for (const [prefix, r] of rules) {
      if (r.rename && under(key, prefix)) key = prefix === '' ? r.rename(key) : `${prefix}.${r.rename(rel(key, prefix))}`;
    }
    const applying = rules.filter(([prefix]) => under(key, prefix));
    if (!params.has(key)) {
      if (applying.some(([prefix, r]) => r.ignore?.(rel(key, prefix)))) ignored.push(src);
      else unexpected.push(key === src ? src : `${src} (as ${key})`);
      continue;
    }
    if (sources.has(key)) {
      unexpected.push(`${src} (duplicate of ${key})`);
      continue;
    }
    sources.set(key, src);
    if (applying.some(([, r]) => r.squeeze1x1)) squeeze.add(key);
  }
  const missing = [...params.keys()].filter((k) => !sources.has(k));
  const wrongShape: ShapeMismatch[] = [];
  for (const [key, src] of sources) {
    const want = params.get(key)!.shape;
    const s = sourceShape(src);
    if ('count' in s) {
      if (s.count !== want.reduce((a, b) => a * b, 1)) wrongShape.push({ key, expected: [...want], got: [s.count] });
      continue;
    }
    const got = s.shape;
    const same = got.length === want.length && got.every((d, i) => d === want[i]);
    const squeezed = squeeze.has(key) && want.length === 2 && got.length === 4 && got[2] === 1 && got[3] === 1 && got[0] === want[0] && got[1] === want[1];
    if (!same && !squeezed) wrongShape.push({ key, expected: [...want], got: [...got] });
  }
  return { report: { missing, unexpected, wrongShape, ignored }, sources };
}
