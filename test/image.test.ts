import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ImageError, decodePng, encodePng, imageLayout, readPng, toByte, writePng } from '../src/io/image.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lpo-img-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('PNG images', () => {
  const H = 5;
  const W = 7;
  // CHW values on the 1/255 grid so the round trip is exact, plus out-of-range values that clamp.
  const chw = new Float32Array(3 * H * W).map((_, i) => ((i * 37) % 256) / 255);
  chw[0] = -0.5;
  chw[1] = 1.7;
  chw[2] = NaN;

  it('quantises like numpy (clamp, ×255, round half to even)', () => {
    expect([-1, 0, 0.5, 1, 2, NaN, 0.5 / 255, 1.5 / 255, 2.5 / 255, 254.5 / 255].map(toByte)).toEqual([0, 0, 128, 255, 255, 0, 0, 2, 2, 254]);
  });

  it('round trips [3,H,W] through a file and reads it as CHW or HWC', () => {
    const p = path.join(dir, 'a.png');
    writePng(p, chw, [3, H, W]);
    const buf = fs.readFileSync(p);
    expect(buf.subarray(1, 4).toString('latin1')).toBe('PNG');
    expect(buf[25]).toBe(2); // IHDR colour type: RGB, no alpha
    const img = readPng(p);
    expect([img.width, img.height, img.hadAlpha]).toEqual([W, H, false]);
    expect(img.shape).toEqual([3, H, W]);
    const want = Array.from(chw, (v) => toByte(v) / 255);
    expect(Array.from(img.data)).toEqual(want.map((v) => Math.fround(v)));
    const hwc = readPng(p, { layout: 'HWC' });
    expect(hwc.shape).toEqual([H, W, 3]);
    expect(hwc.data[3 * (2 * W + 3) + 1]).toBe(img.data[1 * H * W + 2 * W + 3]);
  });

  it('accepts [1,3,H,W] and [H,W,3] with the same pixels', () => {
    const hwc = new Float32Array(3 * H * W);
    for (let c = 0; c < 3; c++) for (let p = 0; p < H * W; p++) hwc[3 * p + c] = chw[c * H * W + p];
    const a = decodePng(encodePng(chw, [1, 3, H, W]));
    const b = decodePng(encodePng(hwc, [H, W, 3]));
    expect(Array.from(b.data)).toEqual(Array.from(a.data));
  });

  it('resolves ambiguous and bad shapes', () => {
    expect(imageLayout([3, 4, 3])).toEqual({ layout: 'CHW', height: 4, width: 3 });
    expect(imageLayout([3, 4, 3], { layout: 'HWC' })).toEqual({ layout: 'HWC', height: 3, width: 4 });
    expect(() => encodePng(new Float32Array(12), [2, 2, 3, 1])).toThrow(ImageError);
    expect(() => encodePng(new Float32Array(24), [2, 3, 2, 2])).toThrow(/batch of 2/);
    expect(() => encodePng(new Float32Array(16), [4, 2, 2])).toThrow(/no axis of 3/);
    expect(() => encodePng(new Float32Array(10), [3, 2, 2])).toThrow(/10 values/);
    expect(() => decodePng(Buffer.from('not a png'))).toThrow(ImageError);
    expect(() => readPng(path.join(dir, 'missing.png'))).toThrow(/cannot read .*ENOENT/);
  });
});
