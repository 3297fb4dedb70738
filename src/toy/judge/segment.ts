// Pixels → objects, for the hidden judge. No model is involved: a pixel is background (close to the border's
// median colour), a palette colour (saturated, classified by hue sector), or "soft" (neither: an anti-aliased or
// blurred edge, a smudge). Same-coloured pixels form 4-connected components; big ones are objects, small ones
// specks. Each object's shape comes from its mask: a triangle keeps most of its mass in the lower half of its
// box, a square fills its box, a circle fills about π/4 of it.
import { ArgumentError } from '../../errors.js';
import { COLOURS, type Colour, type Shape } from '../scenes.js';

/** Saturation (max − min of RGB) above which a pixel is taken to be coloured. */
export const CHROMA_MIN = 0.3;
/** Largest channel difference from the background for a pixel still to count as background. */
export const BACKGROUND_TOLERANCE = 0.12;
/** Components smaller than this (pixels) are specks, not objects (the smallest drawn object has ~20). */
export const MIN_OBJECT_AREA = 8;

/** Hue sectors in degrees, [from, to): red wraps around 0. Hues in no sector (magenta) are "soft". */
const HUE_SECTORS: readonly [Colour, number, number][] = [
  ['red', -33, 27],
  ['yellow', 27, 90],
  ['green', 90, 177],
  ['blue', 177, 295],
];

export interface Blob {
  colour: Colour;
  /** Pixel count. */
  area: number;
  /** Inclusive pixel bounding box. */
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  /** Bounding-box centre in continuous pixel coordinates (what scenes call cx, cy). */
  cx: number;
  cy: number;
  /** area / box area. */
  fill: number;
  /** Share of the pixels in the upper half of the box (≈ 0.5 for circles and squares, ≈ 0.25 for triangles). */
  topFraction: number;
  /** Coverage-weighted E[x²y²]/(E[x²]E[y²]) about the centroid: 1 for a square, 2/3 for a disc. */
  squareness: number;
  shape: Shape;
  /** Mean RGB of the component's pixels. */
  meanRgb: [number, number, number];
}

export interface Segmentation {
  width: number;
  height: number;
  /** Per-channel median of the border pixels. */
  background: [number, number, number];
  /** Per pixel: -1 background, -2 soft, else the index of the colour in COLOURS. */
  labels: Int8Array;
  /** Components of at least MIN_OBJECT_AREA pixels, largest first. */
  objects: Blob[];
  specks: Blob[];
  softPixels: number;
  /** RMS deviation of background-labelled pixels from the background colour. */
  backgroundNoise: number;
}

export const LABEL_BACKGROUND = -1;
export const LABEL_SOFT = -2;

/** Hue in degrees [0, 360) of an RGB triple (0 for greys). */
export function hue(r: number, g: number, b: number): number {
  const mx = Math.max(r, g, b);
  const mn = Math.min(r, g, b);
  const d = mx - mn;
  if (d <= 0) return 0;
  let h: number;
  if (mx === r) h = ((g - b) / d) % 6;
  else if (mx === g) h = (b - r) / d + 2;
  else h = (r - g) / d + 4;
  h *= 60;
  return h < 0 ? h + 360 : h;
}

