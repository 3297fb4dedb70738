// The toy world's scenes: one to three flat shapes (circle, square, triangle) in four colours on a plain grey
// background, rendered at 32×32 with 4×4 supersampled anti-aliasing. A scene is a plain description (shape,
// colour, size, centre of each object, background grey) so captions, the hidden judge's tests and the
// training-data sampler can all talk about the same thing; rendering is deterministic, sampling is seeded.
import { ArgumentError } from '../errors.js';
import { Generator } from '../tensor/random.js';

export const COLOURS = ['red', 'green', 'blue', 'yellow'] as const;
export type Colour = (typeof COLOURS)[number];
export const SHAPES = ['circle', 'square', 'triangle'] as const;
export type Shape = (typeof SHAPES)[number];

/** Object colours (RGB in [0, 1]); hues 0°, 125°, 225°, 52°, all strongly saturated so hue alone tells them apart. */
export const PALETTE: Readonly<Record<Colour, readonly [number, number, number]>> = {
  red: [0.9, 0.12, 0.1],
  green: [0.12, 0.72, 0.2],
  blue: [0.15, 0.3, 0.95],
  yellow: [0.96, 0.84, 0.12],
};

/** Background greys: dark, mid and light. Captions never name the background; contrast is an aesthetic matter. */
export const BACKGROUNDS = [0.1, 0.45, 0.9] as const;

/**
 * Object half-extents in pixels: small, medium, large (a circle's radius, half a triangle's base). The
 * smallest shape still spans more than two 4×4 latent cells, so the 8×8 latent can hold its outline.
 */
export const SIZES = [4.5, 5.75, 7] as const;

export const IMAGE_SIZE = 32;
/** Free pixels kept between two objects' bounding boxes, so neighbours never touch even anti-aliased. */
export const MIN_GAP = 2;
/** Free pixels kept between an object and the image border. */
export const BORDER = 1;

export interface ObjectSpec {
  shape: Shape;
  colour: Colour;
}

export interface SceneObject extends ObjectSpec {
  /** Half-extent in pixels (see SIZES; any positive value renders). */
  size: number;
  /** Bounding-box centre in pixel coordinates (0 = left/top edge of the image, IMAGE_SIZE = right/bottom). */
  cx: number;
  cy: number;
}

export interface Scene {
  /** Background grey level in [0, 1]. */
  background: number;
  objects: SceneObject[];
}

/** Half-extent of a square's side relative to its size, so that squares and circles look about as big. */
const SQUARE_HALF = 0.88;

/** Whether the point (x, y) lies inside the object (continuous coordinates). */
export function insideObject(o: SceneObject, x: number, y: number): boolean {
  const dx = x - o.cx;
  const dy = y - o.cy;
  const r = o.size;
  switch (o.shape) {
    case 'circle':
      return dx * dx + dy * dy <= r * r;
    case 'square':
      return Math.abs(dx) <= r * SQUARE_HALF && Math.abs(dy) <= r * SQUARE_HALF;
    case 'triangle': {
      // Upright isosceles triangle filling the box [cx−r, cx+r] × [cy−r, cy+r]: apex at the top centre.
      if (dy < -r || dy > r) return false;
      const half = (dy + r) / 2; // half-width grows from 0 at the apex to r at the base
      return Math.abs(dx) <= half;
    }
  }
}

/** The object's bounding box [x0, y0, x1, y1] in continuous pixel coordinates. */
export function objectBox(o: SceneObject): [number, number, number, number] {
  const h = o.shape === 'square' ? o.size * SQUARE_HALF : o.size;
  return [o.cx - h, o.cy - h, o.cx + h, o.cy + h];
}

/** Whether two objects' boxes keep at least `gap` pixels between them (on either axis). */
export function separated(a: SceneObject, b: SceneObject, gap = MIN_GAP): boolean {
  const [ax0, ay0, ax1, ay1] = objectBox(a);
  const [bx0, by0, bx1, by1] = objectBox(b);
  return ax1 + gap <= bx0 || bx1 + gap <= ax0 || ay1 + gap <= by0 || by1 + gap <= ay0;
}

/** Whether the object lies inside the image with `border` pixels to spare. */
export function inFrame(o: SceneObject, size = IMAGE_SIZE, border = BORDER): boolean {
  const [x0, y0, x1, y1] = objectBox(o);
  return x0 >= border && y0 >= border && x1 <= size - border && y1 <= size - border;
}

