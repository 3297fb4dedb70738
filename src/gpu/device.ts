// Dawn adapter/device acquisition through the npm `webgpu` package.
import { NoAdapterError } from './errors.js';
import { settings } from '../settings.js';

export interface DeviceOptions {
  /** Prefer this adapter (Dawn `adapter=` toggle substring, e.g. 'llvmpipe' or 'nvidia'). */
  adapterName?: string;
  /** Log the adapter, its features and limits to stderr. */
  verbose?: boolean;
  /** Extra Dawn toggles. */
  dawnFlags?: string[];
  /** Ask for the experimental features (subgroup matrices) and their toggles (default: settings.experimentalFeatures). */
  experimental?: boolean;
}

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isSoftware: boolean;
  features: string[];
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
  subgroupMinSize: number;
  subgroupMaxSize: number;
  /** Subgroup-matrix shapes the adapter offers (empty without the experimental feature). */
  subgroupMatrixConfigs: SubgroupMatrixConfig[];
  /** The Dawn toggles this device was created with (`enable-dawn-features=…`). */
  toggles: string[];
}

/** One entry of `adapter.info.subgroupMatrixConfigs`: left K×M and right N×K matrices of componentType, result N×M. */
export interface SubgroupMatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}

export interface AcquiredDevice {
  gpu: GPU;
  adapter: GPUAdapter;
  device: GPUDevice;
  summary: AdapterSummary;
  hasF16: boolean;
  hasSubgroups: boolean;
  hasTimestamps: boolean;
  /** 'chromium-experimental-subgroup-matrix' was granted (tensor cores from WGSL; see summary.subgroupMatrixConfigs). */
  hasSubgroupMatrix: boolean;
}

/** The experimental feature behind tensor cores (Vulkan VK_KHR_cooperative_matrix); needs allow_unsafe_apis. */
export const SUBGROUP_MATRIX = 'chromium-experimental-subgroup-matrix';
const WANTED_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'] as GPUFeatureName[];
/**
 * Dawn toggles for the experimental features (settings.experimentalFeatures): `allow_unsafe_apis`
 * exposes the subgroup-matrix feature; NVIDIA's Vulkan driver below 615.71 gets no shader-f16 (and
 * so no f16 subgroup-matrix configs) unless `vulkan_enable_f16_on_nvidia` is set. Unknown toggles are
 * ignored by Dawn, so other adapters are unaffected.
 */
export const EXPERIMENTAL_TOGGLES = ['allow_unsafe_apis', 'vulkan_enable_f16_on_nvidia'];

export async function acquireDevice(opts: DeviceOptions = {}): Promise<AcquiredDevice> {
  // Dawn's Vulkan loader path wants a runtime dir; headless servers often lack one.
  process.env.XDG_RUNTIME_DIR ??= `/tmp/xdg-runtime-${process.getuid?.() ?? 0}`;
  let webgpu: typeof import('webgpu');
  try {
    webgpu = await import('webgpu');
  } catch (e) {
    throw new NoAdapterError(`the 'webgpu' npm package could not be loaded (${(e as Error).message}); run 'npm install'`);
  }
  Object.assign(globalThis, webgpu.globals);
  // Honest GPU timings need unquantized timestamps (Dawn masks the low 16 bits by default).
  const experimental = opts.experimental ?? settings.experimentalFeatures;
  const toggles = experimental ? EXPERIMENTAL_TOGGLES : [];
  const flags = ['disable-dawn-features=timestamp_quantization', ...(toggles.length ? [`enable-dawn-features=${toggles.join(',')}`] : []), ...(opts.dawnFlags ?? [])];
  const adapterName = opts.adapterName ?? settings.adapter;
  if (adapterName) flags.push(`adapter=${adapterName}`);
  const gpu = webgpu.create(flags);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    throw new NoAdapterError(
      'no WebGPU adapter found. Install a Vulkan driver: with a GPU its vendor driver plus libvulkan1; ' +
        'without one, Mesa lavapipe (Debian 12: apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1). ' +
        "'npm test' and 'npm run demo' install it themselves when run as root on Debian/Ubuntu.",
    );
  }
  const wanted = experimental ? [...WANTED_FEATURES, SUBGROUP_MATRIX as GPUFeatureName] : WANTED_FEATURES;
  const features = wanted.filter((f) => adapter.features.has(f));
  const lim = adapter.limits;
  const requiredLimits: Record<string, number> = {
    maxBufferSize: lim.maxBufferSize,
    maxStorageBufferBindingSize: lim.maxStorageBufferBindingSize,
    maxStorageBuffersPerShaderStage: lim.maxStorageBuffersPerShaderStage,
    maxComputeWorkgroupStorageSize: lim.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: lim.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: lim.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupSizeY: lim.maxComputeWorkgroupSizeY,
  };
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures: features, requiredLimits });
  } catch (e) {
    throw new NoAdapterError(`the adapter refused a device: ${(e as Error).message}`);
  }
  const info = adapter.info;
  const summary: AdapterSummary = {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    isSoftware: info.architecture === 'software' || /llvmpipe|swiftshader|lavapipe/i.test(`${info.device} ${info.description}`),
    features: [...adapter.features].sort(),
    maxBufferSize: device.limits.maxBufferSize,
    maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
    subgroupMinSize: (info as unknown as { subgroupMinSize?: number }).subgroupMinSize ?? 0,
    subgroupMaxSize: (info as unknown as { subgroupMaxSize?: number }).subgroupMaxSize ?? 0,
    subgroupMatrixConfigs: features.includes(SUBGROUP_MATRIX as GPUFeatureName) ? matrixConfigs(info) : [],
    toggles,
  };
  if (opts.verbose) {
    console.error(
      `[lpo] adapter: ${summary.vendor} / ${summary.architecture} / ${summary.description}` +
        ` | features: ${features.join(', ') || 'none'} | maxBuffer ${summary.maxBufferSize} maxStorageBinding ${summary.maxStorageBufferBindingSize}` +
        ` | ${describeMatrixConfigs(summary.subgroupMatrixConfigs)}`,
    );
  }
  return {
    gpu,
    adapter,
    device,
    summary,
    hasF16: features.includes('shader-f16' as GPUFeatureName),
    hasSubgroups: features.includes('subgroups' as GPUFeatureName),
    hasTimestamps: features.includes('timestamp-query' as GPUFeatureName),
    hasSubgroupMatrix: features.includes(SUBGROUP_MATRIX as GPUFeatureName),
  };
}

/** The adapter's subgroup-matrix configs as plain objects (dawn.node wraps each in a GPUSubgroupMatrixConfig). */
function matrixConfigs(info: GPUAdapterInfo): SubgroupMatrixConfig[] {
  const raw = (info as unknown as { subgroupMatrixConfigs?: Iterable<SubgroupMatrixConfig> }).subgroupMatrixConfigs;
  return raw ? [...raw].map((c) => ({ componentType: String(c.componentType), resultComponentType: String(c.resultComponentType), M: c.M, N: c.N, K: c.K })) : [];
}

/** One line for logs and `lpo doctor`: 'subgroup matrices: f16→f32 16×16×16, …' or why there are none. */
export function describeMatrixConfigs(configs: readonly SubgroupMatrixConfig[]): string {
  if (!configs.length) return 'subgroup matrices: none';
  return `subgroup matrices: ${configs.map((c) => `${c.componentType}→${c.resultComponentType} ${c.M}×${c.N}×${c.K}`).join(', ')}`;
}
