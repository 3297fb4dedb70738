// Pipeline cache keyed by kernel name, entry point, enables and override constants.
import { KernelError } from './errors.js';
import { sourceLineOf } from './wgsl.js';

export interface KernelSpec {
  /** Name used in errors and profiles, e.g. 'matmul.blocked'. */
  name: string;
  /** WGSL source of the kernel family. */
  code: string;
  /** Entry point; defaults to 'main'. */
  entry?: string;
  /** WGSL `override` constants. */
  constants?: Record<string, number>;
  /** Extensions to `enable` at the top of the module. */
  enables?: ('f16' | 'subgroups')[];
}

export interface CachedPipeline {
  /** Small unique number (bind-group cache keys). */
  id: number;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  spec: KernelSpec;
  label: string;
}

export class PipelineCache {
  private readonly modules = new Map<string, GPUShaderModule>();
  private readonly pipelines = new Map<string, CachedPipeline>();
  readonly pendingErrors: Promise<Error | null>[] = [];
  /** Set LPO_DUMP_WGSL=1 to print every compiled module. */
  private readonly dump = process.env.LPO_DUMP_WGSL === '1';

  constructor(
    private readonly device: GPUDevice,
    private readonly features: { f16: boolean; subgroups: boolean },
  ) {}

  get size(): number {
    return this.pipelines.size;
  }

  get(spec: KernelSpec): CachedPipeline {
    const entry = spec.entry ?? 'main';
    // Hot path (every dispatch): a cheap key; call sites pass constants in a fixed order.
    const consts = spec.constants ? JSON.stringify(spec.constants) : '';
    const key = `${spec.name}|${entry}|${spec.enables ?? ''}|${consts}`;
    let hit = this.pipelines.get(key);
    if (hit) return hit;
    const label = `${spec.name}:${entry}${consts ? `(${consts})` : ''}`;
    for (const e of spec.enables ?? []) {
      if (e === 'f16' && !this.features.f16) throw new KernelError(label, "needs 'shader-f16', which this adapter lacks");
      if (e === 'subgroups' && !this.features.subgroups) throw new KernelError(label, "needs 'subgroups', which this adapter lacks");
    }
    const header = (spec.enables ?? []).map((e) => `enable ${e};\n`).join('');
    const code = header + spec.code;
    let module = this.modules.get(code);
    if (!module) {
      if (this.dump) console.error(`// ---- ${label}\n${code}`);
      this.device.pushErrorScope('validation');
      module = this.device.createShaderModule({ code, label: spec.name });
      const m = module;
      this.pendingErrors.push(
        this.device.popErrorScope().then(async (e) => {
          if (!e) return null;
          const info = await m.getCompilationInfo();
          const msgs = info.messages.filter((x) => x.type === 'error').map((x) => {
            const { where, text } = sourceLineOf(spec.code, x.lineNum - (spec.enables?.length ?? 0));
            return `${where}:${x.linePos} ${x.message}${text ? ` in: ${text}` : ''}`;
          });
          return new KernelError(label, `WGSL compile error: ${msgs.join('; ') || e.message}`);
        }),
      );
      this.modules.set(code, module);
    }
    this.device.pushErrorScope('validation');
    const pipeline = this.device.createComputePipeline({
      label,
      layout: 'auto',
      compute: { module, entryPoint: entry, constants: spec.constants },
    });
    this.pendingErrors.push(
      this.device.popErrorScope().then((e) => (e ? new KernelError(label, `pipeline creation failed: ${e.message}`) : null)),
    );
    hit = { id: this.pipelines.size, pipeline, layout: pipeline.getBindGroupLayout(0), spec, label };
    this.pipelines.set(key, hit);
    return hit;
  }
}
