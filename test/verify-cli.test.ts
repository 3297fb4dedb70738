// End-to-end: the built CLI's `verify-reference` on the golden folder, and on broken copies of it.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runNode } from './helpers.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(__dirname, '..');
const GOLDEN = [join(ROOT, 'test/fixtures/golden'), resolve(ROOT, '../shared/golden')].find((d) => existsSync(join(d, 'manifest.json')))!;
const tmp: string[] = [];

async function cli(...args: string[]) {
  const r = await runNode([join(ROOT, 'dist/cli.js'), ...args], { cwd: ROOT, timeoutMs: 900_000});
  // Dawn prints adapter warnings on stderr; they are not ours.
  const errLines = r.stderr.split('\n').filter((l) => l.trim() && !l.startsWith('Warning:'));
  return { code: r.code, stdout: r.stdout, errLines };
}

/** A scratch copy of the golden folder (about 8 MB) to break. */
function brokenCopy(): string {
  const d = mkdtempSync(join(tmpdir(), 'lpo-verify-'));
  tmp.push(d);
  cpSync(GOLDEN, d, { recursive: true });
  return d;
}

beforeAll(() => {
  execFileSync(process.execPath, [join(ROOT, 'build.mjs')], { cwd: ROOT, stdio: 'pipe' });
});

afterAll(() => {
  for (const d of tmp) rmSync(d, { recursive: true, force: true });
});

describe('lpo verify-reference (built CLI)', () => {
  it('passes on the golden folder: exit 0, every section has a runner (lpo, lrm and train included), no FAIL', async () => {
    const r = await cli('verify-reference', GOLDEN, '--quiet');
    expect(r.stdout).toMatch(/ddim\s+step\.9\.prev_sample\s+relL2\s+\S+\s+< 1e-5\s+PASS/);
    expect(r.stdout).toMatch(/ddim\s+alphas_cumprod\s+max rel err/);
    // Sections whose golden folder exists run (a section without a runner would be one '(all)' row 'not supported yet').
    const sections = ['tokenizer', 'text_encoder', 'unet', 'vae', 'pipeline', 'lpo', 'lrm', 'train'].filter((s) => existsSync(join(GOLDEN, s)));
    for (const s of sections) expect(r.stdout).toMatch(new RegExp(`^${s}\\s+\\S.*PASS`, 'm'));
    expect(r.stdout).not.toMatch(/not supported yet/);
    expect(r.stdout).toMatch(/^lpo\s+loss_model\.value\s+relL2\s+\S+\s+< 1e-3\s+PASS/m); // src/verify/lpo.ts
    if (sections.includes('lrm')) expect(r.stdout).toMatch(/^lrm\s+scores\s+relL2\s+\S+\s+< 1e-4\s+PASS/m); // src/verify/lrm.ts
    expect(r.stdout).toMatch(/^\d+ passed, 0 failed/m);
    expect(r.stdout).not.toMatch(/FAIL/);
    expect(r.code).toBe(0);
  });

  it('a corrupted file: one clear error line naming it, exit 1', async () => {
    const d = brokenCopy();
    const p = join(d, 'ddim/outputs.safetensors');
    const b = readFileSync(p);
    b[b.length - 5] ^= 0xff;
    writeFileSync(p, b);
    const r = await cli('verify-reference', d);
    expect(r.code).toBe(1);
    expect(r.errLines).toHaveLength(1);
    expect(r.errLines[0]).toMatch(/^lpo verify-reference: .*ddim\/outputs\.safetensors.*sha256.*corrupted/);
  });

  it('a missing file: one clear error line naming it, exit 1', async () => {
    const d = brokenCopy();
    unlinkSync(join(d, 'ddim/cases.json'));
    const r = await cli('verify-reference', d);
    expect(r.code).toBe(1);
    expect(r.errLines).toHaveLength(1);
    expect(r.errLines[0]).toMatch(/^lpo verify-reference: .*ddim\/cases\.json is missing/);
  });

  it('a missing folder or manifest, and bad usage: one line; exit 2 for usage, 1 for a folder without a manifest', async () => {
    const r1 = await cli('verify-reference', join(tmpdir(), 'no-such-folder-lpo'));
    expect(r1.code).toBe(2);
    expect(r1.errLines).toEqual([expect.stringMatching(/^lpo verify-reference: <folder>: '.*no-such-folder-lpo' does not exist/)]);
    const r2 = await cli('verify-reference');
    expect(r2.code).toBe(2);
    expect(r2.errLines).toEqual([expect.stringMatching(/^lpo verify-reference: missing <folder> \(the reference folder/)]);
    const r3 = await cli('verify-reference', GOLDEN, '--only');
    expect(r3.code).toBe(2);
    expect(r3.errLines).toEqual([expect.stringMatching(/^lpo verify-reference: --only needs a value/)]);
    const r4 = await cli('verify-reference', tmpdir());
    expect(r4.code).toBe(1);
    expect(r4.errLines).toEqual([expect.stringMatching(/^lpo verify-reference: .*manifest\.json/)]);
  });

  it('a failing result makes the exit code 1 (reference values perturbed, sha256 updated in the manifest)', async () => {
    const d = brokenCopy();
    // Overwrite one element of step.0.prev_sample and re-register the file's hash, as a wrong reference would.
    const p = join(d, 'ddim/outputs.safetensors');
    const b = readFileSync(p);
    const n = Number(b.readBigUInt64LE(0));
    const header = JSON.parse(b.subarray(8, 8 + n).toString('utf8'));
    const off = 8 + n + header['step.0.prev_sample'].data_offsets[0];
    b.writeFloatLE(b.readFloatLE(off) + 1, off);
    writeFileSync(p, b);
    const m = JSON.parse(readFileSync(join(d, 'manifest.json'), 'utf8'));
    m.sections.ddim.files['ddim/outputs.safetensors'].sha256 = createHash('sha256').update(b).digest('hex');
    writeFileSync(join(d, 'manifest.json'), JSON.stringify(m));
    const r = await cli('verify-reference', d, '--only', 'ddim', '--quiet');
    expect(r.stdout).toMatch(/ddim\s+step\.0\.prev_sample\s+relL2\s+\S+\s+< 1e-5\s+FAIL/);
    expect(r.stdout).toMatch(/ddim\s+step\.1\.prev_sample\s+.*PASS/);
    expect(r.code).toBe(1);
  });
});