export interface RenderOptions {
  /** Image side in pixels (default 32). */
  size?: number;
  /** Sub-samples per pixel side for anti-aliasing (default 4; 1 gives crisp aliased edges). */
  supersample?: number;
}

/** Renders a scene to RGB floats in [0, 1], CHW [3, size, size] (the layout of writePng and of the models). */
export function renderScene(scene: Scene, opts: RenderOptions = {}): Float32Array {
  const size = opts.size ?? IMAGE_SIZE;
  const ss = opts.supersample ?? 4;
  if (!Number.isInteger(size) || size < 1) throw new ArgumentError(`renderScene: size must be a positive integer, got ${size}`);
  if (!Number.isInteger(ss) || ss < 1) throw new ArgumentError(`renderScene: supersample must be a positive integer, got ${ss}`);
  const bg = scene.background;
  if (!(bg >= 0 && bg <= 1)) throw new ArgumentError(`renderScene: background must be in [0, 1], got ${bg}`);
  const n = size * size;
  const out = new Float32Array(3 * n).fill(bg);
  const scale = size / IMAGE_SIZE; // scene coordinates are in 32-pixel units whatever the output size
  for (const o of scene.objects) {
    const col = PALETTE[o.colour];
    if (!col) throw new ArgumentError(`renderScene: unknown colour '${o.colour}'`);
    const [x0, y0, x1, y1] = objectBox(o).map((v) => v * scale);
    // Only the pixels under the box can be covered.
    for (let py = Math.max(0, Math.floor(y0)); py < Math.min(size, Math.ceil(y1)); py++) {
      for (let px = Math.max(0, Math.floor(x0)); px < Math.min(size, Math.ceil(x1)); px++) {
        let hits = 0;
        for (let sy = 0; sy < ss; sy++) {
          for (let sx = 0; sx < ss; sx++) {
            if (insideObject(o, (px + (sx + 0.5) / ss) / scale, (py + (sy + 0.5) / ss) / scale)) hits++;
          }
        }
        if (!hits) continue;
        const a = hits / (ss * ss);
        const p = py * size + px;
        for (let c = 0; c < 3; c++) out[c * n + p] = out[c * n + p] * (1 - a) + col[c] * a;
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Seeded sampling helpers

export function randInt(gen: Generator, n: number): number {
  return Math.floor(gen.uniform() * n);
}

export function pick<T>(gen: Generator, xs: readonly T[]): T {
  return xs[randInt(gen, xs.length)];
}

export function shuffled<T>(gen: Generator, xs: readonly T[]): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = randInt(gen, i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** A random centre for an object of this size that keeps it in frame. */
export function randomCentre(gen: Generator, o: ObjectSpec & { size: number }): { cx: number; cy: number } {
  const h = o.shape === 'square' ? o.size * SQUARE_HALF : o.size;
  const lo = BORDER + h;
  const hi = IMAGE_SIZE - BORDER - h;
  return { cx: lo + gen.uniform() * (hi - lo), cy: lo + gen.uniform() * (hi - lo) };
}

/**
 * Places the objects one by one at random non-touching positions; `accept` may veto a placement (e.g. a
 * relation). Restarts with fresh positions (and, after many tries, smaller sizes) until all fit.
 */
export function placeObjects(
  gen: Generator,
  specs: readonly ObjectSpec[],
  accept: (placed: readonly SceneObject[]) => boolean = () => true,
): SceneObject[] {
  for (let attempt = 0; attempt < 2000; attempt++) {
    // Large objects crowd the frame: after repeated failures only the smaller sizes are drawn.
    const sizes = attempt < 200 ? SIZES : SIZES.slice(0, 2);
    const placed: SceneObject[] = [];
    let ok = true;
    for (const s of specs) {
      const size = pick(gen, sizes);
      let found: SceneObject | null = null;
      for (let k = 0; k < 50 && !found; k++) {
        const o: SceneObject = { ...s, size, ...randomCentre(gen, { ...s, size }) };
        if (placed.every((p) => separated(p, o))) found = o;
      }
      if (!found) {
        ok = false;
        break;
      }
      placed.push(found);
    }
    if (ok && accept(placed)) return placed;
  }
  throw new ArgumentError(`placeObjects: could not place ${specs.length} objects`);
}

/** A scene with the given objects at random sizes and positions, on a random background grey. */
export function sampleScene(gen: Generator, specs: readonly ObjectSpec[], accept?: (placed: readonly SceneObject[]) => boolean): Scene {
  const background = pick(gen, BACKGROUNDS);
  return { background, objects: placeObjects(gen, specs, accept) };
}
