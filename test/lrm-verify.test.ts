// The verify-reference runners of the LRM: section `lrm` and case `lrm` of section `train`, on the golden folder.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import '../src/io/pretrained.js';
import { verifyReference, formatReport } from '../src/verify/run.js';
import { SECTION_RUNNERS } from '../src/verify/registry.js';
import { setupGpu } from './helpers.js';

const ROOT = resolve(__dirname, '..');
const GOLDEN = [join(ROOT, 'test/fixtures/golden'), resolve(ROOT, '../shared/golden')].find((d) => existsSync(join(d, 'train/config.json')))!;

beforeAll(async () => {
  await setupGpu();
});

describe('verify-reference: LRM', () => {
  it('section lrm: every output (w = 7.5 and w = 1), the indices and the token ids pass', async () => {
    const rep = await verifyReference(GOLDEN, SECTION_RUNNERS, { only: ['lrm'] });
    console.log(formatReport(rep));
    const rows = rep.rows.filter((r) => r.section === 'lrm');
    expect(rows.filter((r) => r.status !== 'PASS')).toEqual([]);
    // 38 manifest outputs + 3 checks (indices, prompt ids, null ids)
    expect(rows.length).toBeGreaterThanOrEqual(41);
    expect(rows.some((r) => r.name === 'w1.grad.visual_projection.weight')).toBe(true);
  });

  it('section train, case lrm: gradients of every truncated-U-Net and text-encoder parameter pass; other cases are listed', async () => {
    const rep = await verifyReference(GOLDEN, SECTION_RUNNERS, { only: ['train'] });
    const rows = rep.rows.filter((r) => r.section === 'train');
    const lrm = rows.filter((r) => /^(grad\.lrm\.|lrm\.|up-path|truncated|\(case lrm\))/.test(r.name));
    console.log(formatReport({ ...rep, rows: lrm }));
    expect(lrm.filter((r) => r.status !== 'PASS')).toEqual([]);
    expect(lrm.filter((r) => r.name.startsWith('grad.lrm.unet.')).length).toBe(102);
    expect(lrm.some((r) => r.name.endsWith('token_embedding.weight.rows'))).toBe(true);
  });
});
