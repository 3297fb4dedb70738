// The hidden judge: clean renders of known content are judged correctly, corrupted renders are rejected, and the
// aesthetic parts respond to what they claim to measure.
import { describe, expect, it } from 'vitest';
import { Generator } from '../src/tensor/random.js';
import { COLOURS, IMAGE_SIZE, PALETTE, SHAPES, renderScene, separated, inFrame, randomCentre, type Scene } from '../src/toy/scenes.js';
import { captionText, parseCaption, samplePrompt, sceneForCaption, type CaptionSpec } from '../src/toy/captions.js';
import { judge, preferenceScore } from '../src/toy/judge/judge.js';
import { colourOf, segment } from '../src/toy/judge/segment.js';

const N = IMAGE_SIZE * IMAGE_SIZE;

function cases(seed: number, count: number): { caption: string; spec: CaptionSpec; scene: Scene }[] {
  const gen = new Generator(seed);
  return Array.from({ length: count }, () => {
    const caption = samplePrompt(gen, { split: 'all' });
    const spec = parseCaption(caption);
    return { caption, spec, scene: sceneForCaption(gen, spec) };
  });
}

function blur(img: Float32Array): Float32Array {
  const out = new Float32Array(img.length);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < IMAGE_SIZE; y++) {
      for (let x = 0; x < IMAGE_SIZE; x++) {
        let s = 0, n = 0;
        for (let dy = -1; dy <= 1; dy++) {
          for (let dx = -1; dx <= 1; dx++) {
            const xx = x + dx, yy = y + dy;
            if (xx < 0 || yy < 0 || xx >= IMAGE_SIZE || yy >= IMAGE_SIZE) continue;
            s += img[c * N + yy * IMAGE_SIZE + xx];
            n++;
          }
        }
        out[c * N + y * IMAGE_SIZE + x] = s / n;
      }
    }
  }
  return out;
}

