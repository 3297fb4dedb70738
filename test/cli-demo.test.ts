// `lpo demo` (and `npm run demo`) from the built CLI: the smoke run end to end (the library's run is tested in
// test/demo.test.ts), its options checked before any work, and the top-level usage and exit codes of `lpo`.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCli, lpo, NO_DRIVER } from './cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'lpo-cli-demo-'));
beforeAll(buildCli);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('lpo demo', () => {
  it('--smoke runs every phase, prints the summary table and writes the report (exit 0)', async () => {
    const out = join(tmp, 'out');
    const r = await lpo(['demo', '--smoke', '--prompts', '2', '--seeds', '2', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^base +\d/m);
    expect(r.stdout).toMatch(/^best-of-4 +\d/m);
    expect(r.stdout).toMatch(/750–999/);
    expect(r.stderr).toMatch(/^lpo \d+\/\d+/m); // a progress line of the LPO phase
    for (const f of ['report.html', 'results.json', 'phases.json', 'samples/index.json']) expect(existsSync(join(out, f)), f).toBe(true);
  });

  it('bad options are usage errors before any work (exit 2)', async () => {
    const r = await lpo(['demo', '--seeds', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^lpo demo: .*seeds/m);
    const m = await lpo(['demo', '--mpcf', '7']);
    expect(m.code).toBe(2);
  });

  it('without any Vulkan driver: one line from `lpo demo`, exit 1', async () => {
    const r = await lpo(['demo'], NO_DRIVER);
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('lpo demo:'))).toEqual([expect.stringMatching(/no WebGPU adapter found/)]);
  });
});

describe('lpo (no subcommand)', () => {
  it('--help lists the commands and the exit codes, exit 0; `help <command>` is `<command> --help`', async () => {
    const r = await lpo(['--help']);
    expect(r.code).toBe(0);
    for (const c of ['doctor', 'demo', 'generate', 'inspect', 'verify-reference']) expect(r.stdout).toMatch(new RegExp(`^ {2}${c} +\\S`, 'm'));
    expect(r.stdout).toMatch(/exit codes: 0 ok, 1 failure, 2 usage error/);
    const h = await lpo(['help', 'inspect']);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/^usage: lpo inspect /m);
  });

  it('no command or an unknown one: usage error, exit 2', async () => {
    const none = await lpo([]);
    expect(none.code).toBe(2);
    expect(none.stdout).toMatch(/^usage: lpo <command>/);
    const bad = await lpo(['frobnicate']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toMatch(/^lpo: unknown command 'frobnicate' \(commands: doctor, demo, /);
  });
});
