// The pair-folder format (pairs.jsonl + images + latents.safetensors): reader, writer, splits, latents, inspection
// and malformed input; plus openPairs' dispatch.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { collect, useTmpDir } from './fixtures/pairs/helpers.js';
import { ArgumentError } from '../src/errors.js';
import {
  LATENTS_FILE, PairDataError, PairFolderWriter, formatPairStats, inspectPairs, memoryPairs, openPairFolder, openPairs, writePairFolder,
  type PairToWrite,
} from '../src/io/pairs/index.js';
import { loadModelImage } from '../src/io/pairs/image.js';
import { FOLDER_LATENTS, FOLDER_ROWS, encodeFixtureImage, latentValues } from './fixtures/pairs/spec.js';

const FIXTURE = path.join(__dirname, 'fixtures/pairs/folder');
const tmpDir = useTmpDir('pairs-folder-');

let variants = 0;
/** A copy of the fixture folder whose pairs.jsonl is `lines`. */
function variant(lines: (string | object)[]): string {
  const dir = path.join(tmpDir(), `v${variants++}`);
  fs.cpSync(FIXTURE, dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'pairs.jsonl'), lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n'));
  return dir;
}

const row0 = FOLDER_ROWS[0].json;

describe('folder reader', () => {
  it('reads every row: fields, images at the resolution, latents (F32 and F16, a leading 1 squeezed)', async () => {
    const ds = await openPairFolder(FIXTURE, { resolution: 6 });
    expect(ds.size).toBe(5);
    const rows = await collect(ds);
    expect(rows.map((r) => r.index)).toEqual([0, 1, 2, 3, 4]);
    for (const row of rows) {
      const { json, images } = FOLDER_ROWS[row.index];
      expect(row).toMatchObject({ caption: json.caption, label0: json.label_0, label1: json.label_1, numExamplesPerPrompt: json.num_example_per_prompt, hasLabel: true });
      expect(row.split).toBe(json.split);
      for (const k of [0, 1] as const) {
        const rel = json[`image_${k}`] as string | undefined;
        expect(row[`image${k}`]).toEqual(rel ? loadModelImage(encodeFixtureImage(images[rel]), [6, 6]) : null);
        const name = json[`latent_${k}`] as string | undefined;
        if (name) expect(row[`latent${k}`]).toEqual({ shape: [4, 2, 3], data: latentValues(name, 24) });
        else expect(row[`latent${k}`]).toBeUndefined();
      }
    }
    expect(rows[0].gaps).toEqual({ aesthetic: 0.4, clip: 0.02, vqa: 0.3, differentFlag: 1 });
    expect(rows[1].gaps).toBeUndefined();
  });

  it('filters by split (a row without one is train) and counts what it filtered', async () => {
    const val = await openPairFolder(FIXTURE, { split: 'validation' });
    expect((await collect(val, { images: false })).map((r) => r.index)).toEqual([1]);
    const train = await openPairFolder(FIXTURE, { split: ['train'] });
    expect((await collect(train, { images: false })).map((r) => r.index)).toEqual([0, 3, 4]);
    expect(train.counts).toEqual({ seen: 5, yielded: 3, filtered: 2, rejected: 0, skippedBad: 0 });
    const two = await openPairFolder(FIXTURE, { split: ['validation', 'test'] });
    expect((await collect(two, { images: false })).map((r) => r.index)).toEqual([1, 2]);
  });

  it('images: false and latents: false read neither; where runs before any decoding', async () => {
    const ds = await openPairFolder(FIXTURE);
    const rows = await collect(ds, { images: false, latents: false, where: (m) => m.numExamplesPerPrompt > 1 });
    expect(rows.map((r) => [r.index, r.image0, r.latent0])).toEqual([[2, null, undefined], [3, null, undefined], [4, null, undefined]]);
    expect(ds.counts.rejected).toBe(2);
  });

  it('a seeded shuffle visits every row once, reproducibly', async () => {
    const ds = await openPairFolder(FIXTURE);
    const order = async (seed: number) => (await collect(ds, { images: false, shuffleSeed: seed })).map((r) => r.index);
    const a = await order(3);
    expect([...a].sort()).toEqual([0, 1, 2, 3, 4]);
    expect(await order(3)).toEqual(a);
    const seen = new Set<string>();
    for (let s = 0; s < 6; s++) seen.add((await order(s)).join());
    expect(seen.size).toBeGreaterThan(1);
  });

  it('gapSign image0-image1 flips the gaps of rows that image_1 wins', async () => {
    const dir = variant([{ ...row0, label_0: 0, label_1: 1 }]);
    const [r] = await collect(await openPairFolder(dir, { gapSign: 'image0-image1' }), { images: false });
    expect(r.gaps).toEqual({ aesthetic: -0.4, clip: -0.02, vqa: -0.3, differentFlag: 1 });
  });
});

