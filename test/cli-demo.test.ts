// End to end: `lpo demo` verifies a matmul on the adapter, and with no Vulkan driver it fails cleanly.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { runNode } from './helpers.js';
import { beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'dist/cli.js');

async function demo(env: NodeJS.ProcessEnv = {}) {
  return runNode([CLI, 'demo'], { cwd: ROOT, timeoutMs: 300_000, env: { ...process.env, ...env } });
}

beforeAll(() => {
  execFileSync(process.execPath, ['build.mjs'], { cwd: ROOT, stdio: 'pipe' });
});

describe('lpo demo', () => {
  it('prints the adapter and a matmul verified against float64', async () => {
    const r = await demo();
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/adapter: /);
    expect(r.stdout).toMatch(/OK/);
  });

  it('without any Vulkan driver: one clear line naming what to install, exit 1, no JS stack trace', async () => {
    const r = await demo({ VK_DRIVER_FILES: '/nonexistent/icd.json', VK_ICD_FILENAMES: '/nonexistent/icd.json' });
    expect(r.code).toBe(1);
    const ours = r.stderr.split('\n').filter((l) => l.startsWith('lpo demo:'));
    expect(ours).toHaveLength(1);
    expect(ours[0]).toMatch(/no WebGPU adapter found/);
    expect(ours[0]).toMatch(/mesa-vulkan-drivers libvulkan1/);
    // Dawn's own native log lines may precede it, but no JavaScript stack frame may appear.
    expect(r.stderr).not.toMatch(/^\s+at .*\.(js|mjs|ts):\d+/m);
  });
});
