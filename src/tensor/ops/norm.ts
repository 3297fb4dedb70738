// Normalisation ops: groupNorm (x [N, C, ...spatial]) and layerNorm (x [..., D]), with backward.
import { ShapeError, DTypeError, ArgumentError } from '../../errors.js';
import { opcode } from '../../gpu/opcodes.js';
import { defineParams } from '../../gpu/params.js';
import { gpu } from '../../gpu/runtime.js';
import { kernelModule } from '../../gpu/wgsl.js';
import { record } from '../../autograd/tape.js';
import { Tensor, numel, tidy } from '../tensor.js';
import { settings } from '../../settings.js';
import { groupNormPlan, normUsesWorkgroups as useWg } from '../plan/variants.js';
import { unary } from './elementwise.js';
import { readOptions } from './options.js';

const gnCode = kernelModule('groupnorm', { libs: ['wg_sum', 'unary'] });
const gnSgCode = kernelModule('groupnorm', { libs: ['wg_sum', 'unary'], also: ['groupnorm_sg'] });
const lnCode = kernelModule('layernorm', { libs: ['wg_sum'] });
const GN = defineParams('groupnorm.wgsl', 'Params', {
  n: 'u32', c: 'u32', s: 'u32', groups: 'u32', cg: 'u32', eps: 'f32', affine: 'u32', total: 'u32',
});
const LN = defineParams('layernorm.wgsl', 'Params', { rows: 'u32', d: 'u32', eps: 'f32', affine: 'u32' });

const WG = 256;
/** Lanes of a fused_sg workgroup: one lavapipe subgroup (hasSubgroups8 guarantees ≥ 8 lanes per subgroup). */
const SG_WG = 8;

/** The activation a groupNorm may fuse (diffusers' resnets follow every norm with SiLU). */
export type NormActivation = 'none' | 'silu';

/** layerNorm's options (torch.nn.functional.layer_norm's weight, bias, eps). */
export interface LayerNormOptions {
  /** Per-channel scale and shift; pass both or neither (null means none). */
  weight?: Tensor | null;
  bias?: Tensor | null;
  /** Added to the variance; default 1e-5. */
  eps?: number;
}

/** groupNorm's options (torch.nn.functional.group_norm's weight, bias, eps) plus a fused activation. */
export interface GroupNormOptions extends LayerNormOptions {
  /** Applied to the normalised output in the same kernel (forward and backward); default 'none'. */
  activation?: NormActivation;
}

const LN_SPEC = { weight: 'tensor', bias: 'tensor', eps: 'number' } as const;
const GN_SPEC = { ...LN_SPEC, activation: 'string' } as const;

function requireF32(op: string, ...ts: (Tensor | null | undefined)[]): void {
  for (const t of ts) if (t && t.dtype !== 'f32') throw new DTypeError(`${op}: expects f32 tensors, got ${t.dtype}`);
}

/**
 * GroupNorm like torch.nn.functional.group_norm: x [N, C, ...spatial], `groups` dividing C,
 * optional `{ weight, bias }` [C] and `eps` (default 1e-5), then an optional activation (act(group_norm(x))). One dispatch forward
 * (src/tensor/plan/variants.ts groupNormPlan). Saves mean and rstd per (n, group) for backward.
 */
