// Image bytes → model input: JPEG/PNG decoding, PIL-style antialiased bilinear resizing, [-1, 1] normalisation.
import { describe, expect, it } from 'vitest';
import jpeg from 'jpeg-js';
import { decodeJpeg, JpegError } from '../src/io/jpeg.js';
import { bilinearCoeffs, decodeImageBytes, loadModelImage, resizeRgb8, toNormalizedChw } from '../src/io/pairs/image.js';
import { Generator } from '../src/tensor/random.js';
import { relL2 } from './helpers.js';
import { normalizeRef, resizeRef } from './ref/resize.js';
import { encodeFixtureImage, pattern } from './fixtures/pairs/spec.js';

function randomRgb(gen: Generator, w: number, h: number) {
  const rgb = new Uint8Array(w * h * 3);
  for (let i = 0; i < rgb.length; i++) rgb[i] = gen.nextU32() & 255;
  return { width: w, height: h, rgb };
}

function rgbOf(rgba: Uint8Array): Uint8Array {
  const out = new Uint8Array((rgba.length / 4) * 3);
  for (let p = 0; p < rgba.length / 4; p++) for (let c = 0; c < 3; c++) out[3 * p + c] = rgba[4 * p + c];
  return out;
}

describe('normalisation', () => {
  it('PNG at its own size: exactly ToTensor + Normalize([0.5],[0.5]) of its bytes, CHW (float64 reference)', () => {
    const png = encodeFixtureImage({ width: 7, height: 5, seed: 3, format: 'png' });
    const out = loadModelImage(png, [5, 7]);
    const ref = normalizeRef(rgbOf(pattern(7, 5, 3)), 7, 5);
    expect(out.length).toBe(3 * 5 * 7);
    // f32 rounding of values in [-1, 1] only: relL2 ≤ 1e-7.
    expect(relL2(out, ref)).toBeLessThan(1e-7);
    expect(Math.min(...out)).toBeGreaterThanOrEqual(-1);
    expect(Math.max(...out)).toBeLessThanOrEqual(1);
    expect(out[0]).toBeCloseTo(ref[0], 7); // channel 0 first (CHW, not HWC)
    expect(out[35]).toBeCloseTo(ref[35], 7);
  });

  it('maps byte 0 to −1 and 255 to +1', () => {
    const out = toNormalizedChw({ width: 2, height: 1, rgb: Uint8Array.from([0, 0, 0, 255, 255, 255]) });
    expect([...out]).toEqual([-1, 1, -1, 1, -1, 1]);
  });
});

describe('resizing like PIL BILINEAR (antialiased)', () => {
  it('hand-computed: 4 → 2 widens the triangle (not a 2-tap lerp), 2 → 4 is the half-pixel lerp', () => {
    const row = (vals: number[]) => ({ width: vals.length, height: 1, rgb: Uint8Array.from(vals.flatMap((v) => [v, v, v])) });
    // Shrinking by 2: output 0 weighs pixels 0, 1, 2 by 0.75, 0.75, 0.25 (normalised): (0·.75 + 70·.75 + 140·.25)/1.75 = 50.
    // A plain bilinear lerp would give 35 and 175.
    expect([...resizeRgb8(row([0, 70, 140, 210]), 1, 2).rgb].filter((_, i) => i % 3 === 0)).toEqual([50, 160]);
    expect([...resizeRgb8(row([0, 100]), 1, 4).rgb].filter((_, i) => i % 3 === 0)).toEqual([0, 25, 75, 100]);
    const c = bilinearCoeffs(4, 2);
    expect([...c.weights.subarray(0, 3)].map((w) => w * 1.75)).toEqual([0.75, 0.75, 0.25]);
  });

  it('vertical axis too, and the same size is an exact copy', () => {
    const col = { width: 1, height: 4, rgb: Uint8Array.from([0, 70, 140, 210].flatMap((v) => [v, 255 - v, 7])) };
    const out = resizeRgb8(col, 2, 1);
    expect([...out.rgb]).toEqual([50, 205, 7, 160, 95, 7]);
    const img = randomRgb(new Generator(1), 5, 3);
    expect(resizeRgb8(img, 3, 5).rgb).toEqual(img.rgb);
  });

  it.each([
    [13, 9, 5, 4], // shrink both, ragged factors
    [6, 7, 11, 15], // enlarge both
    [17, 5, 5, 17], // shrink one, enlarge the other
    [10, 10, 10, 3], // width only
    [31, 23, 8, 8], // ~3-4× shrink
  ])('%i×%i → %i×%i matches the float64 reference within PIL\'s per-pass rounding', (w, h, outW, outH) => {
    const img = randomRgb(new Generator(w * 100 + h), w, h);
    const out = toNormalizedChw(resizeRgb8(img, outH, outW));
    // Unrounded float64 reference: each pass rounds by ≤ 0.5 level, so ≤ 1 level overall (2/255 in [-1, 1]).
    const exact = normalizeRef(resizeRef(img.rgb, w, h, outH, outW, false).values, outW, outH);
    let maxDiff = 0;
    for (let i = 0; i < out.length; i++) maxDiff = Math.max(maxDiff, Math.abs(out[i] - exact[i]));
    expect(maxDiff).toBeLessThanOrEqual(2 / 255 + 1e-6);
    // Rounding each pass in float64 (PIL's 8-bit path) gives the same bytes, except where a pass lands on a
    // half (within 1e-7), which PIL's 22-bit fixed-point weights may round either way: those may differ by 1 level.
    const r = resizeRef(img.rgb, w, h, outH, outW, true);
    const rounded = normalizeRef(r.values, outW, outH);
    const n = outW * outH;
    const tieChw = Uint8Array.from({ length: 3 * n }, (_, i) => r.tie[3 * (i % n) + Math.floor(i / n)]);
    let same = 0;
    for (let i = 0; i < out.length; i++) {
      const d = Math.abs(out[i] - rounded[i]);
      if (d < 1e-6) same++;
      else expect({ i, d: d * 127.5, tie: tieChw[i] }).toEqual({ i, d: expect.closeTo(1, 5), tie: 1 });
    }
    expect(same / out.length).toBeGreaterThan(0.9);
  });

  it('antialiases: 1-pixel stripes shrunk 4× come out flat grey, not aliased', () => {
    const w = 32, h = 4;
    const rgb = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) rgb.fill(x % 2 ? 255 : 0, (y * w + x) * 3, (y * w + x) * 3 + 3);
    const out = resizeRgb8({ width: w, height: h, rgb }, 4, 8);
    // Interior pixels average the stripes; a 2-tap lerp at these centres would give pure 0/255 stripes.
    for (let x = 1; x < 7; x++) expect(Math.abs(out.rgb[x * 3] - 127.5)).toBeLessThan(20);
  });
});

