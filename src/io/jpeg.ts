// JPEG decoding through jpeg-js (a maintained pure-JS baseline + progressive decoder): 8-bit RGB bytes.
//
// Fidelity: the authors decode with PIL (libjpeg-turbo: ISLOW IDCT, "fancy" triangular chroma upsampling).
// jpeg-js upsamples chroma by replication and rounds its IDCT differently, so the same file can decode to
// pixels a few levels (of 255) apart near colour edges; luma-only and 4:4:4 files agree more closely. That is
// well inside the noise of a VAE encode, and the alternative (a native or WASM libjpeg) is not worth a build step.
import jpeg from 'jpeg-js';
import { LpoError } from '../errors.js';

/** An image as 8-bit RGB bytes, row-major, interleaved (HWC). */
export interface Rgb8Image {
  width: number;
  height: number;
  /** width·height·3 bytes. */
  rgb: Uint8Array;
}

/** JPEG bytes that jpeg-js cannot decode (the message says why). Callers wrap it with the file and row. */
export class JpegError extends LpoError {}

export interface JpegOptions {
  /** Refuse images larger than this many megapixels before allocating them (default 64: 8k × 8k). */
  maxMegapixels?: number;
  /** Refuse a decode that needs more memory than this (default 512 MiB). */
  maxMemoryMiB?: number;
}

export const JPEG_SOI = [0xff, 0xd8, 0xff] as const;

export function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === JPEG_SOI[0] && bytes[1] === JPEG_SOI[1] && bytes[2] === JPEG_SOI[2];
}

/** Decodes a JPEG (greyscale, YCbCr or Adobe CMYK/YCCK) to RGB bytes like PIL's `Image.open(...).convert('RGB')`. */
export function decodeJpeg(bytes: Uint8Array, opts: JpegOptions = {}): Rgb8Image {
  if (!isJpeg(bytes)) throw new JpegError('not a JPEG (no start-of-image marker FF D8 FF)');
  let img: { width: number; height: number; data: Uint8Array };
  try {
    img = jpeg.decode(bytes, {
      useTArray: true,
      formatAsRGBA: false,
      // jpeg-js's default is tolerant: a truncated file decodes with its missing blocks left grey. A missing
      // block is a damaged image, so it must be an error here, not a silently wrong picture.
      tolerantDecoding: false,
      maxResolutionInMP: opts.maxMegapixels ?? 64,
      maxMemoryUsageInMB: opts.maxMemoryMiB ?? 512,
    });
  } catch (e) {
    throw new JpegError(`undecodable JPEG: ${e instanceof Error ? e.message : String(e)}`);
  }
  const { width, height, data } = img;
  if (!(width > 0 && height > 0) || data.length !== width * height * 3) {
    throw new JpegError(`undecodable JPEG: decoder returned ${data.length} bytes for ${width}×${height}`);
  }
  return { width, height, rgb: data };
}