describe('hidden judge: alignment', () => {
  it('judges clean renders of random captioned scenes as matching (≥ 98%), with full graded and VQA scores', () => {
    const all = cases(1, 1500);
    let ok = 0;
    for (const { caption, scene } of all) {
      const j = judge(renderScene(scene), caption);
      if (j.match) {
        ok++;
        expect(j.score).toBe(1);
        expect(j.vqa).toBe(1);
      }
    }
    expect(ok / all.length).toBeGreaterThanOrEqual(0.98);
  });

  it('classifies palette colours by hue and ignores greys', () => {
    for (const c of COLOURS) expect(colourOf(...PALETTE[c])).toBe(c);
    expect(colourOf(0.5, 0.5, 0.5)).toBeNull();
    expect(colourOf(0.9, 0.1, 0.75)).toBeNull(); // magenta: no palette colour
  });

  it('rejects corrupted renders: wrong colour, wrong shape, missing object, extra object, swapped relation', () => {
    const gen = new Generator(2);
    let checked = 0;
    for (const { caption, spec, scene } of cases(3, 300)) {
      const objs = scene.objects;
      const i = Math.floor(gen.uniform() * objs.length);
      const corrupt: Scene[] = [];
      const recolour = COLOURS.find((c) => c !== objs[i].colour)!;
      corrupt.push({ ...scene, objects: objs.map((o, k) => (k === i ? { ...o, colour: recolour } : o)) });
      const reshape = SHAPES.find((s) => s !== objs[i].shape)!;
      corrupt.push({ ...scene, objects: objs.map((o, k) => (k === i ? { ...o, shape: reshape } : o)) });
      corrupt.push({ ...scene, objects: objs.filter((_, k) => k !== i) });
      // An extra object, wherever it fits.
      for (let t = 0; t < 100; t++) {
        const extra = { shape: SHAPES[t % 3], colour: COLOURS[t % 4], size: 3.5 };
        const o = { ...extra, ...randomCentre(gen, extra) };
        if (inFrame(o) && objs.every((p) => separated(p, o))) {
          corrupt.push({ ...scene, objects: [...objs, o] });
          break;
        }
      }
      if (spec.kind === 'relation') {
        const [a, b] = objs;
        corrupt.push({ ...scene, objects: [{ ...a, cx: b.cx, cy: b.cy }, { ...b, cx: a.cx, cy: a.cy }] });
      }
      for (const c of corrupt) {
        const j = judge(renderScene(c), caption);
        expect(j.match, `${caption}: ${JSON.stringify(c.objects)}`).toBe(false);
        expect(j.score).toBeLessThan(1);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(1200);
  });

  it('gives graded partial credit: a wrong colour scores above a missing object, and both below a match', () => {
    const gen = new Generator(4);
    const spec = parseCaption('a red circle left of a blue square');
    const scene = sceneForCaption(gen, spec);
    const caption = captionText(spec);
    const good = judge(renderScene(scene), caption);
    const wrong = judge(renderScene({ ...scene, objects: [{ ...scene.objects[0], colour: 'green' }, scene.objects[1]] }), caption);
    const missing = judge(renderScene({ ...scene, objects: [scene.objects[1]] }), caption);
    expect(good.score).toBe(1);
    expect(wrong.score).toBeLessThan(1);
    expect(missing.score).toBeLessThan(wrong.score);
    expect(wrong.vqa).toBeLessThan(1);
    expect(preferenceScore(good)).toBeGreaterThan(preferenceScore(wrong));
  });
});

describe('hidden judge: aesthetics', () => {
  const base = (cx: number, cy: number, background = 0.1): Scene => ({ background, objects: [{ shape: 'circle', colour: 'yellow', size: 5, cx, cy }] });

  it('prefers a centred composition, higher contrast, crisp edges and a clean background', () => {
    const centred = judge(renderScene(base(16, 16)), 'a yellow circle');
    const corner = judge(renderScene(base(7, 7)), 'a yellow circle');
    expect(centred.aesthetics.centring).toBeGreaterThan(corner.aesthetics.centring + 0.3);
    const lowContrast = judge(renderScene(base(16, 16, 0.9)), 'a yellow circle');
    expect(centred.aesthetics.contrast).toBeGreaterThan(lowContrast.aesthetics.contrast + 0.5);
    expect(lowContrast.match).toBe(true); // looks are not alignment

    const blurred = judge(blur(blur(renderScene(base(16, 16)))), 'a yellow circle');
    expect(blurred.aesthetics.crispness).toBeLessThan(centred.aesthetics.crispness - 0.2);

    const gen = new Generator(9);
    const noisy = renderScene(base(16, 16));
    for (let k = 0; k < noisy.length; k++) noisy[k] = Math.min(1, Math.max(0, noisy[k] + 0.04 * gen.normal()));
    const specks = renderScene(base(16, 16));
    for (const [x, y] of [[3, 27], [28, 4], [26, 26]]) for (let c = 0; c < 3; c++) specks[c * N + y * IMAGE_SIZE + x] = PALETTE.red[c];
    const noisyJ = judge(noisy, 'a yellow circle');
    const specksJ = judge(specks, 'a yellow circle');
    expect(noisyJ.aesthetics.cleanliness).toBeLessThan(centred.aesthetics.cleanliness - 0.1);
    expect(specksJ.aesthetics.cleanliness).toBeLessThan(centred.aesthetics.cleanliness - 0.3);
    expect(specksJ.match).toBe(true); // specks are below the object size
    expect(segment(specks, IMAGE_SIZE).specks).toHaveLength(3);
    for (const j of [corner, lowContrast, blurred, noisyJ, specksJ]) expect(j.aesthetic).toBeLessThan(centred.aesthetic);
  });

  it('scores an empty image low on both axes', () => {
    const j = judge(renderScene({ background: 0.45, objects: [] }), 'two green squares');
    expect(j.match).toBe(false);
    expect(j.score).toBe(0);
    expect(j.aesthetic).toBeLessThan(0.5);
  });
});
