// The one pipeline cache, keyed by kernel name, entry point and override constants. Ops get pipelines
// synchronously (get: errors surface at the next sync); the autotuner builds candidates asynchronously
// with private error scopes (build: a candidate that fails rejects, and nothing reaches the stream).
import { settings } from '../settings.js';
import { KernelError } from './errors.js';
import { enablesOf, sourceLineOf } from './wgsl.js';

export interface KernelSpec {
  /** Name used in errors and profiles, e.g. 'matmul.blocked'. One name, one module text. */
  name: string;
  /** The WGSL module (src/gpu/wgsl.ts `kernelModule`); `enable` directives lead it. */
  code: string;
  /** Entry point; defaults to 'main'. */
  entry?: string;
  /** WGSL `override` constants. */
  constants?: Record<string, number>;
}

export interface CachedPipeline {
  /** Small unique number (bind-group cache keys). */
  id: number;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  spec: KernelSpec;
  label: string;
}

const keyOf = (spec: KernelSpec) => `${spec.name}|${spec.entry ?? 'main'}|${spec.constants ? JSON.stringify(spec.constants) : ''}`;

export class PipelineCache {
  private readonly modules = new Map<string, GPUShaderModule>();
  private readonly pipelines = new Map<string, CachedPipeline>();
  readonly pendingErrors: Promise<Error | null>[] = [];

  constructor(
    private readonly device: GPUDevice,
    private readonly features: { f16: boolean; subgroups: boolean },
  ) {}

  get size(): number {
    return this.pipelines.size;
  }

  /** Whether the pipeline for `spec` is built. */
  has(spec: KernelSpec): boolean {
    return this.pipelines.has(keyOf(spec));
  }

  private labelOf(spec: KernelSpec): string {
    return `${spec.name}:${spec.entry ?? 'main'}${spec.constants ? `(${JSON.stringify(spec.constants)})` : ''}`;
  }

  /** Throws a KernelError when the module enables an extension this adapter lacks. */
  private checkFeatures(spec: KernelSpec, label: string): void {
    for (const e of enablesOf(spec.code)) {
      if (e === 'f16' && !this.features.f16) throw new KernelError(label, "needs 'shader-f16', which this adapter lacks");
      if (e === 'subgroups' && !this.features.subgroups) throw new KernelError(label, "needs 'subgroups', which this adapter lacks");
    }
  }

  private compileErrors(spec: KernelSpec, module: GPUShaderModule, fallback: string): Promise<string> {
    return module.getCompilationInfo().then((info) => {
      const msgs = info.messages.filter((x) => x.type === 'error').map((x) => {
        const { where, text } = sourceLineOf(spec.code, x.lineNum);
        return `${where}:${x.linePos} ${x.message}${text ? ` in: ${text}` : ''}`;
      });
      return `WGSL compile error: ${msgs.join('; ') || fallback}`;
    });
  }

  private insert(key: string, spec: KernelSpec, pipeline: GPUComputePipeline, label: string): CachedPipeline {
    const hit = { id: this.pipelines.size, pipeline, layout: pipeline.getBindGroupLayout(0), spec, label };
    this.pipelines.set(key, hit);
    return hit;
  }

  /** A cached module, or a new one with the promise of its compile error (null when it compiled). */
  private moduleFor(spec: KernelSpec, label: string): { module: GPUShaderModule; error: Promise<Error | null> | null } {
    const cached = this.modules.get(spec.code);
    if (cached) return { module: cached, error: null };
    if (settings.dumpWgsl) console.error(`// ---- ${label}\n${spec.code}`);
    this.device.pushErrorScope('validation');
    const module = this.device.createShaderModule({ code: spec.code, label: spec.name });
    const error = this.device.popErrorScope().then(async (e) => (e ? new KernelError(label, await this.compileErrors(spec, module, e.message)) : null));
    return { module, error };
  }

  private descriptor(spec: KernelSpec, label: string, module: GPUShaderModule): GPUComputePipelineDescriptor {
    return { label, layout: 'auto', compute: { module, entryPoint: spec.entry ?? 'main', constants: spec.constants } };
  }

  /** What a cache miss needs: the key and label, features checked, and the (possibly new) module. */
  private prepare(spec: KernelSpec): { key: string; label: string; module: GPUShaderModule; error: Promise<Error | null> | null } {
    const label = this.labelOf(spec);
    this.checkFeatures(spec, label);
    return { key: keyOf(spec), label, ...this.moduleFor(spec, label) };
  }

  /** The pipeline for `spec` (hot path: every dispatch). Errors are queued for the next sync. */
  get(spec: KernelSpec): CachedPipeline {
    const hit = this.pipelines.get(keyOf(spec));
    if (hit) return hit;
    const { key, label, module, error } = this.prepare(spec);
    if (error) {
      this.pendingErrors.push(error);
      this.modules.set(spec.code, module);
    }
    this.device.pushErrorScope('validation');
    const pipeline = this.device.createComputePipeline(this.descriptor(spec, label, module));
    this.pendingErrors.push(
      this.device.popErrorScope().then((e) => (e ? new KernelError(label, `pipeline creation failed: ${e.message}`) : null)),
    );
    return this.insert(key, spec, pipeline, label);
  }

  /**
   * The pipeline for `spec`, built asynchronously in private error scopes: rejects with a KernelError
   * when it does not compile or validate, and caches only what does (the autotuner's path: a failing
   * candidate never reaches the stream's error lists).
   */
  async build(spec: KernelSpec): Promise<CachedPipeline> {
    const hit = this.pipelines.get(keyOf(spec));
    if (hit) return hit;
    const { key, label, module, error } = this.prepare(spec);
    const failed = await error;
    if (failed) throw failed;
    this.modules.set(spec.code, module);
    let pipeline: GPUComputePipeline;
    try {
      pipeline = await this.device.createComputePipelineAsync(this.descriptor(spec, label, module));
    } catch (e) {
      throw new KernelError(label, `pipeline creation failed: ${(e as Error).message}`);
    }
    return this.pipelines.get(key) ?? this.insert(key, spec, pipeline, label);
  }
}
