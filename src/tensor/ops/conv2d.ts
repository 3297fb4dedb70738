// conv2d (NCHW, groups = 1) as implicit GEMMs: forward, dx and dw kernels; dbias via the reduce op. On lavapipe,
// large convolutions go through patch buffers and packed matmuls instead (im2col, col2im, im2col_t below).
import { ShapeError, ArgumentError, DTypeError } from '../../errors.js';
import { defineParams } from '../../gpu/params.js';
import { foldWorkgroups, gpu } from '../../gpu/runtime.js';
import { kernelModule } from '../../gpu/wgsl.js';
import { record } from '../../autograd/tape.js';
import { Tensor, tidy } from '../tensor.js';
import { settings } from '../../settings.js';
import { resolveConv2dVariant, type Conv2dVariant } from '../plan/variants.js';
import { launchMatmul, packPlan, resolveMatmulVariant } from '../plan/matmul.js';
import { chooseMatmulConfig } from '../plan/matmul-tune.js';
import { sum } from './reduce.js';
import { routeConv2d } from './autocast.js';
import { add } from './elementwise.js';
import { reshape } from './layout.js';

export { resolveConv2dVariant, type Conv2dVariant };

export type Padding2d = number | [number, number] | [number, number, number, number];

export interface Conv2dOptions {
  /** stride, or [sh, sw] (default 1) */
  stride?: number | [number, number];
  /** p (all sides), [ph, pw] (top/bottom, left/right) or [top, bottom, left, right] (default 0) */
  padding?: Padding2d;
  /** Force a kernel variant (default: src/tensor/plan/variants.ts resolveConv2dVariant). */
  variant?: Conv2dVariant;
  /** [N, O]: added to every pixel of channel o of image n (a resnet's projected time embedding), in the epilogue. */
  shift?: Tensor;
  /** Of the output's shape: added in the epilogue (a resnet's shortcut). */
  residual?: Tensor;
}

const CODE = kernelModule('conv2d');
const SG_CODE = kernelModule('conv2d', { libs: ['bcast8'], also: ['conv2d_sg'] });
const P = defineParams('conv2d.wgsl', 'Params', {
  n: 'u32', c: 'u32', h: 'u32', w: 'u32', o: 'u32', oh: 'u32', ow: 'u32', pad_t: 'u32',
  pad_l: 'u32', m: 'u32', ncols: 'u32', k: 'u32', bias_on: 'u32', epi: 'u32',
});
const EPI_RES = 1;
const EPI_SHIFT = 2;

/** Normalises a padding spec to [top, bottom, left, right]. */
export function normPadding(pad: Padding2d | undefined, op = 'conv2d'): [number, number, number, number] {
  const p: number[] = pad === undefined ? [0, 0, 0, 0] : typeof pad === 'number' ? [pad, pad, pad, pad] : pad.length === 2 ? [pad[0], pad[0], pad[1], pad[1]] : [...pad];
  if (p.length !== 4 || p.some((v) => !Number.isInteger(v) || v < 0)) throw new ArgumentError(`${op}: padding ${JSON.stringify(pad)} must be n, [ph, pw] or [top, bottom, left, right] of non-negative integers`);
  return p as [number, number, number, number];
}

function normStride(s: number | [number, number] | undefined): [number, number] {
  const v: [number, number] = s === undefined ? [1, 1] : typeof s === 'number' ? [s, s] : [s[0], s[1]];
  if (v.some((x) => !Number.isInteger(x) || x < 1)) throw new ArgumentError(`conv2d: stride ${JSON.stringify(s)} must be positive integers`);
  return v;
}

const OB = 8; // rows per invocation in the *_rb kernels (kernels/conv2d.wgsl)
const WG_RB = 64;
const BM = 64;
const BN = 64;

interface Geometry {
  n: number; c: number; h: number; w: number; o: number; kh: number; kw: number;
  sh: number; sw: number; pad: [number, number, number, number]; oh: number; ow: number;
}

/** Column tiles beyond 65,535 fold into x·z (the kernels rebuild the tile index as x + z·nx). */
function foldColumns(tiles: number, rows: number): [number, number, number] {
  const [x, z] = foldWorkgroups(tiles);
  return [x, rows, z];
}