describe('folder reader: malformed input', () => {
  const { image_0: _i0, image_1: _i1, ...noImages } = row0;
  it.each([
    ['a bad JSON line', ['{"caption": "x",'], /row 1 \(line 3\): not a JSON object: /],
    ['a JSON list', ['[1, 2]'], /row 1 \(line 3\): not a JSON object \(a list\)/],
    ['a missing image file', [{ ...row0, image_1: 'images/missing.png' }], /row 1 \(line 3\): image_1 "images\/missing\.png": no such file/],
    ['an undecodable image', [{ ...row0, image_0: 'pairs.jsonl' }], /row 1 \(line 3\): image_0 "pairs\.jsonl": not a JPEG or PNG/],
    ['a wrong-sized latent', [{ ...row0, latent_0: 'wrong' }], /latent_0: tensor "wrong" has shape \[4, 3, 3\]; the dataset's latents are \[4, 2, 3\]/],
    ['an unknown latent name', [{ ...row0, latent_1: 'nope' }], /latent_1: latents\.safetensors has no tensor "nope"/],
    ['no image and no latent', [noImages], /row 1 \(line 3\): has neither image_0 nor latent_0/],
    ['label_0 = 1.5', [{ ...row0, label_0: 1.5 }], /labels 1\.5\/0 are not a preference/],
    ['labels as strings', [{ ...row0, label_0: '1' }], /label_0 is "1", not a finite number/],
    ['num_example_per_prompt = 0', [{ ...row0, num_example_per_prompt: 0 }], /num_example_per_prompt = 0; expected an integer ≥ 1/],
    ['num_example_per_prompt = 1.5', [{ ...row0, num_example_per_prompt: 1.5 }], /num_example_per_prompt = 1\.5/],
    ['an unknown split', [{ ...row0, split: 'dev' }], /split is "dev"; expected one of train, validation, test/],
    ['a caption that is not a string', [{ ...row0, caption: 7 }], /caption is 7, not a string/],
    ['a different_flag of 2', [{ ...row0, different_flag: 2 }], /different_flag = 2; expected 0 or 1/],
  ])('%s: a typed error naming the file, row and line; skipBad skips it', async (_, bad, message) => {
    // Row 0 good; the bad row is row 1 on line 3 (after a blank line); row 2 good.
    const dir = variant([FOLDER_ROWS[4].json, '', ...(bad as (string | object)[]), FOLDER_ROWS[0].json]);
    const err = await collect(await openPairFolder(dir, { resolution: 4 })).catch((e) => e);
    expect(err).toBeInstanceOf(PairDataError);
    expect(err.file).toBe(path.join(dir, 'pairs.jsonl'));
    expect(err.row).toBe(1);
    expect(err.message).toMatch(message);
    const ds = await openPairFolder(dir, { resolution: 4, skipBad: true });
    expect((await collect(ds)).map((r) => r.index)).toEqual([0, 2]);
    expect(ds.counts.skippedBad).toBe(1);
  });

  it('latentShape pins the expected latent shape', async () => {
    const ds = await openPairFolder(FIXTURE, { latentShape: [4, 4, 4] });
    await expect(collect(ds, { images: false })).rejects.toThrow(/row 3 \(line 5\): latent_0: tensor "000003_0" has shape \[4, 2, 3\]; the dataset's latents are \[4, 4, 4\]/);
    await expect(openPairFolder(FIXTURE, { latentShape: [4, 0, 2] })).rejects.toThrow(ArgumentError);
  });

  it('file-level problems stop the pass even with skipBad: no pairs.jsonl, a corrupt or absent latents file', async () => {
    await expect(openPairFolder(tmpDir())).rejects.toThrow(/pairs\.jsonl': no pairs\.jsonl \(is this a pair folder\?\)/);
    const corrupt = variant([FOLDER_ROWS[3].json]);
    fs.writeFileSync(path.join(corrupt, LATENTS_FILE), Buffer.from([200, 0, 0, 0, 0, 0, 0, 0, 123]));
    const err = await collect(await openPairFolder(corrupt, { skipBad: true })).catch((e) => e);
    expect(err).toBeInstanceOf(PairDataError);
    expect(err.row).toBeNull();
    expect(err.message).toMatch(/latents\.safetensors': .*header length 200 runs past the end/);
    const absent = variant([FOLDER_ROWS[3].json]);
    fs.rmSync(path.join(absent, LATENTS_FILE));
    await expect(collect(await openPairFolder(absent))).rejects.toThrow(/row 0 \(line 1\): latent_0 names tensor "000003_0" but the folder has no latents\.safetensors/);
  });
});

describe('folder writer', () => {
  const img = (seed: number) => {
    // Values on the 8-bit grid (b/127.5 − 1), so the PNG round trip is exact up to f32 rounding.
    const data = Float32Array.from({ length: 3 * 4 * 4 }, (_, i) => ((i * 37 + seed * 11) % 256) / 127.5 - 1);
    return { data, height: 4, width: 4 };
  };
  const lat = (v: number) => ({ data: Float32Array.from({ length: 16 }, (_, i) => v + i / 8), shape: [4, 2, 2] });

  it('round-trips rows: float images as PNG, encoded bytes as is, latents, gaps and splits', async () => {
    const jpg = encodeFixtureImage({ width: 9, height: 7, seed: 3, format: 'jpg' });
    const pairs: PairToWrite[] = [
      { caption: 'one', image0: img(1), image1: img(2), label0: 1, label1: 0, numExamplesPerPrompt: 2, split: 'train', gaps: { aesthetic: 0.1, clip: 0.2, vqa: 0.3, differentFlag: 1 } },
      { caption: 'two', image0: jpg, image1: img(3), latent0: lat(1), latent1: lat(2), label0: 0.5, label1: 0.5, numExamplesPerPrompt: 2, split: 'validation' },
      { caption: 'three', latent0: lat(3), latent1: lat(4), label0: 0, label1: 1, numExamplesPerPrompt: 1, hasLabel: true },
    ];
    const dir = path.join(tmpDir(), 'written');
    expect(await writePairFolder(dir, pairs)).toEqual({ dir, rows: 3 });
    expect(fs.readdirSync(path.join(dir, 'images')).sort()).toEqual(['000000_0.png', '000000_1.png', '000001_0.jpg', '000001_1.png']);
    const rows = await collect(await openPairFolder(dir, { resolution: 4 }));
    expect(rows).toHaveLength(3);
    expect(rows[0]).toMatchObject({ caption: 'one', label0: 1, numExamplesPerPrompt: 2, split: 'train', gaps: pairs[0].gaps });
    expect(Math.max(...rows[0].image0!.map((v, i) => Math.abs(v - img(1).data[i])))).toBeLessThan(1e-6);
    expect(rows[1].image0).toEqual(loadModelImage(jpg, [4, 4]));
    expect(rows[1].latent1).toEqual(lat(2));
    expect(rows[2]).toMatchObject({ image0: null, image1: null, latent0: lat(3) });
    expect(rows[2].split).toBeUndefined();
  });

  it('rejects a row the reader would reject, writing nothing for it; refuses to overwrite; abort publishes nothing', async () => {
    const dir = path.join(tmpDir(), 'rejects');
    const w = await PairFolderWriter.create(dir);
    await expect(w.add({ caption: 'x', image0: img(1), image1: img(2), label0: 2, label1: 0, numExamplesPerPrompt: 1 })).rejects.toThrow(
      /pair 0 cannot be written: .*labels 2\/0/,
    );
    await expect(w.add({ caption: 'x', image0: img(1), label0: 1, label1: 0, numExamplesPerPrompt: 1 })).rejects.toThrow(/pair 0: needs image1 or latent1/);
    await expect(w.add({ caption: 'x', image0: { ...img(1), width: 5 }, image1: img(2), label0: 1, label1: 0, numExamplesPerPrompt: 1 })).rejects.toThrow(
      /48 values for a \[3, 4, 5\] image/,
    );
    await expect(w.add({ caption: 'x', image0: Uint8Array.from([1, 2, 3]), image1: img(2), label0: 1, label1: 0, numExamplesPerPrompt: 1 })).rejects.toThrow(
      /neither PNG nor JPEG/,
    );
    expect(fs.readdirSync(path.join(dir, 'images'))).toEqual([]);
    await w.add({ caption: 'ok', image0: img(1), image1: img(2), label0: 1, label1: 0, numExamplesPerPrompt: 1 });
    await w.close();
    await expect(PairFolderWriter.create(dir)).rejects.toThrow(ArgumentError);
    const bad = (async function* () {
      yield { caption: 'fine', latent0: lat(1), latent1: lat(2), label0: 1, label1: 0, numExamplesPerPrompt: 1 } as PairToWrite;
      yield { caption: 'bad', latent0: lat(1), latent1: lat(2), label0: 1, label1: 0, numExamplesPerPrompt: 0 } as PairToWrite;
    })();
    const dir2 = path.join(tmpDir(), 'aborted');
    await expect(writePairFolder(dir2, bad)).rejects.toThrow(/num_example_per_prompt = 0/);
    expect(fs.existsSync(path.join(dir2, 'pairs.jsonl'))).toBe(false);
    expect(fs.existsSync(path.join(dir2, 'pairs.jsonl.tmp'))).toBe(false);
  });
});

describe('inspecting and opening datasets', () => {
  it('inspectPairs counts pairs, ties, splits, prompts and gaps without decoding', async () => {
    const s = await inspectPairs(await openPairFolder(FIXTURE));
    expect(s).toMatchObject({ pairs: 5, winLose: 4, ties: 1, bySplit: { train: 3, validation: 1, test: 1 }, prompts: 5, withGaps: 1 });
    const text = formatPairStats(s);
    expect(text).toMatch(/5 pairs over 5 prompts \(4 win-lose, 1 ties = 20\.0%\)/);
    expect(text).toMatch(/splits: train 3, validation 1, test 1/);
  });

  it('openPairs opens a folder, a parquet file or a folder of shards, and says what it cannot open', async () => {
    expect((await openPairs(FIXTURE)).size).toBe(5);
    expect((await openPairs(path.join(__dirname, 'fixtures/pairs/pickapic-mini.parquet'))).size).toBe(6);
    await expect(openPairs(path.join(tmpDir(), 'missing'))).rejects.toThrow(/cannot open: ENOENT/);
    const txt = path.join(tmpDir(), 'x.txt');
    fs.writeFileSync(txt, 'hello');
    await expect(openPairs(txt)).rejects.toThrow(/not a pair dataset/);
    await expect(openPairs(FIXTURE, { gapsCsv: 'g.csv' })).rejects.toThrow(ArgumentError);
    await expect(openPairs(path.join(__dirname, 'fixtures/pairs/pickapic-mini.parquet'), { split: 'test' })).rejects.toThrow(ArgumentError);
  });

  it('memoryPairs checks rows like a file and goes through the same filters', async () => {
    const ds = memoryPairs(
      [
        { caption: 'a', label0: 1, label1: 0, numExamplesPerPrompt: 1, image0: new Float32Array(12), image1: new Float32Array(12) },
        { caption: 'b', label0: 1, label1: 1, numExamplesPerPrompt: 1 },
        { caption: 'c', label0: 1, label1: 0, numExamplesPerPrompt: 1, hasLabel: false },
      ],
      { resolution: 2, skipBad: true },
    );
    expect((await collect(ds)).map((r) => r.caption)).toEqual(['a']);
    expect(ds.counts).toMatchObject({ seen: 3, yielded: 1, filtered: 1, skippedBad: 1 });
    expect(() => memoryPairs([{ caption: 'a', label0: 1, label1: 0, numExamplesPerPrompt: 1, image0: new Float32Array(5) }], { resolution: 2 })).toThrow(ArgumentError);
  });
});

// Keep the fixture's latent table honest: the test above assumes every fixture latent but 'wrong' is [4, 2, 3].
it('fixture latents are as the tests assume', () => {
  expect(Object.entries(FOLDER_LATENTS).filter(([n]) => n !== 'wrong').every(([, s]) => s.slice(-3).join() === '4,2,3')).toBe(true);
});
