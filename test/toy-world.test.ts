// The toy world's scenes and captions: rendering, placement, the caption templates and the prompt split.
import { describe, expect, it } from 'vitest';
import { Generator } from '../src/tensor/random.js';
import {
  BACKGROUNDS, COLOURS, IMAGE_SIZE, PALETTE, SHAPES, inFrame, objectBox, placeObjects, renderScene, separated, type Scene,
} from '../src/toy/scenes.js';
import {
  CaptionError, HELD_OUT_PROMPTS, SCENE_RELATION_MARGIN, allCaptions, captionText, expectedObjects, isHeldOut, mirror, parseCaption,
  promptSplit, relationMargin, samplePrompt, sceneForCaption,
} from '../src/toy/captions.js';
import { ArgumentError } from '../src/errors.js';

const px = (img: Float32Array, c: number, x: number, y: number) => img[c * IMAGE_SIZE * IMAGE_SIZE + y * IMAGE_SIZE + x];

describe('scenes', () => {
  it('renders a square as its palette colour inside, the background outside, and blends the edges', () => {
    const scene: Scene = { background: 0.1, objects: [{ shape: 'square', colour: 'blue', size: 5, cx: 16, cy: 16 }] };
    const img = renderScene(scene);
    expect(img.length).toBe(3 * IMAGE_SIZE * IMAGE_SIZE);
    for (let c = 0; c < 3; c++) {
      expect(px(img, c, 16, 16)).toBeCloseTo(PALETTE.blue[c], 6);
      expect(px(img, c, 2, 2)).toBeCloseTo(0.1, 6);
    }
    // The square spans 16 ± 4.4: pixel 11 is partly covered (x from 11.6 to 12), so it is a blend.
    const edge = px(img, 2, 11, 16);
    expect(edge).toBeGreaterThan(0.1 + 0.3 * (PALETTE.blue[2] - 0.1));
    expect(edge).toBeLessThan(PALETTE.blue[2] - 0.1);
  });

  it('draws triangles apex up (more colour in the lower half) and circles round (corners empty)', () => {
    const tri = renderScene({ background: 0.9, objects: [{ shape: 'triangle', colour: 'red', size: 6, cx: 16, cy: 16 }] });
    let top = 0, bottom = 0;
    for (let y = 10; y < 22; y++) {
      for (let x = 10; x < 22; x++) {
        const v = 0.9 - px(tri, 1, x, y);
        if (y < 16) top += v;
        else bottom += v;
      }
    }
    expect(bottom).toBeGreaterThan(2.5 * top);
    const circ = renderScene({ background: 0.9, objects: [{ shape: 'circle', colour: 'red', size: 6, cx: 16, cy: 16 }] });
    expect(px(circ, 1, 10, 10)).toBeCloseTo(0.9, 6); // the box corner lies outside the disc
    expect(px(circ, 1, 16, 16)).toBeCloseTo(PALETTE.red[1], 6);
  });

  it('is deterministic and rejects bad options', () => {
    const s = sceneForCaption(new Generator(3), parseCaption('two red circles'));
    expect(renderScene(s)).toEqual(renderScene(JSON.parse(JSON.stringify(s))));
    expect(() => renderScene(s, { supersample: 0 })).toThrow(ArgumentError);
    expect(() => renderScene({ background: 2, objects: [] })).toThrow(ArgumentError);
  });

  it('places objects in frame and apart', () => {
    const gen = new Generator(7);
    for (let i = 0; i < 200; i++) {
      const objs = placeObjects(gen, [{ shape: 'circle', colour: 'red' }, { shape: 'square', colour: 'blue' }, { shape: 'triangle', colour: 'green' }]);
      expect(objs).toHaveLength(3);
      for (const o of objs) expect(inFrame(o)).toBe(true);
      for (let a = 0; a < 3; a++) for (let b = a + 1; b < 3; b++) expect(separated(objs[a], objs[b])).toBe(true);
      for (const o of objs) {
        const [x0, , x1] = objectBox(o);
        expect(x1 - x0).toBeGreaterThan(5);
      }
    }
  });
});

describe('captions', () => {
  it('round-trips every template caption and enumerates 36 counts + 528 relations', () => {
    const all = allCaptions();
    expect(all).toHaveLength(36 + 12 * 11 * 4);
    expect(new Set(all).size).toBe(all.length);
    for (const c of all) expect(captionText(parseCaption(c))).toBe(c);
    expect(parseCaption('Two  Red Circles ')).toEqual({ kind: 'count', n: 2, colour: 'red', shape: 'circle' });
    expect(parseCaption('a blue square left of a yellow triangle')).toEqual({
      kind: 'relation', a: { colour: 'blue', shape: 'square' }, relation: 'left of', b: { colour: 'yellow', shape: 'triangle' },
    });
  });

  it('rejects captions outside the templates', () => {
    for (const bad of ['two red circle', 'a red circles', 'a purple circle', 'a red circle left of a red circle', 'four red circles', '']) {
      expect(() => parseCaption(bad), bad).toThrow(CaptionError);
    }
  });

  it('builds scenes that show exactly the caption', () => {
    const gen = new Generator(11);
    for (let i = 0; i < 300; i++) {
      const spec = parseCaption(samplePrompt(gen, { split: 'all' }));
      const s = sceneForCaption(gen, spec);
      expect(BACKGROUNDS).toContain(s.background);
      expect(s.objects.map((o) => `${o.colour} ${o.shape}`)).toEqual(expectedObjects(spec).map((o) => `${o.colour} ${o.shape}`));
      if (spec.kind === 'relation') expect(relationMargin(spec.relation, s.objects[0], s.objects[1])).toBeGreaterThanOrEqual(SCENE_RELATION_MARGIN);
    }
  });

  it('splits the prompt space: held-out prompts (and their mirrors) never come out of the training sampler', () => {
    const { train, heldout } = promptSplit();
    expect(train.length + heldout.length).toBe(allCaptions().length);
    expect(HELD_OUT_PROMPTS.length).toBeGreaterThanOrEqual(16);
    for (const p of HELD_OUT_PROMPTS) {
      expect(heldout).toContain(p);
      expect(heldout).toContain(captionText(mirror(parseCaption(p))));
    }
    // The first 16 cover every colour, shape, count and relation.
    const first = HELD_OUT_PROMPTS.slice(0, 16).map(parseCaption);
    const words = first.map(captionText).join(' ');
    for (const w of [...COLOURS, ...SHAPES, 'two', 'three', 'left of', 'right of', 'above', 'below']) expect(words).toContain(w);
    expect(first.some((s) => s.kind === 'count' && s.n === 1)).toBe(true);
    const gen = new Generator(5);
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const p = samplePrompt(gen);
      expect(isHeldOut(p)).toBe(false);
      seen.add(parseCaption(p).kind);
    }
    expect(seen).toEqual(new Set(['count', 'relation']));
    expect(isHeldOut(samplePrompt(gen, { split: 'heldout' }))).toBe(true);
  });
});
