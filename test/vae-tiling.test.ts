// Tiled VAE decoding (src/nn/vae_tiling.ts). The assembly (which latent tile goes where, the linear cross-fade
// over each overlap, the crop of each tile to the part it owns) against an independent host version in float64
// built from the same per-tile decodes, at a ragged latent (11 × 9, tiles of 4 starting every 3), and the
// whole-image decode when the latent fits one tile. The decoder itself is tested in test/vae.test.ts.
import { describe, expect, it } from 'vitest';
import { setupGpu, relL2 } from './helpers.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { noGrad } from '../src/autograd/tape.js';
import { slice } from '../src/tensor/ops/layout.js';
import { AutoencoderKL } from '../src/nn/vae.js';
import { decodeActivationBytes, decodeTiled, largestTile } from '../src/nn/vae_tiling.js';
import { TOY_VAE_CONFIG } from '../src/toy/model.js';
import { ArgumentError } from '../src/errors.js';

await setupGpu();
const vae = new AutoencoderKL(TOY_VAE_CONFIG, { gen: new Generator(3) });
const f = vae.downsampleFactor;

/** One decoded tile on the host: [C, H, W] as rows of Float64Array. */
type Img = { c: number; h: number; w: number; v: Float64Array };
const at = (m: Img, c: number, y: number, x: number) => m.v[(c * m.h + y) * m.w + x];

async function decodeHost(z: Tensor): Promise<Img> {
  const t = noGrad(() => vae.decode(z));
  const v = Float64Array.from(await t.toArray());
  const [, c, h, w] = t.shape;
  t.dispose();
  return { c, h, w, v };
}

/** The tiled image of one latent [1, C, h, w], assembled on the host pixel by pixel. */
async function tiledHost(z: Tensor, tile: number, stride: number): Promise<Img> {
  const [, , h, w] = z.shape;
  const e = (tile - stride) * f;
  const starts = (n: number) => Array.from({ length: Math.ceil(n / stride) }, (_, k) => k * stride);
  const grid: Img[][] = [];
  for (const i of starts(h)) {
    const row: Img[] = [];
    for (const j of starts(w)) {
      const zt = slice(slice(z, 2, { start: i, end: Math.min(i + tile, h) }), 3, { start: j, end: Math.min(j + tile, w) });
      const t = await decodeHost(zt);
      zt.dispose();
      row.push(t);
    }
    grid.push(row);
  }
  // Fade each tile into its upper, then its left neighbour (both already faded), as the GPU code does.
  for (let r = 0; r < grid.length; r++) for (let q = 0; q < grid[r].length; q++) {
    const b = grid[r][q];
    const fade = (a: Img, vertical: boolean) => {
      const n = Math.min(vertical ? a.h : a.w, vertical ? b.h : b.w, e);
      for (let c = 0; c < b.c; c++) for (let y = 0; y < b.h; y++) for (let x = 0; x < b.w; x++) {
        const k = vertical ? y : x;
        if (k >= n) continue;
        const ay = vertical ? a.h - n + y : y;
        const ax = vertical ? x : a.w - n + x;
        const idx = (c * b.h + y) * b.w + x;
        b.v[idx] = at(a, c, ay, ax) * (1 - k / n) + b.v[idx] * (k / n);
      }
    };
    if (r > 0) fade(grid[r - 1][q], true);
    if (q > 0) fade(grid[r][q - 1], false);
  }
  const H = h * f;
  const W = w * f;
  const C = grid[0][0].c;
  const out: Img = { c: C, h: H, w: W, v: new Float64Array(C * H * W) };
  for (let r = 0; r < grid.length; r++) for (let q = 0; q < grid[r].length; q++) {
    const t = grid[r][q];
    const oy = r * stride * f;
    const ox = q * stride * f;
    for (let c = 0; c < C; c++) for (let y = 0; y < Math.min(stride * f, t.h); y++) for (let x = 0; x < Math.min(stride * f, t.w); x++) {
      out.v[(c * H + oy + y) * W + ox + x] = at(t, c, y, x);
    }
  }
  return out;
}

describe('decodeTiled', () => {
  it('a ragged latent [2, 4, 11, 9] in tiles of 4 every 3: the host assembly of the same tile decodes (relL2 < 1e-6)', async () => {
    const z = Tensor.randn([2, 4, 11, 9], new Generator(5));
    const y = noGrad(() => decodeTiled(vae, z, { tile: 4, overlap: 0.25 }));
    expect(y.shape).toEqual([2, 3, 11 * f, 9 * f]);
    const got = await y.toArray();
    y.dispose();
    const per = 3 * 11 * f * 9 * f;
    for (let b = 0; b < 2; b++) {
      const zb = slice(z, 0, { start: b, end: b + 1 });
      const want = await tiledHost(zb, 4, 3);
      zb.dispose();
      // The fade is one multiply-add in f32 on the GPU: float64 agrees to rounding.
      expect(relL2(got.subarray(b * per, (b + 1) * per), want.v)).toBeLessThan(1e-6);
    }
    z.dispose();
  });

  it('a latent no larger than one tile is the whole decode, bit for bit', async () => {
    const z = Tensor.randn([2, 4, 6, 5], new Generator(6));
    const a = await noGrad(() => decodeTiled(vae, z, { tile: 6 })).toArray();
    const b = await noGrad(() => vae.decode(z)).toArray();
    expect(Array.from(a)).toEqual(Array.from(b));
    z.dispose();
  });

  it('rejects a bad tile or overlap', () => {
    const z = Tensor.randn([1, 4, 8, 8], new Generator(7));
    expect(() => decodeTiled(vae, z, { tile: 1 })).toThrow(ArgumentError);
    expect(() => decodeTiled(vae, z, { overlap: 1 })).toThrow(ArgumentError);
    z.dispose();
  });
});

describe('decodeActivationBytes', () => {
  it('SD1.5: 256 channels at 512² (256 MiB) for a 64² latent; tiles of 45 fit 128 MiB', async () => {
    const { SD15_VAE_CONFIG } = await import('../src/nn/vae.js');
    const sd = new AutoencoderKL(SD15_VAE_CONFIG, { gen: new Generator(1) });
    expect(decodeActivationBytes(sd, 64, 64)).toBe(256 * 512 * 512 * 4);
    expect(largestTile(sd, 128 * 2 ** 20, 64)).toBe(45);
    sd.dispose();
  });
});
