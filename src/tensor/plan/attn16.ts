// Planning for the fragment attention (kernels/attention_f16.wgsl): the tile (warps × FM rows per
// workgroup, BK rows of the other side per block), the padded head dim, the dk/dv query split, the
// dispatches, and autotuning per shape bucket (forward and backward separately).
import { ArgumentError } from '../../errors.js';
import { defineParams } from '../../gpu/params.js';
import { gpu, type Dispatch, type Gpu } from '../../gpu/runtime.js';
import { settings } from '../../settings.js';
import { fragModule, fragUnit, invocationsPerWarp, parseTileId, simtFragment, smShapes, tileId, type FragTile, type StoreType } from './frag.js';
import { fragAutotuneEnabled, fragAutotuner, measureDispatches } from './mm16-tune.js';

/** Largest head dim of the fragment attention (SD1.5's is 160; the VAE's 512 keeps the f32 kernel). */
export const ATTN16_MAX_HEAD_DIM = 160;

export interface AttnDims { B: number; H: number; Lq: number; Lk: number; D: number; causal: boolean }

/** Types: q/k/v storage, dO, the forward output O, the outputs of the entry (O or gradients), staging (f16; f32 in plain WGSL). */
export interface Attn16Types { TQ: StoreType; TG: StoreType; TY: StoreType; TO: StoreType; FT: StoreType }

export const P = defineParams('attention_f16.wgsl', 'Params', {
  B: 'u32', H: 'u32', Lq: 'u32', Lk: 'u32', C: 'u32', D: 'u32', scale: 'f32', split: 'u32', chunk: 'u32',
});

const lcm = (a: number, b: number): number => { let x = a; let y = b; while (y) [x, y] = [y, x % y]; return (a / x) * b; };

/** The head dim padded to whole fragments (and 16-byte rows). */
export function paddedHeadDim(D: number, t: FragTile): number {
  const q = lcm(lcm(t.FK, t.FN), 8);
  return Math.ceil(D / q) * q;
}

/** Workgroup bytes of a tile at head dim D (see the kernel's sh and sf). */
export function attn16Bytes(t: FragTile, D: number): number {
  const DP = paddedHeadDim(D, t);
  const RB = t.WM * t.FM;
  const sh = (2 * RB + 2 * t.BK) * (DP + 8) + 2 * RB * (t.BK + 8);
  const sf = t.WM * 2 * t.FM * Math.max(t.BK, DP) + 2 * t.BK;
  return sh * 2 + sf * 4;
}

function fits(t: FragTile, D: number, G: Gpu): boolean {
  return attn16Bytes(t, D) <= G.device.limits.maxComputeWorkgroupStorageSize && t.BK % t.FN === 0 && t.BK % t.FK === 0;
}

/** Candidate tiles (largest first) for head dim D on this device. */
export function attn16Candidates(D: number, G: Gpu = gpu(), ft: StoreType = 'f16'): string[] {
  const unit = ft === 'f16' ? fragUnit(G) : 'simt';
  const frags = unit === 'sm' ? smShapes(G).map(([FM, FN, FK]) => ({ unit, FM, FN, FK })) : [simtFragment('f16')];
  const out: string[] = [];
  for (const f of frags) {
    for (const WM of unit === 'sm' ? [8, 4, 2] : [8, 4]) {
      for (const BK of unit === 'sm' ? [64, 32, 16] : [16, 8]) {
        const t: FragTile = { ...f, WM, WN: 1, TM: 1, TN: 1, BK, split: 1 };
        if (fits(t, D, G)) out.push(tileId(t));
      }
    }
  }
  return out;
}

/** The static tile: 4 warps and 32-row blocks where they fit (fewer where not); lavapipe: 4 × 4-row warps, 8-row blocks. */
export function staticAttn16Tile(D: number, G: Gpu = gpu(), ft: StoreType = 'f16'): FragTile {
  const c = attn16Candidates(D, G, ft).map(parseTileId);
  if (!c.length) throw new ArgumentError(`attention f16: no tile fits head dim ${D} in ${G.device.limits.maxComputeWorkgroupStorageSize} bytes of workgroup memory`);
  if (G.isSoftware) return c.find((t) => t.WM === 4 && t.BK === 8) ?? c[c.length - 1];
  return c.find((t) => t.WM === 4 && t.BK === 32) ?? c.find((t) => t.WM <= 4) ?? c[0];
}

