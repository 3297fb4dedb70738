// A Module whose parameters are exactly the given dotted names and shapes (zeros), optionally declaring
// CheckpointKeys: the state-dict tests check key matching without building a real model.
import { Module, type CheckpointKeys } from '../../src/nn/module.js';
import { Tensor } from '../../src/tensor/tensor.js';

export class ShapeModule extends Module {
  constructor(shapes: ReadonlyMap<string, readonly number[]> = new Map(), private readonly keys: CheckpointKeys | null = null) {
    super();
    for (const [k, shape] of shapes) {
      const parts = k.split('.');
      let m: Module = this;
      for (const p of parts.slice(0, -1)) {
        const kids = new Map(m.namedChildren());
        m = kids.get(p) ?? m.registerModule(p, new ShapeModule());
      }
      (m as ShapeModule).add(parts[parts.length - 1], Tensor.fromArray(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape));
    }
  }

  add(name: string, t: Tensor): void {
    this.registerParameter(name, t, false);
  }

  protected override checkpointKeys(): CheckpointKeys | null {
    return this.keys;
  }
}