interface Epilogue { bias: Tensor | null; residual?: Tensor | null; shift?: Tensor | null }

/**
 * Launches one pass of the family (mode 0 forward, 1 dx, 2 dw; the epilogue applies to the forward): an implicit GEMM,
 * or on lavapipe for large convolutions the patch path (im2col / col2im and a product).
 */
function launch(mode: 0 | 1 | 2, g: Geometry, src0: Tensor, src1: Tensor, e: Epilogue, dst: Tensor, variant: Conv2dVariant): void {
  const m = mode === 1 ? g.c : g.o;
  const ncols = mode === 0 ? g.n * g.oh * g.ow : mode === 1 ? g.n * g.h * g.w : g.c * g.kh * g.kw;
  const k = mode === 0 ? g.c * g.kh * g.kw : mode === 1 ? g.o * g.kh * g.kw : g.n * g.oh * g.ow;
  const epi = (e.residual ? EPI_RES : 0) | (e.shift ? EPI_SHIFT : 0);
  const params = P.of({ n: g.n, c: g.c, h: g.h, w: g.w, o: g.o, oh: g.oh, ow: g.ow, pad_t: g.pad[0], pad_l: g.pad[2], m, ncols, k, bias_on: e.bias ? 1 : 0, epi });
  const constants = { KH: g.kh, KW: g.kw, SH: g.sh, SW: g.sw, MODE: mode };
  const buffers = [src0.buffer, src1.buffer, (e.bias ?? src1).buffer, dst.buffer];
  // Forward entry points and `tiled` bind the epilogue operands too (any buffer when unused).
  const withEpi = [...buffers, (e.residual ?? src1).buffer, (e.shift ?? src1).buffer];
  if (mode === 0 && variant === 'sg' && im2colFits(g, e)) {
    im2colForward(g, src0, src1, e, dst);
    return;
  }
  if (mode === 1 && variant === 'sg' && im2colFits(g, e) && packPlan(dxProduct(g))) {
    col2imInputGrad(g, src0, src1, dst);
    return;
  }
  if (variant === 'rb' || variant === 'sg') {
    const sg = variant === 'sg';
    // fwd_sg and dx_sg hold two columns per lane (kernels/conv2d_sg.wgsl).
    const colsPerLane = sg && mode < 2 ? 2 : 1;
    const entry = `${['fwd', 'dx', 'dw'][mode]}_${variant}`;
    gpu().dispatch({
      kernel: { name: `conv2d.${entry}`, code: sg ? SG_CODE : CODE, entry, constants: { ...constants, WG: WG_RB } },
      buffers: mode === 0 ? withEpi : buffers, params, workgroups: foldColumns(Math.ceil(ncols / (WG_RB * colsPerLane)), Math.ceil(m / OB)),
    });
  } else {
    gpu().dispatch({
      kernel: { name: `conv2d.tiled${mode}`, code: CODE, entry: 'tiled', constants },
      buffers: withEpi, params, workgroups: foldColumns(Math.ceil(ncols / BN), Math.ceil(m / BM)),
    });
  }
}

/** Forward convolutions of at least this many multiply-adds run as im2col + one product on lavapipe. */
const IM2COL_MIN_MACS = 2 ** 24;
/**
 * Output pixels per image below which the implicit GEMMs stay: the products run per image with the pixels as one
 * side, which at 4×4 leaves most lanes of a column tile idle (2.4–2.7× fwd_sg's time for the toy U-Net's 64-channel
 * convs at batch 64). At 8×8 they tie fwd_sg at 32–96 channels and are 2.7× faster at 640 (same-process A/B).
 */
const IM2COL_MIN_PIXELS = 64;
/** The widest im2col buffer the forward allocates (bytes); larger convolutions keep fwd_sg. */
const IM2COL_MAX_BYTES = 64 * 2 ** 20;

/**
 * Whether a convolution on the 'sg' variant runs through patch buffers and blocked_vab products (the forward as
 * im2col + product; dx and dw add their own conditions: col2im needs its product packed, dw its pixels % 4). fwd_sg
 * reads the weights and the input pixels with scalar loads (4 channels apart are not adjacent in NCHW), which
 * lavapipe issues lane by lane; the im2col rows and the weights' rows are contiguous in k, so the product reads
 * both as vec4. Not for 1×1 kernels (no patches to gather), a per-sample shift (the product's epilogue has none),
 * few output channels (each gathered value feeds O multiply-adds) or small images (IM2COL_MIN_PIXELS).
 */