/** Query chunks of the dk/dv pass: a forced tile's split, else enough workgroups for ~2 per SM when keys are few (cross-attention), ≥ 4 blocks a chunk. */
export function attn16Split(d: AttnDims, t: FragTile, G: Gpu = gpu()): number {
  if (t.split > 1) return Math.min(t.split, Math.max(1, d.Lq)); // a forced tile's /sN
  if (G.isSoftware) return 1;
  const wgs = Math.ceil(d.Lk / (t.WM * t.FM)) * d.B * d.H;
  return Math.max(1, Math.min(64, Math.ceil((2 * settings.gpuSms) / wgs), Math.floor(d.Lq / (4 * t.BK))));
}

export interface Attn16Buffers { q: GPUBuffer; k: GPUBuffer; v: GPUBuffer }

function kernel(t: FragTile, d: AttnDims, types: Attn16Types, entry: string, G: Gpu) {
  const DP = paddedHeadDim(d.D, t);
  if (t.unit === 'sm' && types.FT !== 'f16') throw new ArgumentError('attention f16: subgroup-matrix tiles stage f16');
  return {
    name: `attention_f16.${tileId(t)}.d${DP}.${types.TQ}${types.TG}${types.TY}${types.TO}${types.FT}`,
    code: fragModule('attention_f16', t, { ...types }, { DP }, G),
    entry,
    constants: { CAUSAL: d.causal ? 1 : 0 },
  };
}

const params = (d: AttnDims, scale: number, split = 1, chunk = d.Lq) => P.of({ B: d.B, H: d.H, Lq: d.Lq, Lk: d.Lk, C: d.H * d.D, D: d.D, scale, split, chunk });

/** The forward dispatch: o (types.TO) and the LSE (f32). */
export function planAttn16Forward(t: FragTile, d: AttnDims, types: Attn16Types, scale: number, b: Attn16Buffers & { o: GPUBuffer; lse: GPUBuffer }, G: Gpu = gpu()): Dispatch {
  return {
    kernel: kernel(t, d, types, 'forward', G),
    buffers: [b.q, b.k, b.v, b.o, b.lse],
    params: params(d, scale),
    workgroups: [Math.ceil(d.Lq / (t.WM * t.FM)), d.B * d.H, 1],
  };
}

/**
 * The backward dispatches: Δ, dq, dk/dv (in `split` query chunks into f32 partials, then their sum).
 * `partial` buffers hold [split, B, Lk, C] f32 each when split > 1.
 */
export function planAttn16Backward(
  t: FragTile, d: AttnDims, types: Attn16Types, scale: number, split: number,
  b: Attn16Buffers & { dy: GPUBuffer; o: GPUBuffer; lse: GPUBuffer; delta: GPUBuffer; dq: GPUBuffer; dk: GPUBuffer; dv: GPUBuffer; pk?: GPUBuffer; pv?: GPUBuffer },
  G: Gpu = gpu(),
): Dispatch[] {
  const wg = t.WM * invocationsPerWarp(t, G);
  const chunk = Math.ceil(d.Lq / split);
  const out: Dispatch[] = [
    { kernel: kernel(t, d, types, 'bwd_delta', G), buffers: [b.dy, b.o, b.delta], params: params(d, scale), workgroups: Math.ceil((d.B * d.H * d.Lq) / wg) },
    { kernel: kernel(t, d, types, 'bwd_dq', G), buffers: [b.q, b.k, b.v, b.dy, b.lse, b.delta, b.dq], params: params(d, scale), workgroups: [Math.ceil(d.Lq / (t.WM * t.FM)), d.B * d.H, 1] },
  ];
  const rows = [Math.ceil(d.Lk / (t.WM * t.FM)), d.B * d.H, split] as [number, number, number];
  if (split <= 1) {
    out.push({ kernel: kernel(t, d, types, 'bwd_dkdv', G), buffers: [b.q, b.k, b.v, b.dy, b.lse, b.delta, b.dk, b.dv], params: params(d, scale), workgroups: rows });
    return out;
  }
  const partTypes = { ...types, TO: 'f32' as const };
  out.push(
    { kernel: kernel(t, d, partTypes, 'bwd_dkdv', G), buffers: [b.q, b.k, b.v, b.dy, b.lse, b.delta, b.pk!, b.pv!], params: params(d, scale, split, chunk), workgroups: rows },
    { kernel: kernel(t, d, types, 'bwd_dkdv_sum', G), buffers: [b.pk!, b.pv!, b.dk, b.dv], params: params(d, scale, split, chunk), workgroups: Math.ceil((d.B * d.Lk * d.H * d.D) / wg) },
  );
  return out;
}

