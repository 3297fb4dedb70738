// Captions of the toy world, from templates: counts ("a red circle", "two red circles", "three red circles")
// and relations ("a blue square left of a yellow triangle", right of, above, below). A caption parses into a
// CaptionSpec; the prompt space is enumerable, and split into a training part and a held-out part that no
// preference data or LPO run may see (the held-out part also holds each held-out relation's mirror image,
// "B right of A" for "A left of B", so the same scene is never trained under another wording).
// Pre-training sees the whole space, as SD's web data saw every kind of caption.
import { ArgumentError } from '../errors.js';
import { Generator } from '../tensor/random.js';
import { COLOURS, SHAPES, pick, randInt, sampleScene, type Colour, type ObjectSpec, type Scene, type SceneObject, type Shape } from './scenes.js';

export const RELATIONS = ['left of', 'right of', 'above', 'below'] as const;
export type Relation = (typeof RELATIONS)[number];
export const NUMBER_WORDS = ['a', 'two', 'three'] as const;

export type CaptionSpec =
  | { kind: 'count'; n: 1 | 2 | 3; colour: Colour; shape: Shape }
  | { kind: 'relation'; a: ObjectSpec; relation: Relation; b: ObjectSpec };

export class CaptionError extends ArgumentError {}

export function captionText(spec: CaptionSpec): string {
  if (spec.kind === 'count') {
    return spec.n === 1 ? `a ${spec.colour} ${spec.shape}` : `${NUMBER_WORDS[spec.n - 1]} ${spec.colour} ${spec.shape}s`;
  }
  return `a ${spec.a.colour} ${spec.a.shape} ${spec.relation} a ${spec.b.colour} ${spec.b.shape}`;
}

const C = COLOURS.join('|');
const S = SHAPES.join('|');
const COUNT_RE = new RegExp(`^(a|two|three) (${C}) (${S})(s?)$`);
const REL_RE = new RegExp(`^a (${C}) (${S}) (left of|right of|above|below) a (${C}) (${S})$`);

/** Parses a caption of the templates (case and surrounding spaces ignored); throws CaptionError otherwise. */
export function parseCaption(text: string): CaptionSpec {
  const t = text.trim().toLowerCase().replace(/\s+/g, ' ');
  const m = COUNT_RE.exec(t);
  if (m) {
    const n = (NUMBER_WORDS.indexOf(m[1] as (typeof NUMBER_WORDS)[number]) + 1) as 1 | 2 | 3;
    if ((n === 1) !== (m[4] === '')) throw new CaptionError(`caption '${text}': number and plural disagree`);
    return { kind: 'count', n, colour: m[2] as Colour, shape: m[3] as Shape };
  }
  const r = REL_RE.exec(t);
  if (r) {
    const a = { colour: r[1] as Colour, shape: r[2] as Shape };
    const b = { colour: r[4] as Colour, shape: r[5] as Shape };
    if (a.colour === b.colour && a.shape === b.shape) throw new CaptionError(`caption '${text}': a relation between two identical objects`);
    return { kind: 'relation', a, relation: r[3] as Relation, b };
  }
  throw new CaptionError(`caption '${text}' is not one of the toy templates ("two red circles", "a red circle left of a blue square")`);
}

/** The objects a caption asks for (a relation's first object first). */
export function expectedObjects(spec: CaptionSpec): ObjectSpec[] {
  return spec.kind === 'count' ? Array.from({ length: spec.n }, () => ({ colour: spec.colour, shape: spec.shape })) : [spec.a, spec.b];
}

/** The same relation seen from the other object ("B right of A" for "A left of B"). */
export function mirror(spec: CaptionSpec): CaptionSpec {
  if (spec.kind !== 'relation') return spec;
  const inv: Record<Relation, Relation> = { 'left of': 'right of', 'right of': 'left of', above: 'below', below: 'above' };
  return { kind: 'relation', a: spec.b, relation: inv[spec.relation], b: spec.a };
}

/** Signed separation along the relation's axis: positive when `a` is `relation` of `b` (pixels). */
export function relationMargin(relation: Relation, a: { cx: number; cy: number }, b: { cx: number; cy: number }): number {
  switch (relation) {
    case 'left of': return b.cx - a.cx;
    case 'right of': return a.cx - b.cx;
    case 'above': return b.cy - a.cy;
    case 'below': return a.cy - b.cy;
  }
}

/** The off-axis separation (|dy| for left/right, |dx| for above/below). */
export function offAxis(relation: Relation, a: { cx: number; cy: number }, b: { cx: number; cy: number }): number {
  return relation === 'left of' || relation === 'right of' ? Math.abs(a.cy - b.cy) : Math.abs(a.cx - b.cx);
}

