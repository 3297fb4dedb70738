// End to end: `lpo doctor` verifies a matmul on the adapter, and with no Vulkan driver it fails cleanly.
import { beforeAll, describe, expect, it } from 'vitest';
import { buildCli, lpo, NO_DRIVER } from './cli.js';

beforeAll(buildCli);

describe('lpo doctor', () => {
  it('prints the adapter and a matmul verified against float64 with its speed, exit 0', async () => {
    const r = await lpo(['doctor']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^adapter: /m);
    expect(r.stdout).toMatch(/^matmul 257×129×200 .*relL2 vs float64 \S+ OK$/m);
    expect(r.stdout).toMatch(/^matmul time: [\d.]+ ms median \([\d.]+ GFLOP\/s/m);
  });

  it('without any Vulkan driver: one clear line naming what to install, exit 1, no JS stack trace', async () => {
    const r = await lpo(['doctor'], NO_DRIVER);
    expect(r.code).toBe(1);
    const ours = r.stderr.split('\n').filter((l) => l.startsWith('lpo doctor:'));
    expect(ours).toHaveLength(1);
    expect(ours[0]).toMatch(/no WebGPU adapter found/);
    expect(ours[0]).toMatch(/mesa-vulkan-drivers libvulkan1/);
    // Dawn's own native log lines may precede it, but no JavaScript stack frame may appear.
    expect(r.stderr).not.toMatch(/^\s+at .*\.(js|mjs|ts):\d+/m);
  });

  it('takes no options: --help exit 0, an unknown flag exit 2', async () => {
    const h = await lpo(['doctor', '--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/^usage: lpo doctor \[options\]$/m);
    const u = await lpo(['doctor', '--fast']);
    expect(u.code).toBe(2);
    expect(u.stderr.trim()).toBe("lpo doctor: unknown option '--fast' (see lpo doctor --help)");
  });
});
