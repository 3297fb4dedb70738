// Tensor: a shape, a dtype and contiguous row-major GPU storage shared by views.
import { ShapeError, LpoError, DTypeError } from '../errors.js';
import { gpu } from '../gpu/runtime.js';
import { floatsToHalf, halfToFloats } from './half.js';
import { Generator } from './random.js';
import type { TapeNode } from '../autograd/tape.js';

/** f32 compute; f16 storage (adapters with shader-f16); i32 for indices (token ids, argmax). */
export type DType = 'f32' | 'f16' | 'i32';
export const BYTES: Record<DType, number> = { f32: 4, f16: 2, i32: 4 };

/** GPU memory shared by a tensor and its views; released to the pool when the last holder disposes. */
class Storage {
  refs = 1;
  constructor(readonly buffer: GPUBuffer, readonly bytes: number) {}
}

let nextId = 1;
const scopes: Set<Tensor>[] = [];

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function checkShape(shape: readonly number[], what = 'shape'): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(`${what} [${shape.join(', ')}] must hold non-negative integers`);
  }
  if (numel(shape) >= 2 ** 31) throw new ShapeError(`${what} [${shape.join(', ')}] has ≥ 2^31 elements (u32 indexing)`);
}

export class Tensor {
  readonly id = nextId++;
  readonly shape: readonly number[];
  readonly dtype: DType;
  private storage: Storage | null;
  /** True for trainable leaves and for results of recorded ops that depend on them. */
  requiresGrad = false;
  /** Accumulated gradient of a leaf after backward(). */
  grad: Tensor | null = null;
  /** The recorded op that produced this tensor (null for leaves and untracked results). */
  node: TapeNode | null = null;
  name?: string;

  private constructor(shape: readonly number[], dtype: DType, storage: Storage) {
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.storage = storage;
    scopes[scopes.length - 1]?.add(this);
  }

  /** A new tensor with uninitialised storage from the pool. */
  static empty(shape: readonly number[], dtype: DType = 'f32', label?: string): Tensor {
    checkShape(shape);
    const bytes = numel(shape) * BYTES[dtype];
    const buf = gpu().pool.acquire(bytes, label ?? `tensor[${shape.join('x')}]`);
    return new Tensor(shape, dtype, new Storage(buf, bytes));
  }

  static fromArray(data: ArrayLike<number>, shape: readonly number[], dtype: DType = 'f32'): Tensor {
    checkShape(shape);
    if (data.length !== numel(shape)) {
      throw new ShapeError(`fromArray: ${data.length} values do not fill shape [${shape.join(', ')}] (${numel(shape)})`);
    }
    const t = Tensor.empty(shape, dtype);
    if (data.length) t.write(data);
    return t;
  }

  static scalar(x: number): Tensor {
    return Tensor.fromArray([x], []);
  }

  static randn(shape: readonly number[], gen: Generator, std = 1): Tensor {
    return Tensor.fromArray(gen.normalArray(numel(shape), 0, std), shape);
  }

  static rand(shape: readonly number[], gen: Generator, low = 0, high = 1): Tensor {
    return Tensor.fromArray(gen.uniformArray(numel(shape), low, high), shape);
  }

  get size(): number { return numel(this.shape); }
  get rank(): number { return this.shape.length; }
  get bytes(): number { return this.size * BYTES[this.dtype]; }
  get disposed(): boolean { return this.storage === null; }

  get buffer(): GPUBuffer {
    if (!this.storage) throw new LpoError(`tensor #${this.id}${this.name ? ` '${this.name}'` : ''} [${this.shape.join(', ')}] was disposed`);
    return this.storage.buffer;
  }

  /** Overwrites the contents from host values (converted to this tensor's dtype). */
  write(data: ArrayLike<number>): void {
    if (data.length !== this.size) throw new ShapeError(`write: ${data.length} values for ${this.size} elements`);
    let host: Float32Array | Uint16Array | Int32Array;
    if (this.dtype === 'f16') host = floatsToHalf(data);
    else if (this.dtype === 'i32') host = data instanceof Int32Array ? data : Int32Array.from(data);
    else host = data instanceof Float32Array ? data : Float32Array.from(data);
    gpu().write(this.buffer, padTo4(host));
  }

  /** Reads the values back as f32 (f16 widened). For i32 tensors use toInt32Array(). */
  async toArray(): Promise<Float32Array> {
    if (this.dtype === 'i32') return Float32Array.from(await this.toInt32Array());
    if (this.size === 0) return new Float32Array(0);
    const raw = await gpu().read(this.buffer, this.bytes);
    return this.dtype === 'f16' ? halfToFloats(new Uint16Array(raw)) : new Float32Array(raw);
  }

