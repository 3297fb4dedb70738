// A tiny SVG line plot (axes, ticks, one polyline per series, a legend): enough for training curves such as
// accuracy by timestep, with no dependency.
import { ArgumentError } from '../errors.js';

export interface PlotSeries {
  label: string;
  points: readonly (readonly [number, number])[];
}

export interface LinePlotOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  /** Fixed y range (default: the data's, padded). */
  yRange?: readonly [number, number];
  /** A dashed horizontal reference line (e.g. chance level 0.5). */
  yRef?: number;
  width?: number;
  height?: number;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** About five round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** The SVG document of a line plot of `series`. */
export function linePlotSvg(series: readonly PlotSeries[], opts: LinePlotOptions = {}): string {
  const pts = series.flatMap((s) => s.points);
  if (!pts.length) throw new ArgumentError('linePlotSvg: no points');
  for (const [x, y] of pts) if (!Number.isFinite(x) || !Number.isFinite(y)) throw new ArgumentError(`linePlotSvg: point (${x}, ${y}) is not finite`);
  const W = opts.width ?? 640;
  const H = opts.height ?? 400;
  const m = { l: 60, r: 20, t: opts.title ? 36 : 16, b: 48 };
  let x0 = Math.min(...pts.map((p) => p[0]));
  let x1 = Math.max(...pts.map((p) => p[0]));
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  let [y0, y1] = opts.yRange ?? [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  if (!opts.yRange) {
    const pad = (y1 - y0) * 0.05 || 0.5;
    y0 -= pad;
    y1 += pad;
  }
  const sx = (x: number) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
  const sy = (y: number) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  const f = (v: number) => v.toFixed(1);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
  ];
  if (opts.title) out.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(opts.title)}</text>`);
  for (const t of niceTicks(x0, x1)) {
    out.push(`<line x1="${f(sx(t))}" y1="${H - m.b}" x2="${f(sx(t))}" y2="${H - m.b + 5}" stroke="black"/>`);
    out.push(`<text x="${f(sx(t))}" y="${H - m.b + 18}" text-anchor="middle">${t}</text>`);
  }
  for (const t of niceTicks(y0, y1)) {
    out.push(`<line x1="${m.l}" y1="${f(sy(t))}" x2="${W - m.r}" y2="${f(sy(t))}" stroke="#e0e0e0"/>`);
    out.push(`<text x="${m.l - 6}" y="${f(sy(t) + 4)}" text-anchor="end">${t}</text>`);
  }
  out.push(`<line x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}" stroke="black"/>`);
  out.push(`<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}" stroke="black"/>`);
  if (opts.yRef !== undefined && opts.yRef >= y0 && opts.yRef <= y1) {
    out.push(`<line x1="${m.l}" y1="${f(sy(opts.yRef))}" x2="${W - m.r}" y2="${f(sy(opts.yRef))}" stroke="#888" stroke-dasharray="4 4"/>`);
  }
  if (opts.xLabel) out.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 10}" text-anchor="middle">${esc(opts.xLabel)}</text>`);
  if (opts.yLabel) out.push(`<text transform="translate(16 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${esc(opts.yLabel)}</text>`);
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    const poly = s.points.map(([x, y]) => `${f(sx(x))},${f(sy(y))}`).join(' ');
    out.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${poly}"/>`);
    for (const [x, y] of s.points) out.push(`<circle cx="${f(sx(x))}" cy="${f(sy(y))}" r="2.5" fill="${c}"/>`);
    out.push(`<rect x="${m.l + 10}" y="${m.t + 8 + 16 * i}" width="12" height="3" fill="${c}"/>`);
    out.push(`<text x="${m.l + 28}" y="${m.t + 13 + 16 * i}">${esc(s.label)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