export function groupNorm(x: Tensor, groups: number, opts: GroupNormOptions = {}): Tensor {
  const { weight, bias, eps = 1e-5 } = readOptions('groupNorm', opts, GN_SPEC);
  requireF32('groupNorm', x, weight, bias);
  if (x.rank < 2) throw new ShapeError(`groupNorm: x [${x.shape}] must be [N, C, ...spatial]`);
  const [n, c] = x.shape;
  if (!Number.isInteger(groups) || groups < 1 || c % groups !== 0) throw new ShapeError(`groupNorm: ${groups} groups must divide C = ${c} (x [${x.shape}])`);
  for (const [name, t] of [['weight', weight], ['bias', bias]] as const) {
    if (t && (t.rank !== 1 || t.shape[0] !== c)) throw new ShapeError(`groupNorm: ${name} [${t.shape}] must be [${c}]`);
  }
  if ((weight == null) !== (bias == null)) throw new ShapeError('groupNorm: pass both weight and bias, or neither');
  const act = opts.activation ?? 'none';
  if (act !== 'none' && act !== 'silu') throw new ArgumentError(`groupNorm: unknown activation '${act}'`);
  const s = numel(x.shape.slice(2));
  if (act !== 'none' && !settings.fuse) {
    // The unfused baseline (LPO_FUSE=0): the norm, then the elementwise activation.
    return tidy(() => unary(act, groupNorm(x, groups, { weight, bias, eps })));
  }
  const cg = c / groups;
  const affine = weight != null;
  const gnParams = GN.of({ n, c, s, groups, cg, eps, affine: affine ? 1 : 0, total: x.size });
  const blocks = n * groups;
  const ACT = opcode('UNARY', act === 'none' ? 'identity' : act);
  const y = Tensor.empty(x.shape);
  const mean = Tensor.empty([n, groups]);
  const rstd = Tensor.empty([n, groups]);
  const k = (entry: string, wg = WG, code = gnCode) => ({ name: `groupnorm.${entry}`, code, entry, constants: { WG: wg, ACT } });
  const gamma = (weight ?? x).buffer;
  const beta = (bias ?? x).buffer;
  if (x.size) {
    const plan = groupNormPlan(s);
    if (plan === 'fused_sg' || plan === 'fused_wg') {
      gpu().dispatch({
        kernel: plan === 'fused_sg' ? k('fused_sg', SG_WG, gnSgCode) : k('fused_wg'),
        buffers: [x.buffer, gamma, beta, y.buffer, mean.buffer, rstd.buffer],
        params: gnParams,
        workgroups: blocks,
      });
    } else {
      // Serial (one invocation per row) reductions run in 8-wide workgroups: N·G rows are few (64 for SD).
      gpu().dispatch({
        kernel: plan === 'stats_wg' ? k('stats_wg') : k('stats', SG_WG),
        buffers: [x.buffer, mean.buffer, rstd.buffer],
        params: gnParams,
        workgroups: plan === 'stats_wg' ? blocks : Math.ceil(blocks / SG_WG),
      });
      gpu().dispatch({
        kernel: k('apply'),
        buffers: [x.buffer, mean.buffer, rstd.buffer, gamma, beta, y.buffer],
        params: gnParams,
        workgroups: Math.ceil(x.size / WG),
      });
    }
  }
  const inputs = affine ? [x, weight!, bias!] : [x];
  const saved = affine ? [x, mean, rstd, weight!, bias!] : [x, mean, rstd];
  const out = record(act === 'none' ? 'groupNorm' : `groupNorm+${act}`, inputs, y, saved, (dy, [xs, ms, rs, ws, bs]) => {
    const gb = [(ws ?? xs).buffer, (bs ?? xs).buffer];
    // Per-(n, c) sums shared by dx and dγ/dβ; freed after the last gradient that needs them.
    const sdy = Tensor.empty([n, c]);
    const sdyx = Tensor.empty([n, c]);
    gpu().dispatch({
      kernel: useWg() ? k('bwd_reduce_wg') : k('bwd_reduce', SG_WG),
      buffers: [xs.buffer, dy.buffer, ms.buffer, rs.buffer, ...gb, sdy.buffer, sdyx.buffer],
      params: gnParams,
      workgroups: useWg() ? n * c : Math.ceil((n * c) / SG_WG),
    });
    const wanted = inputs.map((t) => t.requiresGrad);
    let users = wanted.filter(Boolean).length;
    const done = () => {
      if (--users === 0) { sdy.dispose(); sdyx.dispose(); }
    };
    const dxThunk = () => {
      const gs = Tensor.empty([n, groups, 2]);
      gpu().dispatch({
        kernel: k('bwd_group'),
        buffers: [gb[0], sdy.buffer, sdyx.buffer, gs.buffer],
        params: gnParams,
        workgroups: Math.ceil(blocks / WG),
      });
      const dx = Tensor.empty(xs.shape);
      gpu().dispatch({
        kernel: k('bwd_dx'),
        buffers: [xs.buffer, dy.buffer, ms.buffer, rs.buffer, ...gb, gs.buffer, dx.buffer],
        params: gnParams,
        workgroups: Math.ceil(xs.size / WG),
      });
      gs.dispose();
      done();
      return dx;
    };
    let paramGrads: [Tensor, Tensor] | null = null;
    const paramThunk = (which: 0 | 1) => () => {
      if (!paramGrads) {
        paramGrads = [Tensor.empty([c]), Tensor.empty([c])];
        gpu().dispatch({
          kernel: k('bwd_params'),
          buffers: [sdy.buffer, sdyx.buffer, paramGrads[0].buffer, paramGrads[1].buffer],
          params: gnParams,
          workgroups: Math.ceil(c / WG),
        });
        // Drop the one whose input wants no gradient (its thunk will not run).
        if (!wanted[1]) paramGrads[0].dispose();
        if (!wanted[2]) paramGrads[1].dispose();
      }
      done();
      return paramGrads[which];
    };
    const thunks: ((() => Tensor) | null)[] = [wanted[0] ? dxThunk : null];
    if (affine) thunks.push(wanted[1] ? paramThunk(0) : null, wanted[2] ? paramThunk(1) : null);
    if (users === 0) { sdy.dispose(); sdyx.dispose(); }
    return thunks;
  });
  mean.dispose();
  rstd.dispose();
  return out;
}

