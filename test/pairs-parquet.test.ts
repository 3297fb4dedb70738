// The Pick-a-Pic-style parquet reader (hyparquet), its side CSV of score gaps, and its malformed inputs.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { collect, useTmpDir } from './fixtures/pairs/helpers.js';
import { parquetMetadataAsync, asyncBufferFromFile } from 'hyparquet';
import { parquetWriteFile } from 'hyparquet-writer';
import { FileFormatError } from '../src/errors.js';
import { PairDataError, openParquetPairs, openPairs } from '../src/io/pairs/index.js';
import { loadModelImage } from '../src/io/pairs/image.js';
import { Generator } from '../src/tensor/random.js';
import { PARQUET_ROWS, encodeFixtureImage, type FixtureRow } from './fixtures/pairs/spec.js';

const FIXTURE = path.join(__dirname, 'fixtures/pairs/pickapic-mini.parquet');
const CSV = path.join(__dirname, 'fixtures/pairs/pickapic-mini-gaps.csv');
const tmpDir = useTmpDir('pairs-parquet-');

type Columns = Record<string, { data: unknown[]; type: string }>;

/** Writes the fixture's rows as parquet after `edit` changes the columns (to build malformed files). */
function writeVariant(name: string, edit: (c: Columns) => void = () => {}, rows: FixtureRow[] = PARQUET_ROWS): string {
  const cols: Columns = {
    caption: { data: rows.map((r) => r.caption), type: 'STRING' },
    jpg_0: { data: rows.map((r) => encodeFixtureImage(r.image0)), type: 'BYTE_ARRAY' },
    jpg_1: { data: rows.map((r) => encodeFixtureImage(r.image1)), type: 'BYTE_ARRAY' },
    label_0: { data: rows.map((r) => r.label0), type: 'DOUBLE' },
    label_1: { data: rows.map((r) => r.label1), type: 'DOUBLE' },
    num_example_per_prompt: { data: rows.map((r) => BigInt(r.nep)), type: 'INT64' },
    has_label: { data: rows.map((r) => r.hasLabel), type: 'BOOLEAN' },
  };
  edit(cols);
  const file = path.join(tmpDir(), name);
  parquetWriteFile({ filename: file, rowGroupSize: 2, columnData: Object.entries(cols).map(([n, c]) => ({ name: n, ...c })) as never });
  return file;
}

