// Pooling and resampling: avgPool2d, spatialMean (global mean over H·W), upsampleNearest2x.
import { ShapeError, ArgumentError, DTypeError } from '../../errors.js';
import { defineParams } from '../../gpu/params.js';
import { gpu } from '../../gpu/runtime.js';
import { kernelModule } from '../../gpu/wgsl.js';
import { record } from '../../autograd/tape.js';
import { Tensor } from '../tensor.js';

const code = kernelModule('pool');
const P = defineParams('pool.wgsl', 'Params', {
  planes: 'u32', h: 'u32', w: 'u32', oh: 'u32', ow: 'u32', kh: 'u32', kw: 'u32', sh: 'u32', sw: 'u32', total: 'u32',
});

const WG = 256;

function check4d(op: string, x: Tensor): [number, number, number, number] {
  if (x.dtype !== 'f32') throw new DTypeError(`${op}: expects an f32 tensor, got ${x.dtype}`);
  if (x.rank !== 4) throw new ShapeError(`${op}: x [${x.shape}] must be [N, C, H, W]`);
  return x.shape as unknown as [number, number, number, number];
}

interface PoolGeom { planes: number; h: number; w: number; oh: number; ow: number; kh: number; kw: number; sh: number; sw: number }

function launch(entry: string, g: PoolGeom, src: Tensor, dst: Tensor, threads: number): void {
  if (!threads) return;
  gpu().dispatch({
    kernel: { name: `pool.${entry}`, code, entry, constants: { WG } },
    buffers: [src.buffer, dst.buffer],
    params: P.of({ ...g, total: threads }),
    workgroups: Math.ceil(threads / WG),
  });
}

const pair = (v: number | [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : v);

/** Average pooling without padding (torch avg_pool2d with padding = 0); stride defaults to the kernel. */
export function avgPool2d(x: Tensor, kernel: number | [number, number], stride?: number | [number, number]): Tensor {
  const [n, c, h, w] = check4d('avgPool2d', x);
  const [kh, kw] = pair(kernel);
  const [sh, sw] = pair(stride ?? kernel);
  if ([kh, kw, sh, sw].some((v) => !Number.isInteger(v) || v < 1)) throw new ArgumentError(`avgPool2d: kernel ${kernel} and stride ${stride} must be positive integers`);
  if (kh > h || kw > w) throw new ShapeError(`avgPool2d: kernel ${kh}x${kw} larger than x [${x.shape}]`);
  const g: PoolGeom = { planes: n * c, h, w, oh: Math.floor((h - kh) / sh) + 1, ow: Math.floor((w - kw) / sw) + 1, kh, kw, sh, sw };
  const y = Tensor.empty([n, c, g.oh, g.ow]);
  launch('avg_fwd', g, x, y, y.size);
  return record('avgPool2d', [x], y, [], (dy) => [
    () => {
      const dx = Tensor.empty(x.shape);
      launch('avg_bwd', g, dy, dx, dx.size);
      return dx;
    },
  ]);
}

/** Mean over the spatial dimensions: [N, C, H, W] → [N, C]. */
export function spatialMean(x: Tensor): Tensor {
  const [n, c, h, w] = check4d('spatialMean', x);
  if (h * w === 0) throw new ShapeError(`spatialMean: empty spatial size in x [${x.shape}]`);
  const g: PoolGeom = { planes: n * c, h, w, oh: 1, ow: 1, kh: 1, kw: 1, sh: 1, sw: 1 };
  const y = Tensor.empty([n, c]);
  launch('mean_fwd', g, x, y, n * c);
  return record('spatialMean', [x], y, [], (dy) => [
    () => {
      const dx = Tensor.empty(x.shape);
      launch('mean_bwd', g, dy, dx, dx.size);
      return dx;
    },
  ]);
}

/** Nearest-neighbour 2× upsampling (torch interpolate(scale_factor=2, mode='nearest')). */
export function upsampleNearest2x(x: Tensor): Tensor {
  const [n, c, h, w] = check4d('upsampleNearest2x', x);
  const g: PoolGeom = { planes: n * c, h, w, oh: 2 * h, ow: 2 * w, kh: 1, kw: 1, sh: 1, sw: 1 };
  const y = Tensor.empty([n, c, 2 * h, 2 * w]);
  launch('up_fwd', g, x, y, y.size);
  return record('upsampleNearest2x', [x], y, [], (dy) => [
    () => {
      const dx = Tensor.empty(x.shape);
      launch('up_bwd', g, dy, dx, dx.size);
      return dx;
    },
  ]);
}
