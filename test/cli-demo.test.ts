// `lpo demo` (and `npm run demo`) runs doctor for now, with a note; the top-level usage and exit codes of `lpo`.
import { beforeAll, describe, expect, it } from 'vitest';
import { buildCli, lpo, NO_DRIVER } from './cli.js';

beforeAll(buildCli);

describe('lpo demo', () => {
  it('says it runs doctor for now, then verifies the matmul (exit 0)', async () => {
    const r = await lpo(['demo']);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(/^note: `lpo demo` runs `lpo doctor`/);
    expect(r.stdout).toMatch(/relL2 vs float64 \S+ OK$/m);
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