function im2colFits(g: Geometry, e: Epilogue): boolean {
  const k = g.c * g.kh * g.kw;
  const pix = g.oh * g.ow;
  const bytes = g.n * pix * k * 4;
  // The products must run on blocked_vab (lavapipe's default matmul); elsewhere the implicit GEMMs are the path.
  return settings.pack && resolveMatmulVariant() === 'blocked' && !e.shift && k % 4 === 0 && g.kh * g.kw > 1 && g.o >= 32 && g.c >= 8 && pix >= IM2COL_MIN_PIXELS && pix <= 65535 && g.n <= 65535 && g.c <= 65535
    && g.n * pix * g.o * k >= IM2COL_MIN_MACS && bytes <= Math.min(IM2COL_MAX_BYTES, gpu().summary.maxStorageBufferBindingSize);
}

/** Params of the patch kernels (im2col, im2col_t, col2im): p.k is the patch length C·KH·KW. */
const patchParams = (g: Geometry) => P.of({
  n: g.n, c: g.c, h: g.h, w: g.w, o: g.o, oh: g.oh, ow: g.ow, pad_t: g.pad[0], pad_l: g.pad[2], m: 0, ncols: 0, k: g.c * g.kh * g.kw, bias_on: 0, epi: 0,
});
/** Records one patch kernel (kernels/conv2d.wgsl) reading `src` (bound at all three inputs) into `dst`. */
function dispatchPatches(entry: 'im2col' | 'im2col_t' | 'col2im', g: Geometry, src: GPUBuffer, dst: GPUBuffer, workgroups: number | [number, number, number]): void {
  gpu().dispatch({
    kernel: { name: `conv2d.${entry}`, code: CODE, entry, constants: { KH: g.kh, KW: g.kw, SH: g.sh, SW: g.sw, WG: WG_RB } },
    buffers: [src, src, src, dst], params: patchParams(g), workgroups,
  });
}

/** The forward as im2col (kernels/conv2d.wgsl) and y[n] = w · cols[n]ᵀ with bias per row and the residual. */
function im2colForward(g: Geometry, x: Tensor, w: Tensor, e: Epilogue, y: Tensor): void {
  const G = gpu();
  const k = g.c * g.kh * g.kw;
  const pix = g.oh * g.ow;
  const cols = G.pool.acquire(g.n * pix * k * 4, 'conv2d.im2col');
  try {
    dispatchPatches('im2col', g, x.buffer, cols, [Math.ceil(g.c / WG_RB), pix, g.n]);
    const mg = { M: g.o, N: pix, K: k, batch: g.n, sam: k, sak: 1, sbk: 1, sbn: k, aBs: 0, bBs: pix * k };
    launchMatmul(chooseMatmulConfig(mg, false, true), mg, { act: 'none', hasBias: !!e.bias, transA: false, transB: true, biasRows: true, hasResidual: !!e.residual }, {
      a: w.buffer, b: cols, bias: e.bias?.buffer, c: y.buffer, residual: e.residual?.buffer,
    });
  } finally {
    // Stream order keeps the product's reads before any later writer of the recycled buffer.
    G.pool.release(cols);
  }
}

/** dx's product dcols[n] [pix, C·KH·KW] = dy[n]ᵀ · w: both operands are read transposed, so the plan must pack them. */
const dxProduct = (g: Geometry) => {
  const pix = g.oh * g.ow;
  const k = g.c * g.kh * g.kw;
  return { M: pix, N: k, K: g.o, batch: g.n, sam: 1, sak: pix, sbk: k, sbn: 1, aBs: g.o * pix, bBs: 0 };
};

/**
 * dx as dcols[n] = dy[n]ᵀ · w [O, C·KH·KW] (one batched product; both operands are packed k-contiguous by the
 * matmul plan) and col2im (kernels/conv2d.wgsl), which sums each input pixel's taps.
 */
