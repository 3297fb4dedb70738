// Embedding lookup (token ids → rows of a table) with a deterministic scatter-add backward.
import { ShapeError, DTypeError } from '../../errors.js';
import { defineParams } from '../../gpu/params.js';
import { gpu } from '../../gpu/runtime.js';
import { kernelModule } from '../../gpu/wgsl.js';
import { record } from '../../autograd/tape.js';
import { Tensor } from '../tensor.js';
import { zeros } from './elementwise.js';

const code = kernelModule('embedding');
const P = defineParams('embedding.wgsl', 'Params', { N: 'u32', D: 'u32', V: 'u32' });

const WG = 256;

/**
 * table[ids] : ids (i32) [...] and table [V, D] → [..., D]. Ids outside [0, V) give zero rows
 * (and no gradient). The gradient flows to the table only; repeated ids accumulate.
 */
export function embedding(ids: Tensor, table: Tensor): Tensor {
  if (ids.dtype !== 'i32') throw new DTypeError(`embedding: ids must be i32, got ${ids.dtype} [${ids.shape}]`);
  if (table.dtype !== 'f32' || table.rank !== 2) throw new ShapeError(`embedding: table must be f32 [V, D], got ${table.dtype} [${table.shape}]`);
  const [V, D] = table.shape;
  const N = ids.size;
  const out = Tensor.empty([...ids.shape, D]);
  if (out.size) {
    gpu().dispatch({
      kernel: { name: 'embedding.forward', code, entry: 'forward', constants: { WG } },
      buffers: [ids.buffer, table.buffer, out.buffer],
      params: P.of({ N, D, V }),
      workgroups: Math.ceil((N * D) / WG),
    });
  }
  return record('embedding', [ids, table], out, [ids], (dy, [sids]) => [
    null,
    () => {
      const dt = zeros(table.shape);
      if (N * D > 0) {
        gpu().dispatch({
          kernel: { name: 'embedding.backward', code, entry: 'backward', constants: { WG } },
          buffers: [sids.buffer, dy.buffer, dt.buffer],
          params: P.of({ N, D, V }),
          workgroups: Math.ceil((N * D) / WG),
        });
      }
      return dt;
    },
  ]);
}
