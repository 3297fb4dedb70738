// MPCF (Table 1, LPO-SPEC §3) on a hand-built table whose expected decisions are written out per row, including
// every boundary value of the strict comparisons; then as a streaming filter over real readers.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { useTmpDir } from './fixtures/pairs/helpers.js';
import { ArgumentError } from '../src/errors.js';
import { memoryPairs, openParquetPairs, openPairFolder, writePairFolder, type MemoryPair, type PairGaps } from '../src/io/pairs/index.js';
import {
  MpcfError, countMpcf, formatMpcfCounts, mpcfFilter, mpcfKeeps, parseMpcfStrategy, type MpcfCounts, type MpcfStrategy,
} from '../src/lrm/mpcf.js';

const tmpDir = useTmpDir('mpcf-');

// [name, tie?, Δaes, Δclip, Δvqa, kept under strategies 1, 2, 3]
type Case = [string, boolean, number, number, number, [boolean, boolean, boolean]];
const TABLE: Case[] = [
  ['all positive', false, 0.1, 0.01, 0.01, [true, true, true]],
  ['Δaes = 0 exactly', false, 0, 0.01, 0.01, [false, true, true]],
  ['Δaes just above 0', false, 1e-12, 0.01, 0.01, [true, true, true]],
  ['Δaes = −0.5 exactly', false, -0.5, 0.01, 0.01, [false, false, true]],
  ['Δaes = −0.49', false, -0.49, 0.01, 0.01, [false, true, true]],
  ['Δaes = −0.99', false, -0.99, 0.01, 0.01, [false, false, true]],
  ['Δaes = −1 exactly', false, -1, 0.01, 0.01, [false, false, false]],
  ['Δclip = 0 exactly', false, 1, 0, 0.5, [false, false, false]],
  ['Δvqa = 0 exactly', false, 1, 0.5, 0, [false, false, false]],
  ['Δclip negative', false, 1, -0.1, 0.5, [false, false, false]],
  ['tiny positive gaps', false, 5, 1e-9, 1e-9, [true, true, true]],
  ['tie, small gaps', true, 0.1, 0.01, 0.05, [true, true, true]],
  ['tie, small negative gaps (|gap|)', true, -0.19, -0.029, -0.069, [true, true, true]],
  ['tie, aes = 0.2 exactly', true, 0.2, 0, 0, [false, false, false]],
  ['tie, aes = −0.2 exactly', true, -0.2, 0, 0, [false, false, false]],
  ['tie, clip = 0.03 exactly', true, 0, 0.03, 0, [false, false, false]],
  ['tie, clip = −0.03 exactly', true, 0, -0.03, 0, [false, false, false]],
  ['tie, vqa = 0.07 exactly', true, 0, 0, 0.07, [false, false, false]],
  ['tie, vqa just under 0.07', true, 0, 0, 0.0699999, [true, true, true]],
  ['tie, large aes gap', true, -0.5, 0.001, 0.001, [false, false, false]],
];

function pair([name, tie, aesthetic, clip, vqa]: Case, flag = true): MemoryPair {
  const gaps: PairGaps = { aesthetic, clip, vqa };
  if (flag) gaps.differentFlag = tie ? 0 : 1;
  return { caption: name, label0: tie ? 0.5 : 1, label1: tie ? 0.5 : 0, numExamplesPerPrompt: 1, gaps };
}

function expected(strategy: MpcfStrategy, cases: Case[] = TABLE): MpcfCounts {
  const c: MpcfCounts = { strategy, winLose: { kept: 0, dropped: 0 }, ties: { kept: 0, dropped: 0 } };
  for (const k of cases) {
    const keep = strategy === 'none' ? true : k[5][strategy - 1];
    const b = k[1] ? c.ties : c.winLose;
    if (keep) b.kept++;
    else b.dropped++;
  }
  return c;
}

