// A minimal ONNX (protobuf) writer for the CPU peer (onnxruntime-node): a graph of standard ops with float
// initializers, written in code so no Python or .onnx blob is needed. Only the fields ORT needs: ModelProto
// (ir_version 1, opset_import 8, graph 7), GraphProto (node 1, name 2, initializer 5, input 11, output 12),
// NodeProto (input 1, output 2, name 3, op_type 4, attribute 5), AttributeProto (name 1, i 3, ints 8, type 20),
// TensorProto (dims 1, data_type 2, name 8, raw_data 9), ValueInfoProto (name 1, type 2 → tensor_type 1 →
// elem_type 1, shape 2 → dim 1 → dim_value 1). Field numbers from onnx/onnx.proto.

class Writer {
  private parts: number[] = [];
  varint(v: number): this {
    let n = BigInt(v);
    do {
      let b = Number(n & 0x7fn);
      n >>= 7n;
      if (n > 0n) b |= 0x80;
      this.parts.push(b);
    } while (n > 0n);
    return this;
  }
  key(field: number, wire: number): this { return this.varint((field << 3) | wire); }
  int(field: number, v: number): this { return this.key(field, 0).varint(v); }
  bytes(field: number, b: Uint8Array): this { this.key(field, 2).varint(b.length); for (const x of b) this.parts.push(x); return this; }
  str(field: number, s: string): this { return this.bytes(field, new TextEncoder().encode(s)); }
  msg(field: number, w: Writer): this { return this.bytes(field, w.done()); }
  done(): Uint8Array { return Uint8Array.from(this.parts); }
}

const FLOAT = 1;
const INTS = 7;
const INT = 2;

export interface OnnxNode { op: string; inputs: string[]; outputs: string[]; attrs?: Record<string, number | number[]> }
export interface OnnxGraph {
  inputs: { name: string; shape: number[] }[];
  outputs: { name: string; shape: number[] }[];
  initializers: { name: string; shape: number[]; data: Float32Array }[];
  nodes: OnnxNode[];
}

function valueInfo(name: string, shape: number[]): Writer {
  const sh = new Writer();
  for (const d of shape) sh.msg(1, new Writer().int(1, d));
  return new Writer().str(1, name).msg(2, new Writer().msg(1, new Writer().int(1, FLOAT).msg(2, sh)));
}

/** The serialized ModelProto (opset 17) of `g`. */
export function onnxModel(g: OnnxGraph): Uint8Array {
  const graph = new Writer();
  g.nodes.forEach((n, i) => {
    const w = new Writer();
    for (const x of n.inputs) w.str(1, x);
    for (const x of n.outputs) w.str(2, x);
    w.str(3, `n${i}`).str(4, n.op);
    for (const [k, v] of Object.entries(n.attrs ?? {})) {
      const a = new Writer().str(1, k);
      if (Array.isArray(v)) { for (const x of v) a.int(8, x); a.int(20, INTS); } else a.int(3, v).int(20, INT);
      w.msg(5, a);
    }
    graph.msg(1, w);
  });
  graph.str(2, 'peer');
  for (const t of g.initializers) {
    const w = new Writer();
    for (const d of t.shape) w.int(1, d);
    w.int(2, FLOAT).str(8, t.name).bytes(9, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    graph.msg(5, w);
  }
  for (const v of g.inputs) graph.msg(11, valueInfo(v.name, v.shape));
  for (const v of g.outputs) graph.msg(12, valueInfo(v.name, v.shape));
  return new Writer().int(1, 8).msg(8, new Writer().str(1, '').int(2, 17)).msg(7, graph).done();
}
