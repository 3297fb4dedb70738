// Module: named parameters and children with PyTorch state_dict key names, loading and freezing.
import { LpoError, ShapeError, DTypeError } from '../errors.js';
import { gpu } from '../gpu/runtime.js';
import { Tensor, keep, numel } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import { requireGrad, zeroGrad } from '../autograd/tape.js';

/** What loadStateDict reads from: a safetensors file (SafetensorsFile) or anything shaped like it. */
export interface StateDictReader {
  keys(): Iterable<string>;
  info(key: string): { shape: readonly number[]; dtype?: string };
  readF32(key: string): Float32Array | Promise<Float32Array>;
}

export type StateDictSource = Map<string, Float32Array | Tensor> | StateDictReader;

export interface ShapeMismatch { key: string; expected: number[]; got: number[] }

/** Missing, unexpected and wrong-shaped keys, all named in one error. */
export class StateDictError extends LpoError {
  constructor(readonly missing: string[], readonly unexpected: string[], readonly mismatched: ShapeMismatch[], what = 'loadStateDict') {
    const parts: string[] = [];
    const list = (xs: string[]) => (xs.length > 12 ? `${xs.slice(0, 12).join(', ')}, … (${xs.length} in all)` : xs.join(', '));
    if (missing.length) parts.push(`missing keys: ${list(missing)}`);
    if (unexpected.length) parts.push(`unexpected keys: ${list(unexpected)}`);
    if (mismatched.length) parts.push(`wrong shapes: ${list(mismatched.map((m) => `${m.key} [${m.got}] (expected [${m.expected}])`))}`);
    super(`${what}: ${parts.join('; ')}. Check that the checkpoint matches the model config (and the key prefix).`);
  }
}

export interface LoadOptions {
  /** Throw on missing or unexpected keys (wrong shapes always throw). Default true. */
  strict?: boolean;
}

export interface LoadReport { missing: string[]; unexpected: string[]; ignored: string[]; loaded: number }

/** Default generator for module init when none is passed (deterministic in construction order). */
let defaultGen = new Generator(0);
export function manualSeed(seed: number): void {
  defaultGen = new Generator(seed);
}
export function initGenerator(gen?: Generator): Generator {
  return gen ?? defaultGen;
}

function isReader(s: StateDictSource): s is StateDictReader {
  return !(s instanceof Map);
}

export class Module {
  private readonly _params = new Map<string, Tensor>();
  private readonly _children = new Map<string, Module>();

  /** Registers a leaf under `name` (kept out of tidy scopes), trainable unless told otherwise. */
  protected registerParameter(name: string, t: Tensor, trainable = true): Tensor {
    if (name.includes('.')) throw new LpoError(`registerParameter: '${name}' may not contain a dot`);
    if (this._params.has(name) || this._children.has(name)) throw new LpoError(`registerParameter: '${name}' is already registered`);
    keep(t);
    requireGrad(t, trainable);
    this._params.set(name, t);
    return t;
  }

  /** Registers a child module; its parameters appear as `name.<child key>`. */
  registerModule<M extends Module>(name: string, m: M): M {
    if (name.includes('.')) throw new LpoError(`registerModule: '${name}' may not contain a dot`);
    if (this._params.has(name) || this._children.has(name)) throw new LpoError(`registerModule: '${name}' is already registered`);
    this._children.set(name, m);
    return m;
  }

  /** The child registered under `name` (layers read their children through this, so replaceModule works). */
  child<M extends Module = Module>(name: string): M {
    const m = this._children.get(name);
    if (!m) throw new LpoError(`${this.constructor.name}: no child module '${name}'`);
    return m as M;
  }

  /** Swaps a registered child for another (e.g. a Linear for a LoRALinear around it). */
  replaceModule<M extends Module>(name: string, m: M): M {
    if (!this._children.has(name)) throw new LpoError(`replaceModule: ${this.constructor.name} has no child '${name}'`);
    this._children.set(name, m);
    this.onReplace(name, m);
    return m;
  }

  /** Hook for modules that cache children in fields (ModuleList). */
  protected onReplace(_name: string, _m: Module): void {}

  /**
   * Keys this module accepts and ignores when loading (e.g. CLIP's `position_ids` buffer), relative
   * to this module.
   */
  protected ignoredKey(_key: string): boolean {
    return false;
  }

  *namedChildren(): IterableIterator<[string, Module]> {
    yield* this._children;
  }

  *namedModules(prefix = ''): IterableIterator<[string, Module]> {
    yield [prefix, this];
    for (const [n, c] of this._children) yield* c.namedModules(prefix ? `${prefix}.${n}` : n);
  }

  /** Parameters in registration order, with dotted state_dict names. */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    for (const [mp, m] of this.namedModules(prefix)) {
      for (const [n, p] of m._params) {
        if (seen.has(p)) continue; // a shared parameter is listed once (first name)
        seen.add(p);
        out.push([mp ? `${mp}.${n}` : n, p]);
      }
    }
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  trainableParameters(): Tensor[] {
    return this.parameters().filter((p) => p.requiresGrad);
  }

