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
}

export interface AcquiredDevice {
  gpu: GPU;
  adapter: GPUAdapter;
  device: GPUDevice;
  summary: AdapterSummary;
  hasF16: boolean;
  hasSubgroups: boolean;
  hasTimestamps: boolean;
}

const WANTED_FEATURES: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'] as GPUFeatureName[];

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
  const flags = ['disable-dawn-features=timestamp_quantization', ...(opts.dawnFlags ?? [])];
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
  const features = WANTED_FEATURES.filter((f) => adapter.features.has(f));
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
  };
  if (opts.verbose) {
    console.error(
      `[lpo] adapter: ${summary.vendor} / ${summary.architecture} / ${summary.description}` +
        ` | features: ${features.join(', ') || 'none'} | maxBuffer ${summary.maxBufferSize} maxStorageBinding ${summary.maxStorageBufferBindingSize}`,
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
  };
}
