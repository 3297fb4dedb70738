// The hidden "human" of the toy world: it looks at pixels only (segment.ts) and says how well an image matches
// its caption and how pleasing it is. No model, trainer or reward model may import this code: it stands for the
// people who label Pick-a-Pic, whose judgement the LRM has to learn from labelled pairs alone.
//
// Rules.
// Alignment (from the detected objects: palette-coloured components of ≥ MIN_OBJECT_AREA pixels, each with a
// shape from its mask, and its bounding-box centre):
//   - match (the "toy GenEval" verdict): exactly the caption's objects and nothing else — for "two red circles"
//     exactly two objects, both red circles; for "A left of B" exactly two objects, one A and one B, with A's
//     centre more than RELATION_MARGIN pixels left of B's (right of / above / below alike).
//   - score (graded, "CLIP-like"): the best assignment of caption objects to detected objects, each giving half
//     credit for its colour and half for its shape, averaged; relations weigh the objects 3/4 and the relation
//     (between the assigned objects) 1/4; each object beyond the caption's count costs 1/4. In [0, 1]; a match
//     scores 1.
//   - vqa ("VQA-like"): the share of yes answers to the caption's questions — for counts: is there something
//     of the colour, something of the shape, an object of both, exactly n of them, nothing else; for relations:
//     is there an A, a B, an A in the relation to a B, exactly two objects.
// Aesthetics (each part in [0, 1]; the score is 0.3·contrast + 0.25·centring + 0.2·crispness + 0.25·cleanliness):
//   - contrast: the objects' mean luminance difference from the background, full marks at 0.4;
//   - centring: the area-weighted centre of the objects near the image centre; objects touching the border lose;
//   - crispness: few soft (neither background nor colour) pixels along the objects' outlines;
//   - cleanliness: no specks, no stray soft pixels away from objects, a flat background, at most three objects.
// An image without objects gets alignment 0 and loses contrast and centring.
import { ArgumentError } from '../../errors.js';
import { expectedObjects, parseCaption, relationMargin, type CaptionSpec } from '../captions.js';
import { IMAGE_SIZE, type ObjectSpec } from '../scenes.js';
import { LABEL_SOFT, segment, type Blob, type Segmentation } from './segment.js';

/** A relation holds when the centres are this many pixels apart along its axis. */
export const RELATION_MARGIN = 2;
/** Detected objects looked at when assigning caption objects (the largest ones). */
const MAX_CANDIDATES = 6;

export interface Alignment {
  match: boolean;
  /** Graded, "CLIP-like", in [0, 1]. */
  score: number;
  /** Share of yes answers, "VQA-like", in [0, 1]. */
  vqa: number;
}

export interface Aesthetics {
  score: number;
  contrast: number;
  centring: number;
  crispness: number;
  cleanliness: number;
}

export interface Judgement extends Alignment {
  caption: string;
  aesthetic: number;
  aesthetics: Aesthetics;
  objects: Blob[];
}

const clamp01 = (x: number) => Math.min(1, Math.max(0, x));
const luminance = (c: readonly number[]) => 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
const same = (o: ObjectSpec, b: Blob) => o.colour === b.colour && o.shape === b.shape;

/** Every injective assignment of n caption objects to candidates (or to nothing, -1). */
function* assignments(n: number, m: number, used: number[] = []): Generator<number[]> {
  if (used.length === n) {
    yield used;
    return;
  }
  for (let j = -1; j < m; j++) {
    if (j >= 0 && used.includes(j)) continue;
    yield* assignments(n, m, [...used, j]);
  }
}

export function alignment(spec: CaptionSpec, objects: readonly Blob[]): Alignment {
  const want = expectedObjects(spec);
  const n = want.length;
  const cand = objects.slice(0, MAX_CANDIDATES);
  let best = { total: -1, obj: 0, rel: 0 };
  for (const a of assignments(n, cand.length)) {
    let obj = 0;
    a.forEach((j, i) => {
      if (j < 0) return;
      obj += (want[i].colour === cand[j].colour ? 0.5 : 0) + (want[i].shape === cand[j].shape ? 0.5 : 0);
    });
    let rel = 0;
    if (spec.kind === 'relation' && a[0] >= 0 && a[1] >= 0) rel = relationMargin(spec.relation, cand[a[0]], cand[a[1]]) > RELATION_MARGIN ? 1 : 0;
    const total = spec.kind === 'relation' ? 0.75 * (obj / n) + 0.25 * rel : obj / n;
    if (total > best.total) best = { total, obj, rel };
  }
  const extra = Math.max(0, objects.length - n);
  const score = clamp01(best.total - 0.25 * extra);
  const match = objects.length === n && best.obj === n && (spec.kind === 'count' || best.rel === 1);

  let answers: boolean[];
  if (spec.kind === 'count') {
    const hits = objects.filter((b) => same(spec, b)).length;
    answers = [
      objects.some((b) => b.colour === spec.colour),
      objects.some((b) => b.shape === spec.shape),
      hits > 0,
      hits === spec.n,
      objects.length === hits,
    ];
  } else {
    const as = objects.filter((b) => same(spec.a, b));
    const bs = objects.filter((b) => same(spec.b, b));
    answers = [
      as.length > 0,
      bs.length > 0,
      as.some((x) => bs.some((y) => x !== y && relationMargin(spec.relation, x, y) > RELATION_MARGIN)),
      objects.length === 2,
    ];
  }
  return { match, score, vqa: answers.filter(Boolean).length / answers.length };
}