describe('decoding', () => {
  it('JPEG: matches jpeg-js on the same bytes, RGB without alpha', () => {
    const bytes = encodeFixtureImage({ width: 12, height: 9, seed: 4, format: 'jpg' });
    const d = decodeJpeg(bytes);
    const ref = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true });
    expect([d.width, d.height]).toEqual([12, 9]);
    expect(d.rgb).toEqual(rgbOf(ref.data));
    expect(decodeImageBytes(bytes).rgb).toEqual(d.rgb);
  });

  it('a JPEG at the model size decodes near its source pattern (a lossy codec, not garbage)', () => {
    const bytes = encodeFixtureImage({ width: 16, height: 16, seed: 2, format: 'jpg' });
    const out = loadModelImage(bytes, [16, 16]);
    const ref = normalizeRef(rgbOf(pattern(16, 16, 2)), 16, 16);
    expect(relL2(out, ref)).toBeLessThan(0.1);
  });

  it('every truncation of a JPEG is a typed error, never a partial image or a hang', () => {
    const bytes = encodeFixtureImage({ width: 21, height: 13, seed: 6, format: 'jpg' });
    for (let n = 0; n < bytes.length; n++) {
      expect(() => decodeJpeg(bytes.subarray(0, n)), `prefix of ${n} bytes`).toThrow(JpegError);
    }
  });

  it('random bytes, empty input and other formats are errors that say what they saw', () => {
    const gen = new Generator(9);
    const junk = Uint8Array.from({ length: 64 }, () => gen.nextU32() & 255);
    expect(() => decodeImageBytes(junk)).toThrow(/not a JPEG or PNG/);
    expect(() => decodeImageBytes(new Uint8Array())).toThrow(/0 bytes/);
    expect(() => decodeImageBytes(Uint8Array.from([0x47, 0x49, 0x46, 0x38, 0x39, 0x61]))).toThrow(/starting 47 49 46 38/);
    const png = encodeFixtureImage({ width: 4, height: 4, seed: 1, format: 'png' });
    expect(() => decodeImageBytes(png.subarray(0, png.length - 10))).toThrow(/undecodable PNG/);
    const jpg = encodeFixtureImage({ width: 4, height: 4, seed: 1, format: 'jpg' });
    const damaged = Uint8Array.from(jpg);
    damaged.fill(0, 3, 40); // header segments wiped
    expect(() => decodeImageBytes(damaged)).toThrow(JpegError);
  });

  it('refuses absurd JPEG dimensions before allocating them', () => {
    const bytes = Uint8Array.from(encodeFixtureImage({ width: 8, height: 8, seed: 1, format: 'jpg' }));
    // Patch the SOF0 frame header's height and width to 60000 × 60000 (3.6 gigapixels).
    let i = 2;
    while (!(bytes[i] === 0xff && bytes[i + 1] === 0xc0)) i += 2 + ((bytes[i + 2] << 8) | bytes[i + 3]);
    bytes[i + 5] = 0xea; bytes[i + 6] = 0x60; bytes[i + 7] = 0xea; bytes[i + 8] = 0x60;
    expect(() => decodeJpeg(bytes)).toThrow(/maxResolutionInMP|megapixel|limit/i);
  });
});