/** Training scenes make relations unmistakable: this much separation on the axis, and more than off it. */
export const SCENE_RELATION_MARGIN = 4;

/** A random scene that the caption describes exactly (the pre-training data and the judge's tests). */
export function sceneForCaption(gen: Generator, spec: CaptionSpec): Scene {
  const objs = expectedObjects(spec);
  if (spec.kind === 'count') return sampleScene(gen, objs);
  return sampleScene(gen, objs, (p: readonly SceneObject[]) => {
    const m = relationMargin(spec.relation, p[0], p[1]);
    return m >= SCENE_RELATION_MARGIN && m > offAxis(spec.relation, p[0], p[1]);
  });
}

// ---------------------------------------------------------------------------------------------------------
// The prompt space and its split

/** Every caption of the templates: 36 counts and 528 relations (ordered pairs of different objects × 4). */
export function allCaptions(): string[] {
  const out: string[] = [];
  const objs: ObjectSpec[] = COLOURS.flatMap((colour) => SHAPES.map((shape) => ({ colour, shape })));
  for (const n of [1, 2, 3] as const) for (const o of objs) out.push(captionText({ kind: 'count', n, ...o }));
  for (const a of objs) {
    for (const b of objs) {
      if (a.colour === b.colour && a.shape === b.shape) continue;
      for (const relation of RELATIONS) out.push(captionText({ kind: 'relation', a, relation, b }));
    }
  }
  return out;
}

/**
 * The evaluation prompts, in order: every colour, shape, count 1–3 and relation is covered by the first 16
 * (the demo's default). Never used for preference pairs or LPO training.
 */
export const HELD_OUT_PROMPTS: readonly string[] = [
  'a red circle',
  'a blue square',
  'a yellow triangle',
  'two green triangles',
  'two yellow circles',
  'two blue squares',
  'three red squares',
  'three green circles',
  'a red square left of a blue circle',
  'a green circle left of a yellow square',
  'a yellow triangle right of a red circle',
  'a blue triangle right of a green square',
  'a blue circle above a yellow triangle',
  'a green square above a red triangle',
  'a red triangle below a green circle',
  'a yellow square below a blue triangle',
];

export type PromptSplit = 'train' | 'heldout';

let splitCache: { train: string[]; heldout: string[] } | null = null;

/** The prompt space split in two: held-out = HELD_OUT_PROMPTS and their mirrors; train = the rest. */
export function promptSplit(): { train: readonly string[]; heldout: readonly string[] } {
  if (!splitCache) {
    const held = new Set<string>();
    for (const p of HELD_OUT_PROMPTS) {
      held.add(p);
      held.add(captionText(mirror(parseCaption(p))));
    }
    const all = allCaptions();
    splitCache = { train: all.filter((c) => !held.has(c)), heldout: all.filter((c) => held.has(c)) };
  }
  return splitCache;
}

export function isHeldOut(caption: string): boolean {
  return promptSplit().heldout.includes(captionText(parseCaption(caption)));
}

export interface PromptSamplerOptions {
  /** Which part of the space to draw from (default 'train'); 'all' for pre-training. */
  split?: PromptSplit | 'all';
  /** Probability of a count caption (else a relation); default 0.5. Counts 1, 2, 3 are equally likely. */
  countFraction?: number;
}

/**
 * Draws a caption: first its kind (count or relation), then uniformly within the kind, so the 36 count
 * captions are not swamped by the 528 relations.
 */
export function samplePrompt(gen: Generator, opts: PromptSamplerOptions = {}): string {
  const split = opts.split ?? 'train';
  const countFraction = opts.countFraction ?? 0.5;
  const pool = split === 'all' ? null : new Set(promptSplit()[split]);
  for (let i = 0; i < 10_000; i++) {
    let spec: CaptionSpec;
    if (gen.uniform() < countFraction) {
      spec = { kind: 'count', n: (randInt(gen, 3) + 1) as 1 | 2 | 3, colour: pick(gen, COLOURS), shape: pick(gen, SHAPES) };
    } else {
      const a = { colour: pick(gen, COLOURS), shape: pick(gen, SHAPES) };
      const b = { colour: pick(gen, COLOURS), shape: pick(gen, SHAPES) };
      if (a.colour === b.colour && a.shape === b.shape) continue;
      spec = { kind: 'relation', a, relation: pick(gen, RELATIONS), b };
    }
    const text = captionText(spec);
    if (!pool || pool.has(text)) return text;
  }
  throw new CaptionError(`samplePrompt: no caption found in split '${split}'`);
}