function col2imInputGrad(g: Geometry, dy: Tensor, w: Tensor, dx: Tensor): void {
  const G = gpu();
  const k = g.c * g.kh * g.kw;
  const pix = g.oh * g.ow;
  const dcols = G.pool.acquire(g.n * pix * k * 4, 'conv2d.dcols');
  try {
    const mg = dxProduct(g);
    launchMatmul(chooseMatmulConfig(mg, true, false), mg, { act: 'none', hasBias: false, transA: true, transB: false, biasRows: false, hasResidual: false }, { a: dy.buffer, b: w.buffer, c: dcols });
    dispatchPatches('col2im', g, dcols, dx.buffer, Math.ceil(dx.size / WG_RB));
  } finally {
    G.pool.release(dcols);
  }
}

/** Whether dw runs through im2col_t: the pixels (the product's k) a multiple of 4, and the per-image dw fit a binding. */
function weightGradFits(g: Geometry): boolean {
  const partsBytes = g.n * g.o * g.c * g.kh * g.kw * 4;
  return im2colFits(g, { bias: null }) && (g.oh * g.ow) % 4 === 0 && partsBytes <= Math.min(IM2COL_MAX_BYTES, gpu().summary.maxStorageBufferBindingSize);
}

/**
 * dw as Σ_n dy[n] [O, pix] · colsT[n]ᵀ: im2col_t (kernels/conv2d.wgsl) lays the patches out [C·KH·KW, pix] per
 * image, so the product (blocked_vab) reads both operands as vec4 along the pixels; the images' products are
 * summed by the reduce op. Needs the pixel count to be a multiple of 4.
 */
function im2colWeightGrad(g: Geometry, x: Tensor, dy: Tensor): Tensor {
  const G = gpu();
  const k = g.c * g.kh * g.kw;
  const pix = g.oh * g.ow;
  const colsT = G.pool.acquire(g.n * k * pix * 4, 'conv2d.im2col_t');
  const parts = Tensor.empty([g.n, g.o, k]);
  try {
    dispatchPatches('im2col_t', g, x.buffer, colsT, [Math.ceil(pix / WG_RB), g.c, g.n]);
    const mg = { M: g.o, N: k, K: pix, batch: g.n, sam: pix, sak: 1, sbk: 1, sbn: pix, aBs: g.o * pix, bBs: k * pix };
    launchMatmul(chooseMatmulConfig(mg, false, true), mg, { act: 'none', hasBias: false, transA: false, transB: true, biasRows: false, hasResidual: false }, { a: dy.buffer, b: colsT, c: parts.buffer });
  } catch (err) {
    parts.dispose();
    throw err;
  } finally {
    G.pool.release(colsT);
  }
  const dw = g.n === 1 ? parts.retain() : sum(parts, 0);
  parts.dispose();
  const out = dw.view([g.o, g.c, g.kh, g.kw]);
  dw.dispose();
  return out;
}

/**
 * 2-D convolution like torch.nn.functional.conv2d (groups = 1): x [N,C,H,W], w [O,C,kh,kw],
 * bias [O]. Padding may be asymmetric ([top, bottom, left, right]), as the VAE encoder's
 * downsamplers need (right/bottom by 1, stride 2). `shift` [N, O] and `residual` (the output's shape)
 * are added in the same launch: y = conv(x, w) + bias + shift[n, o] + residual.
 */
