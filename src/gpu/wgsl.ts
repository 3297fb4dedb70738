// The one template step for WGSL: shared helpers from kernels/lib/ in front of a family's source.
import common from '../../kernels/lib/common.wgsl';
import wgSum from '../../kernels/lib/wg_sum.wgsl';

/** Helpers a family may ask for besides common.wgsl (linear_id, erf_, sigmoid_, tanh_). */
export const WGSL_LIBS = { wgSum } as const;
type Lib = keyof typeof WGSL_LIBS;

/** Every prelude handed out, longest first, with the file names it is made of (for error lines). */
const preludes: { text: string; files: string[] }[] = [];

function prelude(libs: readonly Lib[]): string {
  const text = `${[common, ...libs.map((l) => WGSL_LIBS[l])].join('\n')}\n`;
  if (!preludes.some((p) => p.text === text)) {
    preludes.push({ text, files: ['common.wgsl', ...libs.map((l) => `${l === 'wgSum' ? 'wg_sum' : l}.wgsl`)] });
    preludes.sort((a, b) => b.text.length - a.text.length);
  }
  return text;
}

/** A kernel family's source with common.wgsl (and the named libs) in front of it. */
export function withCommon(source: string, ...libs: Lib[]): string {
  return prelude(libs) + source;
}

/** Maps line `n` (1-based) of compiled code back to the family file or the prelude, with that line's text. */
export function sourceLineOf(code: string, n: number): { where: string; text: string } {
  const p = preludes.find((q) => code.startsWith(q.text));
  const before = p ? p.text.split('\n').length - 1 : 0;
  const text = code.split('\n')[n - 1]?.trim() ?? '';
  const where = n <= before ? `kernels/lib/ (${p!.files.join(' + ')}) line ${n}` : `line ${n - before}`;
  return { where, text: text.length > 80 ? `${text.slice(0, 77)}...` : text };
}