describe('MPCF rules', () => {
  it.each([1, 2, 3] as const)('strategy %i keeps exactly the rows the table says', (s) => {
    for (const k of TABLE) {
      expect({ row: k[0], keep: mpcfKeeps({ ...pair(k), index: 0, hasLabel: true }, s) }).toEqual({ row: k[0], keep: k[5][s - 1] });
    }
  });

  it('a tie without different_flag is recognised by its labels', () => {
    for (const k of TABLE) {
      expect(mpcfKeeps({ ...pair(k, false), index: 0, hasLabel: true }, 2)).toBe(k[5][1]);
    }
  });

  it.each([1, 2, 3, 'none'] as const)('strategy %s: kept/dropped counts per category over a streamed dataset', async (s) => {
    const ds = mpcfFilter(memoryPairs(TABLE.map((k) => pair(k))), s);
    const kept: string[] = [];
    for await (const r of ds.rows()) kept.push(r.caption);
    expect(ds.mpcf).toEqual(expected(s));
    expect(kept).toEqual(TABLE.filter((k) => s === 'none' || k[5][s - 1]).map((k) => k[0]));
    expect(ds.counts).toMatchObject({ seen: TABLE.length, yielded: kept.length, rejected: TABLE.length - kept.length });
    expect(await countMpcf(memoryPairs(TABLE.map((k) => pair(k))), s)).toEqual(expected(s));
  });

  it('counts restart with each pass, and the paper\'s table shape prints', async () => {
    const ds = mpcfFilter(memoryPairs(TABLE.map((k) => pair(k))), 2);
    for (let pass = 0; pass < 2; pass++) for await (const _ of ds.rows({ images: false }));
    expect(ds.mpcf).toEqual(expected(2));
    const e = expected(2);
    expect(formatMpcfCounts(e)).toBe(
      `MPCF strategy 2: ${e.winLose.kept + e.ties.kept} pairs kept; win-lose: kept ${e.winLose.kept} of 11 (dropped ${e.winLose.dropped}); ties: kept ${e.ties.kept} of 9 (dropped ${e.ties.dropped})`,
    );
    expect(formatMpcfCounts(expected('none'))).toMatch(/^MPCF off \(none\): 20 pairs kept/);
  });

  it('rows without gaps: a clear error under 1/2/3 (even with skipBad), fine under none', async () => {
    const rows: MemoryPair[] = [pair(TABLE[0]), { caption: 'no gaps', label0: 1, label1: 0, numExamplesPerPrompt: 1 }];
    for (const s of [1, 2, 3] as const) {
      const err = await (async () => {
        for await (const _ of mpcfFilter(memoryPairs(rows, { skipBad: true }), s).rows());
      })().catch((e) => e);
      expect(err).toBeInstanceOf(MpcfError);
      expect(err.row).toBe(1);
      expect(err.message).toMatch(new RegExp(`row 1: MPCF strategy ${s} needs the aesthetic, CLIP and VQA score gaps; this row has no aesthetic_gap, clipscore_gap, vqascore_gap`));
    }
    const partial: MemoryPair = { caption: 'half', label0: 1, label1: 0, numExamplesPerPrompt: 1, gaps: { aesthetic: 1, clip: 1 } };
    expect(() => mpcfKeeps({ ...partial, index: 4, hasLabel: true }, 2)).toThrow(/row 4: .*has no vqascore_gap/);
    expect((await countMpcf(memoryPairs(rows), 'none')).winLose.kept).toBe(2);
  });

  it('parses the CLI value', () => {
    expect(['1', '2', ' 3 ', 'none', 'NONE', 2].map(parseMpcfStrategy)).toEqual([1, 2, 3, 'none', 'none', 2]);
    for (const bad of ['0', '4', '', 'two', '2.0']) expect(() => parseMpcfStrategy(bad)).toThrow(ArgumentError);
    expect(() => mpcfFilter(memoryPairs([]), 5 as never)).toThrow(ArgumentError);
  });
});

describe('MPCF over the readers', () => {
  it('the Pick-a-Pic fixture with the authors\' side CSV: counts per strategy', async () => {
    const ds = await openParquetPairs(path.join(__dirname, 'fixtures/pairs/pickapic-mini.parquet'), {
      gapsCsv: path.join(__dirname, 'fixtures/pairs/pickapic-mini-gaps.csv'),
    });
    // Labelled rows: 0 (0.5, .01, .2), 1 (−0.3, .02, .05), 4 (−0.8, .1, .1) win-lose; 2 (.1, −.01, .05), 5 (.3, 0, 0) ties.
    expect(await countMpcf(ds, 1)).toEqual({ strategy: 1, winLose: { kept: 1, dropped: 2 }, ties: { kept: 1, dropped: 1 } });
    expect(await countMpcf(ds, 2)).toEqual({ strategy: 2, winLose: { kept: 2, dropped: 1 }, ties: { kept: 1, dropped: 1 } });
    expect(await countMpcf(ds, 3)).toEqual({ strategy: 3, winLose: { kept: 3, dropped: 0 }, ties: { kept: 1, dropped: 1 } });
    const f = mpcfFilter(ds, 2);
    const idx: number[] = [];
    for await (const r of f.rows({ images: false })) idx.push(r.index);
    expect(idx).toEqual([0, 1, 2]);
    expect([f.size, f.resolution, f.source]).toEqual([ds.size, ds.resolution, ds.source]);
    // Without the CSV the parquet has no gaps: MPCF refuses rather than guessing.
    await expect(countMpcf(await openParquetPairs(path.join(__dirname, 'fixtures/pairs/pickapic-mini.parquet')), 2)).rejects.toThrow(MpcfError);
  });

  it('filters before decoding: a dropped pair\'s missing image is never read', async () => {
    const dir = path.join(tmpDir(), 'lazy');
    const img = { data: new Float32Array(3 * 2 * 2), height: 2, width: 2 };
    await writePairFolder(dir, [
      { ...pair(TABLE[0]), image0: img, image1: img },
      { ...pair(TABLE[3]), image0: img, image1: img }, // dropped by strategy 2
    ]);
    fs.rmSync(path.join(dir, 'images/000001_0.png'));
    const kept: number[] = [];
    for await (const r of mpcfFilter(await openPairFolder(dir, { resolution: 2 }), 2).rows()) kept.push(r.index);
    expect(kept).toEqual([0]);
    await expect(
      (async () => {
        for await (const _ of mpcfFilter(await openPairFolder(dir, { resolution: 2 }), 3).rows());
      })(),
    ).rejects.toThrow(/row 1 \(line 2\): image_0 "images\/000001_0\.png": no such file/);
  });
});
