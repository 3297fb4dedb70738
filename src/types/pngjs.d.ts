// The part of pngjs 7 that src/io/image.ts uses (the package ships no types).
declare module 'pngjs' {
  export interface PNGImage {
    width: number;
    height: number;
    /** RGBA, 8 bits per channel (16-bit files are rescaled unless skipRescale). */
    data: Buffer;
    depth?: number;
    colorType?: number;
  }
  export interface PNGWriteOptions {
    /** 0 gray, 2 RGB, 4 gray+alpha, 6 RGBA (default 6). */
    colorType?: 0 | 2 | 4 | 6;
    /** Layout of `data`: 0, 2, 4 or 6 (default 6, RGBA). */
    inputColorType?: 0 | 2 | 4 | 6;
    inputHasAlpha?: boolean;
    bitDepth?: 8 | 16;
    deflateLevel?: number;
  }
  export interface PNGReadOptions {
    skipRescale?: boolean;
  }
  export const PNG: {
    sync: {
      read(buffer: Buffer, options?: PNGReadOptions): PNGImage;
      write(png: { width: number; height: number; data: Buffer }, options?: PNGWriteOptions): Buffer;
    };
  };
  const pngjs: { PNG: typeof PNG };
  export default pngjs;
}