/** The palette colour of a saturated pixel, or null (grey, dark, or a hue between sectors). */
export function colourOf(r: number, g: number, b: number): Colour | null {
  const mx = Math.max(r, g, b);
  if (mx - Math.min(r, g, b) < CHROMA_MIN) return null;
  let h = hue(r, g, b);
  if (h >= 327) h -= 360;
  for (const [c, lo, hi] of HUE_SECTORS) if (h >= lo && h < hi) return c;
  return null;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Classifies a blob as circle, square or triangle from its mask's fill, top share and squareness. */
export function classifyShape(fill: number, topFraction: number, squareness: number): Shape {
  if (topFraction < 0.4 && fill < 0.75) return 'triangle';
  return squareness >= 0.8 ? 'square' : 'circle';
}

/** Segments an RGB image, CHW [3, height, width] with values in [0, 1]. */
export function segment(pixels: ArrayLike<number>, width: number, height = width): Segmentation {
  const n = width * height;
  if (pixels.length !== 3 * n) throw new ArgumentError(`segment: ${pixels.length} values for a ${width}×${height} RGB image (expected ${3 * n})`);
  const at = (c: number, p: number) => pixels[c * n + p];
  const border: number[] = [];
  for (let x = 0; x < width; x++) border.push(x, (height - 1) * width + x);
  for (let y = 1; y < height - 1; y++) border.push(y * width, y * width + width - 1);
  const bg: [number, number, number] = [0, 1, 2].map((c) => median(border.map((p) => at(c, p)))) as [number, number, number];

  const labels = new Int8Array(n);
  let softPixels = 0;
  let bgSq = 0;
  let bgCount = 0;
  for (let p = 0; p < n; p++) {
    const r = at(0, p), g = at(1, p), b = at(2, p);
    const col = colourOf(r, g, b);
    if (col) {
      labels[p] = COLOURS.indexOf(col);
      continue;
    }
    const diff = Math.max(Math.abs(r - bg[0]), Math.abs(g - bg[1]), Math.abs(b - bg[2]));
    if (diff < BACKGROUND_TOLERANCE) {
      labels[p] = LABEL_BACKGROUND;
      bgSq += (r - bg[0]) ** 2 + (g - bg[1]) ** 2 + (b - bg[2]) ** 2;
      bgCount++;
    } else {
      labels[p] = LABEL_SOFT;
      softPixels++;
    }
  }

  const objects: Blob[] = [];
  const specks: Blob[] = [];
  const seen = new Uint8Array(n);
  const stack: number[] = [];
  const members: number[] = [];
  for (let start = 0; start < n; start++) {
    const lab = labels[start];
    if (lab < 0 || seen[start]) continue;
    members.length = 0;
    stack.push(start);
    seen[start] = 1;
    while (stack.length) {
      const p = stack.pop()!;
      members.push(p);
      const x = p % width;
      const y = (p - x) / width;
      const nb = [x > 0 ? p - 1 : -1, x < width - 1 ? p + 1 : -1, y > 0 ? p - width : -1, y < height - 1 ? p + width : -1];
      for (const q of nb) {
        if (q >= 0 && !seen[q] && labels[q] === lab) {
          seen[q] = 1;
          stack.push(q);
        }
      }
    }
    const blob = describe(members, width, height, labels, bg, COLOURS[lab], at);
    (blob.area >= MIN_OBJECT_AREA ? objects : specks).push(blob);
  }
  objects.sort((a, b) => b.area - a.area);
  return { width, height, background: bg, labels, objects, specks, softPixels, backgroundNoise: bgCount ? Math.sqrt(bgSq / (3 * bgCount)) : 0 };
}

function describe(
  members: readonly number[], width: number, height: number, labels: Int8Array, bg: readonly number[], colour: Colour, at: (c: number, p: number) => number,
): Blob {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  const rgb: [number, number, number] = [0, 0, 0];
  for (const p of members) {
    const x = p % width;
    const y = (p - x) / width;
    x0 = Math.min(x0, x); x1 = Math.max(x1, x);
    y0 = Math.min(y0, y); y1 = Math.max(y1, y);
    for (let c = 0; c < 3; c++) rgb[c] += at(c, p);
  }
  const cx = (x0 + x1 + 1) / 2;
  const cy = (y0 + y1 + 1) / 2;
  let top = 0;
  for (const p of members) {
    const y = Math.floor(p / width) + 0.5;
    if (y < cy) top++;
    else if (y === cy) top += 0.5;
  }
  const area = members.length;
  const fill = area / ((x1 - x0 + 1) * (y1 - y0 + 1));
  const topFraction = top / area;
  const meanRgb = rgb.map((v) => v / area) as [number, number, number];
  const squareness = coverageSquareness(members, width, height, labels, bg, meanRgb, at);
  return { colour, area, x0, y0, x1, y1, cx, cy, fill, topFraction, squareness, shape: classifyShape(fill, topFraction, squareness), meanRgb };
}

/**
 * E[x²y²]/(E[x²]E[y²]) over the component and the soft pixels around it, each weighted by its coverage
 * α = ⟨p − bg, c − bg⟩/|c − bg|² (clamped to [0, 1]), with c the component's mean colour.
 */
function coverageSquareness(
  members: readonly number[], width: number, height: number, labels: Int8Array, bg: readonly number[], c: readonly number[], at: (ch: number, p: number) => number,
): number {
  const pts = new Set(members);
  for (const p of members) {
    const x = p % width;
    const y = (p - x) / width;
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        const xx = x + dx, yy = y + dy;
        if (xx < 0 || yy < 0 || xx >= width || yy >= height) continue;
        const q = yy * width + xx;
        if (labels[q] === LABEL_SOFT) pts.add(q);
      }
    }
  }
  const d = [c[0] - bg[0], c[1] - bg[1], c[2] - bg[2]];
  const dd = d[0] * d[0] + d[1] * d[1] + d[2] * d[2] || 1;
  let w = 0, mx = 0, my = 0;
  const ws: [number, number, number][] = [];
  for (const p of pts) {
    let a = 0;
    for (let ch = 0; ch < 3; ch++) a += (at(ch, p) - bg[ch]) * d[ch];
    a = Math.min(1, Math.max(0, a / dd));
    const x = (p % width) + 0.5;
    const y = Math.floor(p / width) + 0.5;
    ws.push([a, x, y]);
    w += a; mx += a * x; my += a * y;
  }
  if (!(w > 0)) return 0;
  mx /= w; my /= w;
  let xx = 0, yy = 0, xy = 0;
  for (const [a, x, y] of ws) {
    const u = (x - mx) ** 2, v = (y - my) ** 2;
    xx += a * u; yy += a * v; xy += a * u * v;
  }
  return xx > 0 && yy > 0 ? (xy * w) / (xx * yy) : 0;
}