/** The aesthetic parts of a segmented image (see the rules above). */
export function aesthetics(seg: Segmentation): Aesthetics {
  const { objects, labels, width: w, height: h } = seg;
  const bgL = luminance(seg.background);
  const totalArea = objects.reduce((s, o) => s + o.area, 0);

  const contrast = objects.length ? objects.reduce((s, o) => s + clamp01(Math.abs(luminance(o.meanRgb) - bgL) / 0.4) * o.area, 0) / totalArea : 0;

  let centring = 0;
  if (objects.length) {
    const mx = objects.reduce((s, o) => s + o.cx * o.area, 0) / totalArea;
    const my = objects.reduce((s, o) => s + o.cy * o.area, 0) / totalArea;
    const d = Math.hypot(mx - w / 2, my - h / 2) / (w / 2);
    const touching = objects.filter((o) => o.x0 === 0 || o.y0 === 0 || o.x1 === w - 1 || o.y1 === h - 1).length;
    centring = clamp01(1 - d / 0.7 - 0.25 * touching);
  }

  // Outline pixels (object pixels with a 4-neighbour of another label) and the soft pixels next to objects.
  let outline = 0;
  let edgeSoft = 0;
  let straySoft = 0;
  const isObj = (p: number) => labels[p] >= 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const p = y * w + x;
      const lab = labels[p];
      if (lab >= 0) {
        const nb = [x > 0 ? p - 1 : p, x < w - 1 ? p + 1 : p, y > 0 ? p - w : p, y < h - 1 ? p + w : p];
        if (nb.some((q) => labels[q] !== lab)) outline++;
      } else if (lab === LABEL_SOFT) {
        let near = false;
        for (let dy = -1; dy <= 1 && !near; dy++) {
          for (let dx = -1; dx <= 1 && !near; dx++) {
            const xx = x + dx, yy = y + dy;
            if (xx >= 0 && yy >= 0 && xx < w && yy < h && isObj(yy * w + xx)) near = true;
          }
        }
        if (near) edgeSoft++;
        else straySoft++;
      }
    }
  }
  // A clean anti-aliased render has about one soft pixel per two outline pixels; blur widens the band.
  const crispness = outline ? clamp01(1 - Math.max(0, edgeSoft / outline - 0.6) / 1.2) : 0;
  const cleanliness = clamp01(1 - 0.15 * seg.specks.length - 0.03 * straySoft - 5 * Math.max(0, seg.backgroundNoise - 0.01) - 0.2 * Math.max(0, objects.length - 3));
  const score = 0.3 * contrast + 0.25 * centring + 0.2 * crispness + 0.25 * cleanliness;
  return { score, contrast, centring, crispness, cleanliness };
}

/** Judges one RGB image (CHW [3, size, size] in [0, 1]) against its caption. */
export function judge(pixels: ArrayLike<number>, caption: string, size = IMAGE_SIZE): Judgement {
  if (!(size > 0)) throw new ArgumentError(`judge: bad image size ${size}`);
  const spec = parseCaption(caption);
  const seg = segment(pixels, size, size);
  const al = alignment(spec, seg.objects);
  const ae = aesthetics(seg);
  return { caption, ...al, aesthetic: ae.score, aesthetics: ae, objects: seg.objects };
}

export interface PreferenceWeights {
  /** Weight of the graded alignment score (default 0.5). */
  alignment?: number;
  /** Weight of the match verdict (default 0.2). */
  match?: number;
  /** Weight of the aesthetic score (default 0.3). */
  aesthetic?: number;
}

/** The human's overall liking of an image, in [0, 1]: mostly "does it show what I asked for", partly looks. */
export function preferenceScore(j: Alignment & { aesthetic: number }, w: PreferenceWeights = {}): number {
  return (w.alignment ?? 0.5) * j.score + (w.match ?? 0.2) * (j.match ? 1 : 0) + (w.aesthetic ?? 0.3) * j.aesthetic;
}