/** LayerNorm over the last dimension (torch.nn.functional.layer_norm with normalized_shape = [D]). */
export function layerNorm(x: Tensor, opts: LayerNormOptions = {}): Tensor {
  const { weight, bias, eps = 1e-5 } = readOptions('layerNorm', opts, LN_SPEC);
  requireF32('layerNorm', x, weight, bias);
  if (x.rank < 1) throw new ShapeError('layerNorm: x must have at least one dimension');
  const d = x.shape[x.rank - 1];
  const rows = x.size / Math.max(d, 1);
  for (const [name, t] of [['weight', weight], ['bias', bias]] as const) {
    if (t && (t.rank !== 1 || t.shape[0] !== d)) throw new ShapeError(`layerNorm: ${name} [${t.shape}] must be [${d}] (x [${x.shape}])`);
  }
  if ((weight == null) !== (bias == null)) throw new ShapeError('layerNorm: pass both weight and bias, or neither');
  const affine = weight != null;
  const params = LN.of({ rows, d, eps, affine: affine ? 1 : 0 });
  const k = (entry: string) => ({ name: `layernorm.${entry}`, code: lnCode, entry, constants: { WG } });
  const y = Tensor.empty(x.shape);
  const mean = Tensor.empty([rows]);
  const rstd = Tensor.empty([rows]);
  if (x.size) {
    gpu().dispatch({
      kernel: k(useWg() ? 'fwd_wg' : 'fwd'),
      buffers: [x.buffer, (weight ?? x).buffer, (bias ?? x).buffer, y.buffer, mean.buffer, rstd.buffer],
      params,
      workgroups: useWg() ? rows : Math.ceil(rows / WG),
    });
  }
  const inputs = affine ? [x, weight!, bias!] : [x];
  const saved = affine ? [x, mean, rstd, weight!] : [x, mean, rstd];
  const out = record('layerNorm', inputs, y, saved, (dy, [xs, ms, rs, ws]) => {
    let paramGrads: [Tensor, Tensor] | null = null;
    const paramThunk = (which: 0 | 1) => () => {
      if (!paramGrads) {
        paramGrads = [Tensor.empty([d]), Tensor.empty([d])];
        gpu().dispatch({
          kernel: k('bwd_params'),
          buffers: [xs.buffer, dy.buffer, ms.buffer, rs.buffer, paramGrads[0].buffer, paramGrads[1].buffer],
          params,
          workgroups: Math.ceil(d / WG),
        });
        if (!weight!.requiresGrad) paramGrads[0].dispose();
        if (!bias!.requiresGrad) paramGrads[1].dispose();
      }
      return paramGrads[which];
    };
    const thunks: ((() => Tensor) | null)[] = [
      () => {
        const dx = Tensor.empty(xs.shape);
        gpu().dispatch({
          kernel: k(useWg() ? 'bwd_dx_wg' : 'bwd_dx'),
          buffers: [xs.buffer, dy.buffer, ms.buffer, rs.buffer, (ws ?? xs).buffer, dx.buffer],
          params,
          workgroups: useWg() ? rows : Math.ceil(rows / WG),
        });
        return dx;
      },
    ];
    if (affine) thunks.push(paramThunk(0), paramThunk(1));
    return thunks;
  });
  mean.dispose();
  rstd.dispose();
  return out;
}
