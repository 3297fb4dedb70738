// Device faults (issue 13): a device lost in the middle of training stops it with DeviceLostError and leaves the
// last good checkpoint verifiable on disk; a buffer beyond the adapter's limit is a LimitError that gives the
// requested size and what to try.
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupGpu } from './helpers.js';
import { gpu } from '../src/gpu/runtime.js';
import { LimitError } from '../src/gpu/errors.js';
import { Tensor } from '../src/tensor/tensor.js';
import { CheckpointStore } from '../src/io/checkpoint/index.js';
import { runChild } from './sigkill-driver.js';

const work = fs.mkdtempSync(path.join(tmpdir(), 'lpo-device-'));
beforeAll(setupGpu);
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('device faults', () => {
  it('an allocation beyond maxBufferSize is a LimitError with the size and a hint, and takes nothing', async () => {
    const max = gpu().device.limits.maxBufferSize;
    const before = gpu().pool.stats();
    const n = Math.floor(max / 4) + 1024;
    let err: unknown;
    try {
      Tensor.empty([n]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LimitError);
    expect((err as Error).message).toContain(`${4 * n} bytes`);
    expect((err as Error).message).toMatch(/exceeds the adapter's maxBufferSize \d+ .*; try a smaller batch or micro-batch, gradient checkpointing, or f16 weights/);
    expect(gpu().pool.stats().inUseBytes).toBe(before.inUseBytes);
  });

  it('a device lost during training: DeviceLostError, and the last checkpoint on disk verifies', async () => {
    const out = path.join(work, 'lost');
    const r = await runChild(out, null, 0, ['--destroy-device-after', '2']);
    expect(r.code, r.stderr.slice(-2000)).toBe(1);
    expect(r.lines).toContain('ITER 2');
    expect(r.lines[r.lines.length - 1]).toMatch(/^ERROR DeviceLostError: GPU device lost \(destroyed.*\); restart the process$/);
    const store = new CheckpointStore(path.join(out, 'checkpoints'));
    const bad: string[] = [];
    const latest = store.latest((d) => bad.push(d));
    expect(bad).toEqual([]);
    expect(latest?.step).toBe(2);
    expect(Object.keys(latest!.manifest.files).sort()).toEqual(['lora.safetensors', 'optimizer.safetensors', 'state.json']);
  }, 600_000);
});