  namedTrainableParameters(): [string, Tensor][] {
    return this.namedParameters().filter(([, p]) => p.requiresGrad);
  }

  /** Name → parameter tensor (the live tensors, not copies). */
  stateDict(): Map<string, Tensor> {
    return new Map(this.namedParameters());
  }

  numParameters(): number {
    return this.parameters().reduce((s, p) => s + p.size, 0);
  }

  /** requiresGrad off for every parameter (frees any gradients held). */
  freeze(): this {
    const ps = this.parameters();
    zeroGrad(ps);
    for (const p of ps) requireGrad(p, false);
    return this;
  }

  unfreeze(): this {
    for (const p of this.parameters()) requireGrad(p, true);
    return this;
  }

  zeroGrad(): void {
    zeroGrad(this.parameters());
  }

  private isIgnored(key: string): boolean {
    for (const [mp, m] of this.namedModules()) {
      if (mp === '') {
        if (m.ignoredKey(key)) return true;
      } else if (key.startsWith(`${mp}.`) && m.ignoredKey(key.slice(mp.length + 1))) return true;
    }
    return false;
  }

  /** Compares a source's keys and shapes with this module's; throws nothing. */
  checkStateDict(source: StateDictSource): { missing: string[]; unexpected: string[]; mismatched: ShapeMismatch[]; ignored: string[] } {
    const own = this.stateDict();
    const keys = [...source.keys()];
    const have = new Set(keys);
    const missing = [...own.keys()].filter((k) => !have.has(k));
    const unexpected: string[] = [];
    const ignored: string[] = [];
    const mismatched: ShapeMismatch[] = [];
    for (const k of keys) {
      const p = own.get(k);
      if (!p) {
        (this.isIgnored(k) ? ignored : unexpected).push(k);
        continue;
      }
      let shape: number[];
      let ok: boolean;
      const v = isReader(source) ? null : source.get(k)!;
      if (v === null) {
        shape = [...(source as StateDictReader).info(k).shape];
        ok = shape.join() === p.shape.join();
      } else if (v instanceof Tensor) {
        shape = [...v.shape];
        ok = shape.join() === p.shape.join();
      } else {
        // A flat host array carries no shape: only its element count can be checked.
        shape = [v.length];
        ok = v.length === p.size;
      }
      if (!ok) mismatched.push({ key: k, expected: [...p.shape], got: shape });
    }
    return { missing, unexpected, mismatched, ignored };
  }

  /**
   * Copies values into the existing parameters (their identity is kept, so optimizers stay valid).
   * Float32Array values in a Map must have the parameter's element count; readers and Tensors must
   * match its shape exactly. Every problem is reported at once in a StateDictError.
   */
  async loadStateDict(source: StateDictSource, opts: LoadOptions = {}): Promise<LoadReport> {
    const strict = opts.strict ?? true;
    const { missing, unexpected, mismatched, ignored } = this.checkStateDict(source);
    if (mismatched.length || (strict && (missing.length || unexpected.length))) {
      throw new StateDictError(strict ? missing : [], strict ? unexpected : [], mismatched);
    }
    const own = this.stateDict();
    let loaded = 0;
    for (const [k, p] of own) {
      if (missing.includes(k)) continue;
      if (isReader(source)) {
        p.write(await source.readF32(k));
      } else {
        const v = source.get(k)!;
        if (v instanceof Tensor) {
          if (v.dtype !== p.dtype) throw new DTypeError(`loadStateDict: '${k}' is ${v.dtype}, the parameter is ${p.dtype}`);
          if (v !== p) gpu().copy(v.buffer, 0, p.buffer, 0, p.bytes);
        } else p.write(v);
      }
      loaded++;
    }
    return { missing, unexpected, ignored, loaded };
  }

  /** Frees every parameter (and gradient). The module cannot be used afterwards. */
  dispose(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.grad = null;
      p.dispose();
    }
  }
}

/** A list of children named 0, 1, 2, … (torch.nn.ModuleList). */
export class ModuleList<M extends Module = Module> extends Module {
  private readonly items: M[] = [];

  constructor(items: Iterable<M> = []) {
    super();
    for (const m of items) this.append(m);
  }

  append(m: M): this {
    this.registerModule(String(this.items.length), m);
    this.items.push(m);
    return this;
  }

  get length(): number {
    return this.items.length;
  }

  at(i: number): M {
    const m = this.items[i < 0 ? i + this.items.length : i];
    if (!m) throw new LpoError(`ModuleList: index ${i} out of range (length ${this.items.length})`);
    return m;
  }

  protected override onReplace(name: string, m: Module): void {
    this.items[Number(name)] = m as M;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}

/** A parameter made from host values (used by layers' init). */
export function paramFrom(data: Float32Array, shape: readonly number[]): Tensor {
  if (data.length !== numel(shape)) throw new ShapeError(`param: ${data.length} values for [${shape}]`);
  return Tensor.fromArray(data, shape);
}
