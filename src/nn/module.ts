// Module: named parameters and children with PyTorch state_dict key names, loading and freezing.
import { LpoError, DTypeError } from '../errors.js';
import { gpu } from '../gpu/runtime.js';
import { Tensor, keep } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import { noGrad, requireGrad, zeroGrad } from '../autograd/tape.js';
import { cast } from '../tensor/ops/cast.js';
import { planStateDict, StateDictError, type CheckpointKeys, type SourceShape, type StateDictPlan, type StateDictReader, type StateDictReport } from './state_dict.js';

export { StateDictError, type StateDictReader, type CheckpointKeys, type ShapeMismatch, type StateDictReport } from './state_dict.js';

export type StateDictSource = Map<string, Float32Array | Tensor> | StateDictReader;

export interface LoadOptions {
  /** Throw on missing or unexpected keys (wrong shapes always throw). Default true. */
  strict?: boolean;
}

export interface LoadReport extends StateDictReport {
  /** Parameters written. */
  loaded: number;
}

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
   * How checkpoints name this module's parameters (older names, buffers to ignore, 1×1-conv shapes), relative
   * to this module. Models override it; the state-dict check applies it to every key under this module.
   */
  protected checkpointKeys(): CheckpointKeys | null {
    return null;
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

  /** Matches a source's keys with this module's parameters under every module's declared CheckpointKeys. */
  private planLoad(source: StateDictSource): StateDictPlan {
    const rules: [string, CheckpointKeys][] = [];
    for (const [prefix, m] of this.namedModules()) {
      const r = m.checkpointKeys();
      if (r) rules.push([prefix, r]);
    }
    const shapeOf = (k: string): SourceShape => {
      if (isReader(source)) return { shape: source.info(k).shape };
      const v = source.get(k)!;
      // A flat host array carries no shape: only its element count can be checked.
      return v instanceof Tensor ? { shape: v.shape } : { count: v.length };
    };
    return planStateDict(this.stateDict(), source.keys(), shapeOf, rules);
  }

  /** Compares a source's keys and shapes with this module's (missing, unexpected, wrong shape, ignored); throws nothing. */
  checkStateDict(source: StateDictSource): StateDictReport {
    return this.planLoad(source).report;
  }

  /**
   * Copies values into the existing parameters (their identity is kept, so optimizers stay valid), through the
   * key names the modules declare. Readers and Tensors must match each parameter's shape; Float32Array values
   * in a Map its element count. Every problem is reported at once in a StateDictError, before anything is written.
   */
  async loadStateDict(source: StateDictSource, opts: LoadOptions = {}): Promise<LoadReport> {
    const strict = opts.strict ?? true;
    const { report, sources } = this.planLoad(source);
    if (report.wrongShape.length || (strict && (report.missing.length || report.unexpected.length))) {
      const path = isReader(source) ? source.path : undefined;
      throw new StateDictError(strict ? report : { ...report, missing: [], unexpected: [] }, path ? `loadStateDict from '${path}'` : 'loadStateDict');
    }
    let loaded = 0;
    for (const [k, p] of this.stateDict()) {
      const src = sources.get(k);
      if (src === undefined) continue;
      if (isReader(source)) {
        p.write(await source.readF32(src));
      } else {
        const v = source.get(src)!;
        if (v instanceof Tensor) {
          if (v.dtype !== p.dtype) throw new DTypeError(`loadStateDict: '${src}' is ${v.dtype}, the parameter is ${p.dtype}`);
          if (v !== p) gpu().copy(v.buffer, 0, p.buffer, 0, p.bytes);
        } else p.write(v);
      }
      loaded++;
    }
    return { ...report, loaded };
  }

  /**
   * The parameters of this module that Module.half() may store in f16: the weights of matmuls and
   * convolutions (Linear and Conv2d say 'weight'); by default none (embeddings and norms stay f32,
   * their ops are f32).
   */
  protected halfParameters(): readonly string[] {
    return [];
  }

  /**
   * Mixed precision storage (issue 12): every frozen parameter that its module lists in
   * halfParameters() becomes f16 — in every module that shares it (a LoRALinear shares its base
   * Linear's weight) — and the f32 copy is freed. Trainable parameters stay f32 (the optimizer's master
   * copies; the f16 kernels read them converting on the fly), and so do biases and norm scales. Ops
   * given an f16 weight run on the f16 kernels (f16 operands, f32 accumulation, f32 outputs); with
   * withAutocast (src/tensor/ops/autocast.ts) the activations' matmuls and attention follow. Returns
   * the number of tensors converted. float() converts them back.
   */
  half(): number {
    return this.convertParameters('f16');
  }

  /** Undoes half(): every f16 parameter back to f32 (trainable or not). */
  float(): number {
    return this.convertParameters('f32');
  }

  private convertParameters(to: 'f16' | 'f32'): number {
    // Registered children, and modules held in fields only (a LoRALinear's `base`), which share tensors too.
    const modules: Module[] = [];
    const visit = (m: Module) => {
      if (modules.includes(m)) return;
      modules.push(m);
      for (const [, c] of m._children) visit(c);
      for (const v of Object.values(m)) if (v instanceof Module) visit(v);
    };
    visit(this);
    const targets = new Set<Tensor>();
    for (const m of modules) {
      const names = to === 'f16' ? m.halfParameters() : [...m._params.keys()];
      for (const n of names) {
        const p = m._params.get(n);
        if (p && p.dtype !== to && p.dtype !== 'i32' && (to === 'f32' || !p.requiresGrad)) targets.add(p);
      }
    }
    for (const p of targets) {
      const q = keep(noGrad(() => cast(p, to)));
      q.name = p.name;
      requireGrad(q, p.requiresGrad);
      // Swap the tensor wherever this tree holds it: parameter maps and the fields modules keep.
      for (const m of modules) {
        for (const [n, t] of m._params) if (t === p) m._params.set(n, q);
        const fields = m as unknown as Record<string, unknown>;
        for (const k of Object.keys(fields)) if (fields[k] === p) fields[k] = q;
      }
      p.grad?.dispose();
      p.dispose();
    }
    return targets.size;
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
