// The one template step for WGSL: shared helpers (kernels/lib/common.wgsl) in front of a family's source.
import common from '../../kernels/lib/common.wgsl';

/** Lines the prelude adds in front (compile errors subtract it to point into the family file). */
export const COMMON_LINES = common.split('\n').length;

/** A kernel family's source with linear_id, erf_, sigmoid_ and tanh_ defined in front of it. */
export function withCommon(source: string): string {
  return `${common}\n${source}`;
}