function writeCsv(name: string, lines: string[]): string {
  const file = path.join(tmpDir(), name);
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

const labelled = PARQUET_ROWS.map((r, i) => ({ r, i })).filter(({ r }) => r.hasLabel);

describe('parquet reader', () => {
  it('streams the labelled rows in order with their fields, images decoded and resized to the resolution', async () => {
    const ds = await openParquetPairs(FIXTURE, { resolution: 8 });
    expect(ds.size).toBe(6);
    expect(ds.resolution).toEqual([8, 8]);
    const rows = await collect(ds);
    expect(rows.map((r) => r.index)).toEqual(labelled.map(({ i }) => i));
    for (const row of rows) {
      const spec = PARQUET_ROWS[row.index];
      expect(row).toMatchObject({ caption: spec.caption, label0: spec.label0, label1: spec.label1, numExamplesPerPrompt: spec.nep, hasLabel: true });
      expect(row.gaps).toBeUndefined();
      // The exact bytes of that row, through the one image path (tested against float64 in pairs-image.test.ts).
      expect(row.image0).toEqual(loadModelImage(encodeFixtureImage(spec.image0), [8, 8]));
      expect(row.image1).toEqual(loadModelImage(encodeFixtureImage(spec.image1), [8, 8]));
      expect(row.image0!.length).toBe(3 * 8 * 8);
    }
    expect(ds.counts).toEqual({ seen: 6, yielded: 5, filtered: 1, rejected: 0, skippedBad: 0 });
  });

  it('keeps has_label = false rows when asked, and takes [height, width] resolutions', async () => {
    const ds = await openParquetPairs(FIXTURE, { resolution: [6, 10], onlyLabeled: false });
    const rows = await collect(ds);
    expect(rows).toHaveLength(6);
    expect(rows[3].hasLabel).toBe(false);
    expect(rows[4].image1).toEqual(loadModelImage(encodeFixtureImage(PARQUET_ROWS[4].image1), [6, 10])); // a PNG in jpg_1
  });

  it('attaches the side CSV\'s gaps row by row (winner − loser, different_flag)', async () => {
    const ds = await openParquetPairs(FIXTURE, { resolution: 8, gapsCsv: CSV });
    const rows = await collect(ds, { images: false });
    for (const row of rows) {
      const g = PARQUET_ROWS[row.index].gaps;
      expect(row.gaps).toEqual({ aesthetic: g.aesthetic, clip: g.clip, vqa: g.vqa, differentFlag: g.flag });
      expect(row.image0).toBeNull();
    }
  });

  it('reads gap columns, flipping image_0 − image_1 gaps to winner − loser when asked', async () => {
    const file = writeVariant('inline-gaps.parquet', (c) => {
      c.aesthetic_gap = { data: PARQUET_ROWS.map((_, i) => i + 0.5), type: 'DOUBLE' };
      c.clipscore_gap = { data: PARQUET_ROWS.map(() => 0.25), type: 'DOUBLE' };
      c.vqascore_gap = { data: PARQUET_ROWS.map(() => -0.125), type: 'DOUBLE' };
    });
    const plain = await collect(await openParquetPairs(file), { images: false });
    expect(plain[1].gaps).toEqual({ aesthetic: 1.5, clip: 0.25, vqa: -0.125 });
    const flipped = await collect(await openParquetPairs(file, { gapSign: 'image0-image1' }), { images: false });
    expect(flipped.map((r) => r.gaps!.aesthetic)).toEqual([0.5, -1.5, 2.5, 4.5, 5.5]); // row 1: image_1 wins
  });

  it('a metadata-only pass never reads the image columns (garbage there does not matter)', async () => {
    const file = writeVariant('garbage-images.parquet', (c) => {
      c.jpg_0.data = c.jpg_0.data.map(() => Uint8Array.from([1, 2, 3]));
    });
    const rows = await collect(await openParquetPairs(file), { images: false });
    expect(rows).toHaveLength(5);
  });

  it('reads a folder of shards as one dataset with global row indices, aligned with one CSV', async () => {
    const dir = path.join(tmpDir(), 'shards');
    fs.mkdirSync(dir);
    fs.copyFileSync(FIXTURE, path.join(dir, 'train-00001.parquet'));
    fs.copyFileSync(FIXTURE, path.join(dir, 'train-00000.parquet'));
    const csvLines = fs.readFileSync(CSV, 'utf8').trim().split('\n');
    const csv = writeCsv('two-shards.csv', [...csvLines, ...csvLines.slice(1)]);
    const ds = await openPairs(dir, { gapsCsv: csv, resolution: 4 });
    expect(ds.size).toBe(12);
    const rows = await collect(ds, { images: false });
    expect(rows.map((r) => r.index)).toEqual([0, 1, 2, 4, 5, 6, 7, 8, 10, 11]);
    expect(rows[7]).toMatchObject({ index: 8, caption: PARQUET_ROWS[2].caption, gaps: { differentFlag: 0 } });
  });

  it('a seeded shuffle permutes row groups and rows within them, reproducibly', async () => {
    const ds = await openParquetPairs(FIXTURE, { onlyLabeled: false });
    const order = async (seed: number) => (await collect(ds, { images: false, shuffleSeed: seed })).map((r) => r.index);
    const a = await order(1);
    expect([...a].sort()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(await order(1)).toEqual(a);
    const orders = new Set<string>();
    for (let s = 0; s < 8; s++) orders.add((await order(s)).join());
    expect(orders.size).toBeGreaterThan(1);
    // Rows of one row group stay together (groups of 2: {0,1}, {2,3}, {4,5}).
    for (let k = 0; k < 6; k += 2) expect(Math.floor(a[k] / 2)).toBe(Math.floor(a[k + 1] / 2));
  });
});

describe('parquet reader: malformed input', () => {
  it('a truncated file, random bytes or a missing file are typed errors naming the file', async () => {
    const bytes = fs.readFileSync(FIXTURE);
    for (const [name, data] of [['half.parquet', bytes.subarray(0, bytes.length >> 1)], ['no-magic.parquet', bytes.subarray(0, bytes.length - 4)], ['noise.parquet', Buffer.from('PAR1 this is not parquet at all')]] as const) {
      const file = path.join(tmpDir(), name);
      fs.writeFileSync(file, data);
      const err = await openParquetPairs(file).catch((e) => e);
      expect(err).toBeInstanceOf(PairDataError);
      expect(err).toBeInstanceOf(FileFormatError);
      expect(err.file).toBe(file);
      expect(err.row).toBeNull();
      expect(err.message).toMatch(/not a readable parquet file/);
    }
    await expect(openParquetPairs(path.join(tmpDir(), 'nope.parquet'))).rejects.toThrow(/nope\.parquet.*cannot open: ENOENT/);
  });

  it('a missing required column is named', async () => {
    const file = writeVariant('no-label1.parquet', (c) => delete (c as Partial<Columns>).label_1);
    await expect(openParquetPairs(file)).rejects.toThrow(/lacks required column\(s\) label_1 \(has: caption, jpg_0/);
  });

  it('non-image bytes in jpg_0: an error naming file, row and column; --skip-bad counts and skips it', async () => {
    const file = writeVariant('bad-jpg.parquet', (c) => {
      c.jpg_0.data[1] = new TextEncoder().encode('<html>not an image</html>');
    });
    const err = await collect(await openParquetPairs(file, { resolution: 4 })).catch((e) => e);
    expect(err).toBeInstanceOf(PairDataError);
    expect(err.message).toMatch(/bad-jpg\.parquet': row 1: jpg_0: not a JPEG or PNG/);
    const skipped: Error[] = [];
    const ds = await openParquetPairs(file, { resolution: 4, skipBad: true, onSkip: (e) => skipped.push(e) });
    expect((await collect(ds)).map((r) => r.index)).toEqual([0, 2, 4, 5]);
    expect(ds.counts.skippedBad).toBe(1);
    expect(skipped[0].message).toMatch(/row 1: jpg_0/);
  });

  it.each([
    ['label_0 = 2', (c: Columns) => { c.label_0.data[2] = 2; }, /row 2: labels 2\/0.5 are not a preference/],
    ['labels 0.6/0.6', (c: Columns) => { c.label_0.data[0] = 0.6; c.label_1.data[0] = 0.6; }, /row 0: labels 0.6\/0.6/],
    ['label_1 = −1', (c: Columns) => { c.label_1.data[4] = -1; }, /row 4: labels 1\/-1/],
    ['num_example_per_prompt = 0', (c: Columns) => { c.num_example_per_prompt.data[1] = 0n; }, /row 1: num_example_per_prompt = 0; expected an integer ≥ 1/],
    ['num_example_per_prompt = −3', (c: Columns) => { c.num_example_per_prompt.data[5] = -3n; }, /row 5: num_example_per_prompt = -3/],
    ['a null label', (c: Columns) => { c.label_0.data[0] = null; }, /row 0: label_0 is null, not a finite number/],
    ['a NaN label', (c: Columns) => { c.label_0.data[0] = NaN; }, /row 0: label_0 is null, not a finite number|row 0: label_0 is NaN/],
  ])('%s: a typed error naming the row (or skipped)', async (_, edit, message) => {
    const file = writeVariant('bad-values.parquet', edit);
    await expect(collect(await openParquetPairs(file), { images: false })).rejects.toThrow(message);
    const ds = await openParquetPairs(file, { skipBad: true });
    expect(await collect(ds, { images: false })).toHaveLength(4);
    expect(ds.counts.skippedBad).toBe(1);
  });

  it('a damaged row group: rows before it stream out, its rows are bad rows', async () => {
    const file = path.join(tmpDir(), 'damaged-group.parquet');
    const bytes = Buffer.from(fs.readFileSync(FIXTURE));
    const meta = await parquetMetadataAsync(await asyncBufferFromFile(FIXTURE));
    for (const col of meta.row_groups[2].columns) {
      const m = col.meta_data!;
      const start = Number(m.dictionary_page_offset ?? m.data_page_offset);
      bytes.fill(0xee, start, start + Number(m.total_compressed_size));
    }
    fs.writeFileSync(file, bytes);
    const seen: number[] = [];
    const err = await (async () => {
      for await (const r of (await openParquetPairs(file, { resolution: 4 })).rows()) seen.push(r.index);
    })().catch((e) => e);
    expect(seen).toEqual([0, 1, 2]);
    expect(err).toBeInstanceOf(PairDataError);
    expect(err.message).toMatch(/row 4 \(row group 2, rows 4–5\): cannot be read/);
    const ds = await openParquetPairs(file, { resolution: 4, skipBad: true });
    expect((await collect(ds)).map((r) => r.index)).toEqual([0, 1, 2]);
    expect(ds.counts.skippedBad).toBe(2);
  });

  it('a file that makes hyparquet loop forever: the row group overruns its deadline and is reported, not hung on', async () => {
    // pickapic-mini.parquet with 3 bytes changed (found by fuzzing): in row group 2 a page header loses
    // repetition_levels_byte_length and hyparquet 1.33's reader spins on offset NaN; row group 1 fails outright.
    const file = path.join(__dirname, 'fixtures/pairs/hyparquet-loops.parquet');
    const opts = { parseDeadlineMs: 1500, skipBad: true, onlyLabeled: false };
    const skipped: string[] = [];
    const meta = await collect(await openParquetPairs(file, { ...opts, onSkip: (e) => skipped.push(e.message) }), { images: false });
    expect(meta.map((r) => r.index)).toEqual([0, 1, 2, 3]);
    expect(skipped).toHaveLength(1); // one report for the row group
    expect(skipped[0]).toMatch(/row 4 \(row group 2, rows 4–5\): cannot be read: parsing did not finish within 1\.5 s \(corrupt data\?\)/);
    // With the image columns, row group 1 is unreadable as well; without skipBad that stops the pass.
    const ds = await openParquetPairs(file, { ...opts, resolution: 4 });
    expect((await collect(ds)).map((r) => r.index)).toEqual([0, 1]);
    expect(ds.counts.skippedBad).toBe(4);
    await expect(collect(await openParquetPairs(file, { parseDeadlineMs: 1500, resolution: 4 }))).rejects.toThrow(/row 2 \(row group 1, rows 2–3\): cannot be read/);
  });

  it('random byte damage anywhere: only typed errors (skipped under skipBad), never a crash or a hang', async () => {
    // A small deterministic sample; issue 13's fuzz runs thousands. 600 such cases ran clean while writing this.
    const src = fs.readFileSync(FIXTURE);
    const gen = new Generator(2024);
    const file = path.join(tmpDir(), 'damaged.parquet');
    for (let c = 0; c < 16; c++) {
      const b = Buffer.from(src);
      for (let j = 0, k = 1 + (gen.nextU32() % 6); j < k; j++) b[gen.nextU32() % b.length] = gen.nextU32() & 255;
      fs.writeFileSync(file, b);
      try {
        for await (const _ of (await openParquetPairs(file, { resolution: 4, skipBad: true, parseDeadlineMs: 2000 })).rows());
      } catch (e) {
        expect(e, `case ${c}: ${String(e)}`).toBeInstanceOf(PairDataError);
      }
    }
  });

  it('side CSV: wrong row count or missing column fail at open; a bad cell or a contradicting flag names the row', async () => {
    const lines = fs.readFileSync(CSV, 'utf8').trim().split('\n');
    await expect(openParquetPairs(FIXTURE, { gapsCsv: writeCsv('short.csv', lines.slice(0, 5)) })).rejects.toThrow(
      /short\.csv': side CSV has 4 rows but the parquet has 6/,
    );
    await expect(openParquetPairs(FIXTURE, { gapsCsv: writeCsv('nocol.csv', lines.map((l) => l.split(',').slice(0, 4).join(','))) })).rejects.toThrow(
      /lacks column\(s\) vqascore_gap/,
    );
    await expect(openParquetPairs(FIXTURE, { gapsCsv: path.join(tmpDir(), 'absent.csv') })).rejects.toThrow(/absent\.csv': cannot read the side CSV: ENOENT/);

    const badCell = [...lines];
    badCell[3] = '2,0,abc,-0.01,0.05'; // data row 2
    const ds = await openParquetPairs(FIXTURE, { gapsCsv: writeCsv('badcell.csv', badCell) });
    await expect(collect(ds, { images: false })).rejects.toThrow(/badcell\.csv': row 2: side CSV line 4: aesthetic_gap = "abc" is not a finite number/);

    const flipped = [...lines];
    flipped[1] = '0,0,0.5,0.01,0.2'; // row 0 is a win-lose pair marked as a tie
    const ds2 = await openParquetPairs(FIXTURE, { gapsCsv: writeCsv('flag.csv', flipped), skipBad: true });
    expect((await collect(ds2, { images: false })).map((r) => r.index)).toEqual([1, 2, 4, 5]);
    await expect(collect(await openParquetPairs(FIXTURE, { gapsCsv: path.join(tmpDir(), 'flag.csv') }), { images: false })).rejects.toThrow(
      /row 0: different_flag = 0 contradicts labels 1\/0 \(is the gap data row-aligned\?\)/,
    );
  });
});
