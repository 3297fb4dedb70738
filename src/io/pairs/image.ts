// Image bytes → the model's input: decode (JPEG or PNG) → resize to the model's resolution → CHW floats in [-1, 1].
//
// The authors' pipeline is torchvision `Resize((512, 512), BILINEAR)` on a PIL image, then ToTensor and
// Normalize([0.5], [0.5]) (LPO-SPEC §2.1). On PIL images torchvision always calls PIL's `Image.resize`, whose
// bilinear filter *antialiases*: when shrinking by s it widens the triangle filter to a support of s source pixels
// (a plain 2-tap bilinear lerp would alias on a 1024 → 512 Pick-a-Pic image). We reproduce PIL's resampler
// exactly (Pillow's Resample.c): separable, horizontal pass first, each pass in 22-bit fixed point and rounded to
// 8 bits, so the floats we hand the VAE are the ones the authors' ToTensor made from the same decoded pixels.
// The only remaining difference is the JPEG decoder (see src/io/jpeg.ts).
import * as fs from 'node:fs';
import pngjs from 'pngjs';
import { ImageError, ImageFileError } from '../image.js';
import { decodeJpeg, isJpeg, type JpegOptions, type Rgb8Image } from '../jpeg.js';
import { messageOf } from './errors.js';

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && PNG_SIGNATURE.every((b, i) => bytes[i] === b);
}

/** Decodes PNG or JPEG bytes (told apart by their signature) to 8-bit RGB; throws ImageError or JpegError saying why not. */
export function decodeImageBytes(bytes: Uint8Array, opts: JpegOptions = {}): Rgb8Image {
  if (isJpeg(bytes)) return decodeJpeg(bytes, opts);
  if (isPng(bytes)) return decodePngRgb8(bytes);
  const head = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
  throw new ImageError(`not a JPEG or PNG (${bytes.length} bytes, starting ${head || '(empty)'})`);
}

// src/io/image.ts's decodePng returns [0, 1] floats for the pipeline's outputs; PIL-exact resampling needs the
// bytes, so this reads them from pngjs directly. Alpha is dropped as PIL's convert('RGB') does (no compositing).
function decodePngRgb8(bytes: Uint8Array): Rgb8Image {
  let img: { width: number; height: number; data: Buffer };
  try {
    img = pngjs.PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (e) {
    throw new ImageError(`undecodable PNG: ${messageOf(e)}`);
  }
  const { width, height, data } = img;
  const n = width * height;
  const rgb = new Uint8Array(3 * n);
  for (let p = 0; p < n; p++) {
    rgb[3 * p] = data[4 * p];
    rgb[3 * p + 1] = data[4 * p + 1];
    rgb[3 * p + 2] = data[4 * p + 2];
  }
  return { width, height, rgb };
}

const PRECISION_BITS = 32 - 8 - 2; // Pillow's fixed point for 8-bit images

interface Coeffs {
  /** First source index and tap count per output pixel. */
  start: Int32Array;
  count: Int32Array;
  /** Fixed-point weights, `ksize` per output pixel. */
  weights: Int32Array;
  ksize: number;
}

/** PIL's BILINEAR coefficients for resampling `inSize` → `outSize` (triangle filter widened when shrinking). */
export function bilinearCoeffs(inSize: number, outSize: number): { start: Int32Array; count: Int32Array; weights: Float64Array; ksize: number } {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // the triangle's support is 1 source pixel, ×filterScale when shrinking
  const ksize = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float64Array(outSize * ksize);
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    // C's (int) cast truncates toward zero; Math.trunc keeps Pillow's bounds for a negative center − support.
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const hi = Math.min(Math.trunc(center + support + 0.5), inSize);
    let sum = 0;
    for (let x = lo; x < hi; x++) {
      const w = Math.max(0, 1 - Math.abs((x - center + 0.5) / filterScale));
      weights[o * ksize + x - lo] = w;
      sum += w;
    }
    if (sum !== 0) for (let x = 0; x < hi - lo; x++) weights[o * ksize + x] /= sum;
    start[o] = lo;
    count[o] = hi - lo;
  }
  return { start, count, weights, ksize };
}