const p2 = (x: number) => 2 ** Math.ceil(Math.log2(Math.max(1, x)));
const bucketOf = (pass: 'fwd' | 'bwd', d: AttnDims, types: Attn16Types) =>
  `${pass}.${p2(d.Lq)}x${p2(d.Lk)}.d${d.D}.bh${p2(d.B * d.H)}${d.causal ? '.causal' : ''}.${types.TQ}${types.TG}${types.TO}${types.FT}`;

function measure(pass: 'fwd' | 'bwd', id: string, d: AttnDims, types: Attn16Types): Promise<number> {
  const t = parseTileId(id);
  const by = (s: StoreType) => (s === 'f16' ? 2 : 4);
  const qs = d.B * d.Lq * d.H * d.D;
  const ks = d.B * d.Lk * d.H * d.D;
  const rows = d.B * d.H * d.Lq * 4;
  if (pass === 'fwd') {
    return measureDispatches(([q, k, v, o, lse]) => [planAttn16Forward(t, d, types, 1, { q, k, v, o, lse })], [qs * by(types.TQ), ks * by(types.TQ), ks * by(types.TQ), qs * by(types.TO), rows]);
  }
  const split = attn16Split(d, t);
  const sizes = [qs * by(types.TQ), ks * by(types.TQ), ks * by(types.TQ), qs * by(types.TG), qs * by(types.TY), rows, rows, qs * 4, ks * 4, ks * 4, split * ks * 4, split * ks * 4];
  return measureDispatches(([q, k, v, dy, o, lse, delta, dq, dk, dv, pk, pv]) => planAttn16Backward(t, d, types, 1, split, { q, k, v, dy, o, lse, delta, dq, dk, dv, pk, pv }), sizes);
}

/** Starts tuning a pass's bucket (if new); resolves when tuned (bench awaits it). */
export function autotuneAttn16(pass: 'fwd' | 'bwd', d: AttnDims, types: Attn16Types): Promise<unknown> {
  if (!fragAutotuneEnabled()) return Promise.resolve(undefined);
  const dims = { ...d };
  return fragAutotuner('attention_f16').request(bucketOf(pass, d, types), () => attn16Candidates(dims.D, gpu(), types.FT), (id) => measure(pass, id, dims, types));
}

/** The tile of a pass: forced, else tuned (GPUs), else static. */
export function chooseAttn16Tile(pass: 'fwd' | 'bwd', d: AttnDims, types: Attn16Types, forced?: string): FragTile {
  if (forced) return parseTileId(forced);
  const G = gpu();
  if (fragAutotuneEnabled(G)) {
    const id = fragAutotuner('attention_f16').get(bucketOf(pass, d, types));
    if (id) return parseTileId(id);
    if (settings.autotune === 'background' && d.B * d.H * d.Lq * d.Lk * d.D >= 2 ** 21) void autotuneAttn16(pass, d, types);
  }
  return staticAttn16Tile(d.D, G, types.FT);
}