export function conv2d(x: Tensor, w: Tensor, bias?: Tensor | null, opts: Conv2dOptions = {}): Tensor {
  const { shift, residual } = opts;
  for (const t of [x, w, bias, shift, residual]) if (t && t.dtype === 'i32') throw new DTypeError(`conv2d: expects f32 or f16 tensors, got ${t.dtype}`);
  if (x.rank !== 4 || w.rank !== 4) throw new ShapeError(`conv2d: x [${x.shape}] must be [N,C,H,W] and w [${w.shape}] [O,C,kh,kw]`);
  const [n, c, h, wd] = x.shape;
  const [o, wc, kh, kw] = w.shape;
  if (wc !== c) throw new ShapeError(`conv2d: w [${w.shape}] has ${wc} input channels, x [${x.shape}] has ${c} (groups=1 only)`);
  if (bias && (bias.rank !== 1 || bias.shape[0] !== o)) throw new ShapeError(`conv2d: bias [${bias.shape}] must be [${o}]`);
  const [sh, sw] = normStride(opts.stride);
  const pad = normPadding(opts.padding);
  const oh = Math.floor((h + pad[0] + pad[1] - kh) / sh) + 1;
  const ow = Math.floor((wd + pad[2] + pad[3] - kw) / sw) + 1;
  if (oh < 1 || ow < 1) throw new ShapeError(`conv2d: kernel ${kh}x${kw} does not fit x [${x.shape}] padded by [${pad}]`);
  if (shift && (shift.rank !== 2 || shift.shape[0] !== n || shift.shape[1] !== o)) throw new ShapeError(`conv2d: shift [${shift.shape}] must be [${n}, ${o}]`);
  if (residual && residual.shape.join() !== [n, o, oh, ow].join()) throw new ShapeError(`conv2d: residual [${residual.shape}] must be the output's shape [${n}, ${o}, ${oh}, ${ow}]`);
  // f16 operands, autocast, or the split-K 'gemm' variant: the fragment kernels (src/tensor/ops/autocast.ts).
  const routed = routeConv2d(x, w, bias, { n, c, h, w: wd, o, kh, kw, sh, sw, pad, oh, ow }, opts, (x2, w2, b2, o2) => conv2d(x2, w2, b2, o2));
  if (routed) return routed;
  if ((shift || residual) && !settings.fuse) {
    // The unfused baseline (LPO_FUSE=0): the convolution, then one add per epilogue term.
    return tidy(() => {
      let y = conv2d(x, w, bias, { stride: opts.stride, padding: opts.padding, variant: opts.variant });
      if (shift) y = add(y, reshape(shift, [n, o, 1, 1]));
      return residual ? add(residual, y) : y;
    });
  }
  const g: Geometry = { n, c, h, w: wd, o, kh, kw, sh, sw, pad, oh, ow };
  const variant = resolveConv2dVariant(opts.variant);
  const y = Tensor.empty([n, o, oh, ow]);
  if (y.size) launch(0, g, x, w, { bias: bias ?? null, residual, shift }, y, variant);
  const inputs = [x, w, ...(bias ? [bias] : []), ...(residual ? [residual] : []), ...(shift ? [shift] : [])];
  return record('conv2d', inputs, y, [x, w], (dy, [xs, ws]) => {
    // Σ over pixels of dy per (n, o): the shift's gradient, and (summed over n) the bias's.
    let perSample: Tensor | null = null;
    // (The tape runs a thunk only for an input that requires a gradient.)
    let users = (bias?.requiresGrad ? 1 : 0) + (shift?.requiresGrad ? 1 : 0);
    const sums = (): Tensor => {
      if (!perSample) {
        const v = dy.view([n, o, oh * ow]);
        perSample = sum(v, 2);
        v.dispose();
      }
      return perSample;
    };
    const release = () => { if (--users === 0) perSample?.dispose(); };
    const thunks: ((() => Tensor) | null)[] = [
      () => {
        const dx = Tensor.empty(x.shape);
        if (dx.size) launch(1, g, dy, ws, { bias: null }, dx, variant);
        return dx;
      },
      () => {
        if (variant === 'sg' && weightGradFits(g)) return im2colWeightGrad(g, xs, dy);
        const dw = Tensor.empty(w.shape);
        if (dw.size) launch(2, g, xs, dy, { bias: null }, dw, variant);
        return dw;
      },
    ];
    if (bias) thunks.push(() => { const db = sum(sums(), 0); release(); return db; });
    if (residual) thunks.push(() => dy.retain());
    if (shift) thunks.push(() => { const ds = sums().retain(); release(); return ds; });
    return thunks;
  });
}

/** Output spatial size of a conv2d (for modules and shape checks). */
export function conv2dOutputSize(h: number, w: number, kh: number, kw: number, opts: Conv2dOptions = {}): [number, number] {
  const [sh, sw] = normStride(opts.stride);
  const pad = normPadding(opts.padding);
  return [Math.floor((h + pad[0] + pad[1] - kh) / sh) + 1, Math.floor((w + pad[2] + pad[3] - kw) / sw) + 1];
}
