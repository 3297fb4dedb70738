// Layout ops that move no data: reshape (a view recorded on the tape).
import { record } from '../../autograd/tape.js';
import { Tensor } from '../tensor.js';

/** Same storage, new shape (one -1 allowed); differentiable. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const y = x.view(shape);
  return record('reshape', [x], y, [], (dy) => [() => dy.view(x.shape)]);
}
