// PNG images through pngjs: RGB float arrays in [0, 1] ([3,H,W], [1,3,H,W] or [H,W,3]) ↔ 8-bit PNG files.
// Quantisation follows diffusers' numpy_to_pil: clamp to [0, 1], ×255, round half to even, uint8.
import * as fs from 'node:fs';
import pngjs from 'pngjs';
import { FileFormatError, LpoError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';

/** An image array with a shape or values that cannot be written, or bytes that are not a decodable image. */
export class ImageError extends LpoError {}

/** An image file that is missing, unreadable or not a decodable image; names the file. */
export class ImageFileError extends FileFormatError {}

export type ImageLayout = 'CHW' | 'HWC';

export interface ImageOptions {
  /** How a rank-3 [3, H, 3] shape is read when it is ambiguous (default 'CHW', PyTorch's order). */
  layout?: ImageLayout;
}

/** Resolves the layout, height and width of an RGB image shape. */
export function imageLayout(shape: readonly number[], opts: ImageOptions = {}): { layout: ImageLayout; height: number; width: number } {
  let s = shape;
  if (s.length === 4) {
    if (s[0] !== 1) throw new ImageError(`image shape [${shape.join(', ')}]: a batch of ${s[0]}; write one image at a time`);
    s = s.slice(1);
  }
  if (s.length !== 3) throw new ImageError(`image shape [${shape.join(', ')}]: expected [3, H, W], [1, 3, H, W] or [H, W, 3]`);
  const chw = s[0] === 3;
  const hwc = s[2] === 3;
  if (!chw && !hwc) throw new ImageError(`image shape [${shape.join(', ')}]: no axis of 3 RGB channels (first or last)`);
  const layout: ImageLayout = chw && hwc ? (opts.layout ?? 'CHW') : chw ? 'CHW' : 'HWC';
  if (shape.length === 4 && layout !== 'CHW') throw new ImageError(`image shape [${shape.join(', ')}]: rank-4 images must be [1, 3, H, W]`);
  const [height, width] = layout === 'CHW' ? [s[1], s[2]] : [s[0], s[1]];
  if (!(height > 0 && width > 0)) throw new ImageError(`image shape [${shape.join(', ')}] is empty`);
  return { layout, height, width };
}

/** [0, 1] float → uint8 as numpy's (x * 255).round() after clamping (NaN → 0). */
export function toByte(x: number): number {
  if (!(x > 0)) return 0;
  if (x >= 1) return 255;
  const y = x * 255;
  const r = Math.round(y);
  return r - y === 0.5 && r % 2 === 1 ? r - 1 : r; // ties to even
}

/** RGB floats in [0, 1] → packed RGBA bytes (alpha 255). */
export function toRgba8(data: ArrayLike<number>, shape: readonly number[], opts: ImageOptions = {}): { width: number; height: number; rgba: Buffer } {
  const { layout, height, width } = imageLayout(shape, opts);
  const n = height * width;
  if (data.length !== 3 * n) throw new ImageError(`image data has ${data.length} values, shape [${shape.join(', ')}] needs ${3 * n}`);
  const rgba = Buffer.alloc(4 * n);
  for (let p = 0; p < n; p++) {
    for (let c = 0; c < 3; c++) rgba[4 * p + c] = toByte(layout === 'CHW' ? data[c * n + p] : data[3 * p + c]);
    rgba[4 * p + 3] = 255;
  }
  return { width, height, rgba };
}

/** Encodes an RGB float image in [0, 1] as an 8-bit RGB PNG. */
export function encodePng(data: ArrayLike<number>, shape: readonly number[], opts: ImageOptions = {}): Buffer {
  const { width, height, rgba } = toRgba8(data, shape, opts);
  return pngjs.PNG.sync.write({ width, height, data: rgba }, { colorType: 2, inputColorType: 6, bitDepth: 8 });
}

export function writePng(path: string, data: ArrayLike<number>, shape: readonly number[], opts: ImageOptions = {}): void {
  const buf = encodePng(data, shape, opts);
  try {
    fs.writeFileSync(path, buf);
  } catch (e) {
    throw new ImageError(`cannot write '${path}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** Reads a GPU tensor ([3,H,W], [1,3,H,W] or [H,W,3], values in [0, 1]) back and writes it as a PNG. */
export async function writePngTensor(path: string, t: Tensor, opts: ImageOptions = {}): Promise<void> {
  writePng(path, await t.toArray(), t.shape, opts);
}

export interface DecodedImage {
  width: number;
  height: number;
  /** RGB in [0, 1] (byte / 255), laid out as `shape`. */
  data: Float32Array;
  shape: number[];
  /** Whether the file had an alpha channel with any value below 255 (alpha is dropped). */
  hadAlpha: boolean;
}

/** Decodes a PNG to RGB floats in [0, 1] ([3, H, W] by default; 16-bit files are reduced to 8 bits). */
export function decodePng(buf: Buffer, opts: { layout?: ImageLayout; what?: string } = {}): DecodedImage {
  let img: { width: number; height: number; data: Buffer };
  try {
    img = pngjs.PNG.sync.read(buf);
  } catch (e) {
    throw new ImageError(`${opts.what ?? 'PNG data'} is not a readable PNG: ${(e as Error).message}`);
  }
  const { width, height } = img;
  const n = width * height;
  const layout = opts.layout ?? 'CHW';
  const data = new Float32Array(3 * n);
  let hadAlpha = false;
  for (let p = 0; p < n; p++) {
    for (let c = 0; c < 3; c++) {
      const v = img.data[4 * p + c] / 255;
      if (layout === 'CHW') data[c * n + p] = v;
      else data[3 * p + c] = v;
    }
    if (img.data[4 * p + 3] !== 255) hadAlpha = true;
  }
  return { width, height, data, shape: layout === 'CHW' ? [3, height, width] : [height, width, 3], hadAlpha };
}

export function readPng(path: string, opts: { layout?: ImageLayout } = {}): DecodedImage {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(path);
  } catch (e) {
    throw new ImageFileError(path, `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    return decodePng(buf, { ...opts, what: 'the file' });
  } catch (e) {
    throw new ImageFileError(path, (e as Error).message);
  }
}
