// The device check (scripts/gpu-check.sh, docs/DEVICE-CHECK.md) cannot run without a lent GPU, and its local
// rehearsal (`bash scripts/gpu-check.sh dryrun`: pack, copy, unpack, run on lavapipe) takes minutes of CPU and
// the network, so it is not a CI test. What CI checks here is what would waste a device run if it broke: the
// script parses, every file it runs exists, and the ratio table (scripts/f16-ratios.py) computes fractions,
// verdicts and 'missing' rows right, and still writes its report when a stage left no JSON behind.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const SCRIPT = 'scripts/gpu-check.sh';
const hasPython = spawnSync('python3', ['--version']).status === 0;

describe('scripts/gpu-check.sh', () => {
  it('parses (bash -n) and every test, bench and script it runs exists', () => {
    const r = spawnSync('bash', ['-n', SCRIPT], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const text = fs.readFileSync(SCRIPT, 'utf8');
    const named = [...new Set(text.match(/\b(?:test|bench|scripts)\/[\w.-]+\.(?:ts|py|mjs|sh)\b/g) ?? [])];
    expect(named.length).toBeGreaterThan(10);
    const absent = named.filter((p) => !fs.existsSync(p));
    expect(absent, `named in ${SCRIPT} but absent`).toEqual([]);
    // The modes docs/DEVICE-CHECK.md promises.
    for (const branch of ['[ "$mode" = prepare ]', '[ "$mode" = dryrun ]', '[ "$profile" = f16 ]']) expect(text).toContain(branch);
  });
});

describe.skipIf(!hasPython)('scripts/f16-ratios.py', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'f16-ratios-'));
  const run = (ours: string, peer: string) => {
    const out = path.join(dir, 'report.json');
    const r = spawnSync('python3', ['scripts/f16-ratios.py', ours, peer, out], { encoding: 'utf8' });
    return { r, report: JSON.parse(fs.readFileSync(out, 'utf8')) as { rows: Record<string, unknown>[]; problems: string[]; counts: Record<string, number> } };
  };

  it('fraction = peer ms / our ms against the target: PASS, MISS, info and missing rows', () => {
    const ours = path.join(dir, 'ours.json');
    const peer = path.join(dir, 'torch.json');
    fs.writeFileSync(ours, JSON.stringify({ adapter: 'test', rows: [
      { key: 'mm.4096x320x1280.f16', ms: 2, impl: 'sm16x16x16/w4x2' }, // peer 1 ms: 0.5 ≥ 0.40 PASS
      { key: 'mm.4096x1280x320.f16', ms: 4 }, // peer 1 ms: 0.25 < 0.40 MISS
      { key: 'conv3x3.64x64x320.b2.f16', ms: 1 }, // against fp16 (target) and TF32 (info)
      { key: 'sdpa.4096.d40h8.f16.fwd', ms: 0 }, // a zero time is not a measurement: missing
    ] }));
    fs.writeFileSync(peer, JSON.stringify({
      device: 'H', 'mm.4096x320x1280.f16': { ms: 1 }, 'mm.4096x1280x320.f16': { ms: 1 },
      'conv3x3.64x64x320.b2.f16': { ms: 0.3 }, 'conv3x3.64x64x320.b2.tf32': { ms: 0.6 }, 'sdpa.4096.d40h8.f16.fwd': { ms: 1 },
    }));
    const { r, report } = run(ours, peer);
    expect(r.status, r.stderr).toBe(0);
    const row = (ours: string, peerKey: string) => report.rows.find((x) => x.ours === ours && x.peer === peerKey)!;
    expect(row('mm.4096x320x1280.f16', 'mm.4096x320x1280.f16')).toMatchObject({ fraction: 0.5, status: 'PASS', tile: 'sm16x16x16/w4x2' });
    expect(row('mm.4096x1280x320.f16', 'mm.4096x1280x320.f16')).toMatchObject({ fraction: 0.25, status: 'MISS' });
    expect(row('conv3x3.64x64x320.b2.f16', 'conv3x3.64x64x320.b2.f16')).toMatchObject({ status: 'MISS', target: 0.35 });
    expect(row('conv3x3.64x64x320.b2.f16', 'conv3x3.64x64x320.b2.tf32')).toMatchObject({ fraction: 0.6, status: 'info' });
    expect(row('sdpa.4096.d40h8.f16.fwd', 'sdpa.4096.d40h8.f16.fwd').status).toBe('missing');
    expect(report.problems).toEqual([]);
    expect(r.stdout).toMatch(/acceptance rows: 1 PASS, 2 MISS, 9 missing \(of 12 with a target\)/);
  });

  it('a stage that left no JSON (or broken JSON): every row missing, the problem named, exit 0', () => {
    const broken = path.join(dir, 'broken.json');
    fs.writeFileSync(broken, '{"rows": [');
    const { r, report } = run(broken, path.join(dir, 'absent.json'));
    expect(r.status, r.stderr).toBe(0);
    expect(report.rows.every((x) => x.status === 'missing')).toBe(true);
    expect(report.problems).toHaveLength(2);
    expect(report.problems.join('\n')).toMatch(/ours .*broken\.json: JSONDecodeError[\s\S]*peer .*absent\.json: FileNotFoundError/);
  });
});
