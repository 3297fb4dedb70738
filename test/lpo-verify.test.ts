// `lpo verify-reference` runners of the LPO step (section lpo) and the train cases lpo_lora and unet_full,
// on the golden fixture: every row they produce passes at the manifest's tolerances.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { setupGpu } from './helpers.js';
import { SECTION_RUNNERS } from '../src/verify/registry.js';
import { formatReport, verifyReference } from '../src/verify/run.js';

const ROOT = resolve(__dirname, '..');
const GOLDEN = [join(ROOT, 'test/fixtures/golden'), resolve(ROOT, '../shared/golden')].find((d) => existsSync(join(d, 'lpo/cases.json')))!;

beforeAll(async () => {
  await setupGpu();
});

describe('verify-reference: lpo section', () => {
  it('every lpo output is computed and passes', async () => {
    const rep = await verifyReference(GOLDEN, SECTION_RUNNERS, { only: ['lpo'], rethrow: true });
    console.log(formatReport(rep));
    expect(rep.failed).toBe(0);
    expect(rep.rows.filter((r) => r.status === "SKIPPED" && !/^(lrm_scores|select\.model\.)/.test(r.name))).toEqual([]);
    expect(rep.passed).toBeGreaterThan(40);
  });
});

describe('verify-reference: train cases unet_full and lpo_lora', () => {
  it('every output of the two cases is computed and passes', async () => {
    const rep = await verifyReference(GOLDEN, SECTION_RUNNERS, { only: ['train'], rethrow: true });
    const mine = rep.rows.filter((r) => /^(unet_full\.|grad\.unet\.|lpo_lora\.|grad\.lora\.|\(case (unet_full|lpo_lora)\))/.test(r.name));
    console.log(formatReport({ ...rep, rows: mine.filter((r) => !/^grad\.(unet|lora)\./.test(r.name) || r.status !== 'PASS') }));
    const worst = (p: RegExp) => Math.max(...mine.filter((r) => p.test(r.name)).map((r) => r.value ?? Infinity));
    console.log(`grad.unet.* (${mine.filter((r) => r.name.startsWith('grad.unet.')).length}) worst relL2 ${worst(/^grad\.unet\./).toExponential(2)}; grad.lora.* (${mine.filter((r) => r.name.startsWith('grad.lora.')).length}) worst relL2 ${worst(/^grad\.lora\./).toExponential(2)}`);
    expect(mine.filter((r) => r.status !== 'PASS')).toEqual([]);
    expect(mine.filter((r) => r.name.startsWith('grad.unet.')).length).toBe(208);
    expect(mine.filter((r) => r.name.startsWith('grad.lora.')).length).toBe(64);
  });
});