function fixedCoeffs(inSize: number, outSize: number): Coeffs {
  const c = bilinearCoeffs(inSize, outSize);
  const weights = new Int32Array(c.weights.length);
  for (let i = 0; i < weights.length; i++) {
    const v = c.weights[i] * (1 << PRECISION_BITS);
    weights[i] = v < 0 ? Math.trunc(v - 0.5) : Math.trunc(v + 0.5);
  }
  return { start: c.start, count: c.count, weights, ksize: c.ksize };
}

function clip8(acc: number): number {
  const v = acc >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * Resizes 8-bit RGB (HWC) to [outH, outW] exactly as Pillow's `Image.resize(..., BILINEAR)` does for an RGB image:
 * the horizontal pass first (skipped when the width is unchanged), then the vertical one, each rounded to bytes.
 */
export function resizeRgb8(img: Rgb8Image, outH: number, outW: number): Rgb8Image {
  let { width, height, rgb } = img;
  if (width !== outW) {
    const c = fixedCoeffs(width, outW);
    const out = new Uint8Array(outW * height * 3);
    const bias = 1 << (PRECISION_BITS - 1);
    for (let y = 0; y < height; y++) {
      const row = y * width * 3;
      for (let o = 0; o < outW; o++) {
        let r = bias, g = bias, b = bias;
        const s = c.start[o], k = o * c.ksize;
        for (let i = 0; i < c.count[o]; i++) {
          const w = c.weights[k + i], p = row + (s + i) * 3;
          r += rgb[p] * w; g += rgb[p + 1] * w; b += rgb[p + 2] * w;
        }
        const q = (y * outW + o) * 3;
        out[q] = clip8(r); out[q + 1] = clip8(g); out[q + 2] = clip8(b);
      }
    }
    rgb = out;
    width = outW;
  }
  if (height !== outH) {
    const c = fixedCoeffs(height, outH);
    const out = new Uint8Array(width * outH * 3);
    const bias = 1 << (PRECISION_BITS - 1);
    for (let o = 0; o < outH; o++) {
      const s = c.start[o], k = o * c.ksize;
      for (let x = 0; x < width; x++) {
        let r = bias, g = bias, b = bias;
        for (let i = 0; i < c.count[o]; i++) {
          const w = c.weights[k + i], p = ((s + i) * width + x) * 3;
          r += rgb[p] * w; g += rgb[p + 1] * w; b += rgb[p + 2] * w;
        }
        const q = (o * width + x) * 3;
        out[q] = clip8(r); out[q + 1] = clip8(g); out[q + 2] = clip8(b);
      }
    }
    rgb = out;
    height = outH;
  }
  return { width, height, rgb };
}

/** 8-bit RGB (HWC) → CHW float32 in [-1, 1]: ToTensor's b/255 then Normalize's (x − 0.5)/0.5, i.e. b/127.5 − 1. */
export function toNormalizedChw(img: Rgb8Image): Float32Array {
  const n = img.width * img.height;
  const out = new Float32Array(3 * n);
  for (let p = 0; p < n; p++) {
    for (let c = 0; c < 3; c++) out[c * n + p] = img.rgb[3 * p + c] / 127.5 - 1;
  }
  return out;
}

/** Image bytes → CHW float32 in [-1, 1] at [height, width]. Throws ImageError/JpegError saying what is wrong with the bytes. */
export function loadModelImage(bytes: Uint8Array, resolution: readonly [number, number], opts: JpegOptions = {}): Float32Array {
  const img = decodeImageBytes(bytes, opts);
  return toNormalizedChw(resizeRgb8(img, resolution[0], resolution[1]));
}

/** An image file (PNG or JPEG) → CHW float32 in [-1, 1] at [height, width]; ImageFileError naming the file otherwise. */
export function readModelImage(file: string, resolution: readonly [number, number], opts: JpegOptions = {}): Float32Array {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new ImageFileError(file, `cannot read: ${(e as NodeJS.ErrnoException).code ?? messageOf(e)}`);
  }
  try {
    return loadModelImage(bytes, resolution, opts);
  } catch (e) {
    throw new ImageFileError(file, messageOf(e));
  }
}