  async toInt32Array(): Promise<Int32Array> {
    if (this.dtype !== 'i32') throw new DTypeError(`toInt32Array() on a ${this.dtype} tensor`);
    if (this.size === 0) return new Int32Array(0);
    return new Int32Array(await gpu().read(this.buffer, this.bytes));
  }

  async item(): Promise<number> {
    if (this.size !== 1) throw new ShapeError(`item() needs one element, got shape [${this.shape.join(', ')}]`);
    return (await this.toArray())[0];
  }

  /** Another handle on the same storage, with its own shape (no copy, no autograd). */
  view(shape: readonly number[]): Tensor {
    const resolved = resolveShape(shape, this.size);
    if (!this.storage) throw new LpoError('view of a disposed tensor');
    this.storage.refs++;
    return new Tensor(resolved, this.dtype, this.storage);
  }

  /** Keeps the storage alive for another holder (the tape, a cache). Dispose the result when done. */
  retain(): Tensor {
    return this.view(this.shape);
  }

  dispose(): void {
    const s = this.storage;
    if (!s) return;
    this.storage = null;
    if (--s.refs === 0) gpu().pool.release(s.buffer);
    for (const sc of scopes) sc.delete(this);
  }

  toString(): string {
    return `Tensor#${this.id}(${this.name ? `${this.name}, ` : ''}[${this.shape.join(', ')}], ${this.dtype}${this.requiresGrad ? ', grad' : ''})`;
  }
}

/** Resolves one -1 in a target shape and checks the element count. */
export function resolveShape(shape: readonly number[], size: number): number[] {
  const out = [...shape];
  const free = out.indexOf(-1);
  if (free >= 0) {
    const rest = numel(out.filter((_, i) => i !== free));
    if (rest === 0 || size % rest !== 0) throw new ShapeError(`cannot infer -1 in [${shape.join(', ')}] for ${size} elements`);
    out[free] = size / rest;
  }
  checkShape(out);
  if (numel(out) !== size) throw new ShapeError(`cannot view ${size} elements as [${shape.join(', ')}]`);
  return out;
}

function padTo4(a: Float32Array | Uint16Array | Int32Array): Float32Array | Uint16Array | Int32Array {
  if (a.byteLength % 4 === 0) return a;
  const p = new Uint16Array(a.length + 1);
  p.set(a as Uint16Array);
  return p;
}

type Kept = Tensor | Kept[] | { [k: string]: Kept } | null | undefined | number | string | boolean;

function collect(x: unknown, into: Set<Tensor>): void {
  if (x instanceof Tensor) into.add(x);
  else if (Array.isArray(x)) for (const v of x) collect(v, into);
  else if (x && typeof x === 'object') for (const v of Object.values(x)) collect(v, into);
}

/**
 * Runs `fn` and disposes every tensor created inside it except those it returns (TF.js's tidy); if fn
 * throws, everything it created is disposed. Storage still referenced elsewhere (the tape, a view)
 * stays alive through its refcount.
 */
export function tidy<T extends Kept | void>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let out: T;
  try {
    out = fn();
  } catch (e) {
    // A failed computation frees what it made (an error path must not leak GPU memory).
    for (const t of scope) t.dispose();
    throw e;
  } finally {
    scopes.pop();
  }
  const keep = new Set<Tensor>();
  collect(out, keep);
  for (const t of scope) if (!keep.has(t)) t.dispose();
  const parent = scopes[scopes.length - 1];
  if (parent) for (const t of keep) parent.add(t);
  return out;
}

/**
 * Async variant of tidy for code that awaits inside; like tidy, a rejected `fn` frees everything it created.
 * Scopes form one stack, so tidyAsync calls must not interleave (await one before starting another).
 */
export async function tidyAsync<T>(fn: () => Promise<T>): Promise<T> {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let out: T;
  try {
    out = await fn();
  } catch (e) {
    // An error path must not leak GPU memory (as in tidy).
    for (const t of scope) t.dispose();
    throw e;
  } finally {
    scopes.splice(scopes.lastIndexOf(scope), 1);
  }
  const keep = new Set<Tensor>();
  collect(out, keep);
  for (const t of scope) if (!keep.has(t)) t.dispose();
  const parent = scopes[scopes.length - 1];
  if (parent) for (const t of keep) parent.add(t);
  return out;
}

/** Excludes a tensor from the enclosing tidy scopes (parameters, caches). */
export function keep<T extends Tensor>(t: T): T {
  for (const sc of scopes) sc.delete(t);
  return t;
}
