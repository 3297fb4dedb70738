// Tiled VAE decoding, as diffusers' `enable_tiling`: the latent is cut into overlapping square tiles, each
// decoded alone, and neighbouring tiles are cross-faded over their overlap (a linear ramp, top→bottom then
// left→right) before each is cropped to the part it owns.
//
// Why: a decoder's widest activation is [B, C, H, W] at full resolution (SD1.5: 256 channels at 512², i.e.
// 256 MiB per image), and a storage binding is limited per device (lavapipe: 128 MiB). Tiles keep every
// binding small at the price of a slightly different image: the mid-block attention sees one tile, and the seams
// are blended rather than exact. Images are decoded one at a time for the same reason.
import { ArgumentError } from '../errors.js';
import { Tensor, tidy } from '../tensor/tensor.js';
import { add, mul, sub } from '../tensor/ops/elementwise.js';
import { concat, slice } from '../tensor/ops/layout.js';
import type { AutoencoderKL } from './vae.js';

export interface TiledDecodeOptions {
  /** Tile side in latent pixels (default 32: 256² images for SD1.5's factor of 8). */
  tile?: number;
  /** Fraction of a tile shared with each neighbour (default 0.25, as diffusers). */
  overlap?: number;
}

/** b with its first e rows (axis 2) or columns (axis 3) faded in from a's last e: a·(1 − y/e) + b·(y/e). */
function blend(a: Tensor, b: Tensor, extent: number, axis: 2 | 3): Tensor {
  const e = Math.min(a.shape[axis], b.shape[axis], extent);
  if (e <= 0) return b;
  return tidy(() => {
    const rampShape = axis === 2 ? [1, 1, e, 1] : [1, 1, 1, e];
    const ramp = Tensor.fromArray(Array.from({ length: e }, (_, y) => y / e), rampShape);
    const aTail = slice(a, axis, { start: a.shape[axis] - e });
    const bHead = slice(b, axis, { end: e });
    const faded = add(aTail, mul(sub(bHead, aTail), ramp));
    return e === b.shape[axis] ? faded : concat([faded, slice(b, axis, { start: e })], axis);
  });
}

/**
 * The decoder's image [B, out, h·f, w·f] of z [B, latent, h, w] (already divided by the scaling factor), tile by
 * tile. A latent no larger than one tile is decoded whole, image by image, and equals `vae.decode`.
 */
export function decodeTiled(vae: AutoencoderKL, z: Tensor, opts: TiledDecodeOptions = {}): Tensor {
  const tile = opts.tile ?? 32;
  const overlap = opts.overlap ?? 0.25;
  if (!(Number.isInteger(tile) && tile >= 2)) throw new ArgumentError(`decodeTiled: tile must be an integer ≥ 2, got ${tile}`);
  if (!(overlap >= 0 && overlap < 1)) throw new ArgumentError(`decodeTiled: overlap must be in [0, 1), got ${overlap}`);
  const f = vae.downsampleFactor;
  // Tiles start every `stride` latent pixels and own that many (× f image pixels) of the output; the rest of a
  // tile, (tile − stride)·f pixels, is the overlap faded into its successor.
  const stride = Math.max(1, Math.floor(tile * (1 - overlap)));
  const own = stride * f;
  const extent = (tile - stride) * f;
  const [B, , h, w] = z.shape;
  const starts = (n: number) => Array.from({ length: Math.ceil(n / stride) }, (_, k) => k * stride);
  return tidy(() => {
    const images: Tensor[] = [];
    for (let b = 0; b < B; b++) {
      const zb = slice(z, 0, { start: b, end: b + 1 });
      if (h <= tile && w <= tile) {
        images.push(vae.decode(zb));
        continue;
      }
      const rows: Tensor[][] = [];
      for (const i of starts(h)) {
        const row: Tensor[] = [];
        for (const j of starts(w)) {
          const zt = slice(slice(zb, 2, { start: i, end: Math.min(i + tile, h) }), 3, { start: j, end: Math.min(j + tile, w) });
          let t = vae.decode(zt);
          if (rows.length) t = blend(rows[rows.length - 1][row.length], t, extent, 2);
          if (row.length) t = blend(row[row.length - 1], t, extent, 3);
          row.push(t);
        }
        rows.push(row);
      }
      // Each tile keeps its first `own` rows and columns: the rest is the next tile's faded-in overlap.
      const crop = (t: Tensor) => slice(slice(t, 2, { end: Math.min(own, t.shape[2]) }), 3, { end: Math.min(own, t.shape[3]) });
      images.push(concat(rows.map((row) => concat(row.map(crop), 3)), 2));
    }
    return B === 1 ? images[0] : concat(images, 0);
  });
}

/**
 * Bytes of the decoder's widest activation for one latent of h × w: at level k (resolution h·2^k), the
 * upsampled output of level k − 1 and level k's own channels (reversed block_out_channels), in f32.
 */
export function decodeActivationBytes(vae: AutoencoderKL, h: number, w: number): number {
  const rev = [...vae.config.blockOutChannels].reverse();
  let widest = 0;
  rev.forEach((c, k) => {
    const channels = Math.max(c, k > 0 ? rev[k - 1] : c);
    widest = Math.max(widest, channels * h * w * 4 ** k * 4);
  });
  return widest;
}

/** The largest square tile (latent side, at most `max`) whose decode binds no more than `limitBytes`. */
export function largestTile(vae: AutoencoderKL, limitBytes: number, max: number): number {
  let t = max;
  while (t > 2 && decodeActivationBytes(vae, t, t) > limitBytes) t--;
  return t;
}
