// Fuzz targets for the data files: Pick-a-Pic parquet (damaged, or without required columns), images
// (PNG/JPEG, damaged or random bytes), pair folders (pairs.jsonl), prompt files and tokenizer merges files.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { anyJson, mutatedBytes, notUtf8, type FuzzTarget } from './fuzz-harness.js';
import { encodeFixtureImage, PARQUET_ROWS } from './fixtures/pairs/spec.js';
import { openParquetPairs, openPairFolder, PARQUET_REQUIRED_COLUMNS } from '../src/io/pairs/index.js';
import { readModelImage } from '../src/io/pairs/image.js';
import { readPng } from '../src/io/image.js';
import { readPrompts } from '../src/lpo/prompts.js';
import { CLIPTokenizer, findAsset, NUM_MERGES, VOCAB_FILE } from '../src/io/tokenizer.js';

const FIXTURES = path.resolve(__dirname, 'fixtures/pairs');
const enc = (s: string) => new TextEncoder().encode(s);

async function drain(ds: { rows(o?: object): AsyncIterable<unknown> }): Promise<void> {
  for await (const _ of ds.rows({ images: true, latents: true })) { /* every row decoded */ }
}

/** The fixture's columns, each present or not (a parquet without some required columns). */
function parquetWithColumns(keep: readonly boolean[]): Uint8Array {
  const rows = PARQUET_ROWS.slice(0, 2);
  const all = [
    { name: 'caption', data: rows.map((r) => r.caption), type: 'STRING' },
    { name: 'jpg_0', data: rows.map((r) => encodeFixtureImage(r.image0)), type: 'BYTE_ARRAY' },
    { name: 'jpg_1', data: rows.map((r) => encodeFixtureImage(r.image1)), type: 'BYTE_ARRAY' },
    { name: 'label_0', data: rows.map((r) => r.label0), type: 'DOUBLE' },
    { name: 'label_1', data: rows.map((r) => r.label1), type: 'DOUBLE' },
    { name: 'num_example_per_prompt', data: rows.map((r) => BigInt(r.nep)), type: 'INT64' },
  ] as const;
  const columnData = all.filter((_, i) => keep[i]).map((c) => ({ ...c, data: [...c.data] }));
  if (!columnData.length) columnData.push({ name: 'other', data: ['x', 'y'], type: 'STRING' } as never);
  return new Uint8Array(parquetWriteBuffer({ columnData: columnData as never }));
}

export const parquetTarget: FuzzTarget = {
  name: 'parquet',
  setup(work) {
    const file = path.join(work, 'case.parquet');
    const base = new Uint8Array(fs.readFileSync(path.join(FIXTURES, 'pickapic-mini.parquet')));
    const missing = fc.array(fc.boolean(), { minLength: PARQUET_REQUIRED_COLUMNS.length, maxLength: PARQUET_REQUIRED_COLUMNS.length })
      .filter((k) => k.some((x) => !x)).map(parquetWithColumns);
    return {
      arb: fc.oneof({ weight: 5, arbitrary: mutatedBytes(base) }, { weight: 1, arbitrary: missing }),
      names: 'case.parquet',
      async run(bytes: Uint8Array) {
        fs.writeFileSync(file, bytes);
        await drain(await openParquetPairs(file, { resolution: 8, onlyLabeled: false, parseDeadlineMs: 400 }));
      },
    };
  },
};

export const imageTarget: FuzzTarget = {
  name: 'PNG/JPEG',
  setup(work) {
    const bases = [
      encodeFixtureImage({ width: 9, height: 7, seed: 1, format: 'png' }),
      encodeFixtureImage({ width: 9, height: 7, seed: 2, format: 'jpg' }),
      encodeFixtureImage({ width: 1, height: 1, seed: 3, format: 'png' }),
    ];
    // Headers that claim huge images: the IHDR width/height of the PNG, the SOF0 size of the JPEG.
    const huge = fc.tuple(fc.constantFrom(0, 1), fc.integer({ min: 0, max: 0xffff })).map(([which, v]) => {
      const b = bases[which].slice();
      if (which === 0) new DataView(b.buffer).setUint32(16, v * 0x10001, false);
      else {
        const sof = b.findIndex((x, i) => x === 0xff && b[i + 1] === 0xc0);
        if (sof > 0) new DataView(b.buffer).setUint16(sof + 5, v, false);
      }
      return b;
    });
    const file = path.join(work, 'case.img');
    return {
      arb: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...bases).chain((b) => mutatedBytes(b)) }, { weight: 1, arbitrary: huge }, { weight: 2, arbitrary: fc.uint8Array({ maxLength: 256 }) }),
      names: 'case.img',
      run(bytes: Uint8Array) {
        fs.writeFileSync(file, bytes);
        if (bytes[0] === 0x89) readPng(file);
        readModelImage(file, [8, 8]);
      },
    };
  },
};

/** One pairs.jsonl line: a good row with some fields changed, or not JSON at all. */
const GOOD_ROW = { caption: 'a cat', image_0: 'images/a.png', image_1: 'images/b.jpg', label_0: 1, label_1: 0, num_example_per_prompt: 1, has_label: true, split: 'train', aesthetic_gap: 0.1, different_flag: 1 };
const ROW_KEYS = [...Object.keys(GOOD_ROW), 'latent_0', 'latent_1', 'clipscore_gap', 'vqascore_gap'];
const lineArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 3, arbitrary: fc.constant(enc(JSON.stringify(GOOD_ROW))) },
  { weight: 6, arbitrary: fc.array(fc.tuple(fc.constantFrom(...ROW_KEYS), fc.oneof(anyJson, fc.constantFrom('images/none.png', '/etc/passwd', '../x.png', 'images/', 'images/a.png', 'images/b.jpg', 'x\0y', 'validation', 'test'))), { minLength: 1, maxLength: 3 })
    .map((edits) => enc(JSON.stringify({ ...GOOD_ROW, ...Object.fromEntries(edits) }))) },
  { weight: 1, arbitrary: fc.oneof(fc.string({ maxLength: 30 }).map(enc), notUtf8, fc.constantFrom('[]', 'null', '{', '{"caption": "x"}', '1').map(enc)) },
);

export const pairsTarget: FuzzTarget = {
  name: 'pairs.jsonl',
  setup(work) {
    const dir = path.join(work, 'folder');
    fs.mkdirSync(path.join(dir, 'images'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'images/a.png'), encodeFixtureImage({ width: 6, height: 6, seed: 4, format: 'png' }));
    fs.writeFileSync(path.join(dir, 'images/b.jpg'), encodeFixtureImage({ width: 6, height: 6, seed: 5, format: 'jpg' }));
    fs.writeFileSync(path.join(dir, 'images/bad.png'), 'not an image');
    const file = path.join(dir, 'pairs.jsonl');
    return {
      arb: fc.array(lineArb, { maxLength: 6 }),
      names: 'pairs.jsonl',
      async run(lines: Uint8Array[]) {
        fs.writeFileSync(file, Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\n')])));
        await drain(await openPairFolder(dir, { resolution: 8, onlyLabeled: false }));
      },
    };
  },
};

export const promptsTarget: FuzzTarget = {
  name: 'prompt file',
  setup(work) {
    const file = path.join(work, 'prompts.txt');
    const big = 'a'.repeat(10 << 20);
    const line = fc.oneof(
      { weight: 8, arbitrary: fc.string({ maxLength: 20 }) },
      { weight: 2, arbitrary: fc.constantFrom('', '   ', '\t', '\r') },
      { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 10 }) },
    );
    const text = fc.oneof(
      { weight: 5, arbitrary: fc.array(line, { maxLength: 8 }).map((ls) => enc(ls.join('\n'))) },
      { weight: 2, arbitrary: fc.array(fc.oneof(fc.string({ maxLength: 10 }), anyJson, fc.record({ caption: anyJson }), fc.record({ text: fc.string() })), { maxLength: 5 }).map((a) => enc(JSON.stringify(a))) },
      { weight: 1, arbitrary: fc.tuple(fc.array(line, { maxLength: 3 }), notUtf8).map(([ls, bad]) => Buffer.concat([enc(ls.join('\n')), bad])) },
      { weight: 1, arbitrary: fc.constantFrom('', '\uFEFF', '{}', '[', 'null').map(enc) },
      { weight: 1, arbitrary: fc.constantFrom(enc(`ok\n${big}\n`), enc(`${big}`), enc(JSON.stringify(['x', big]))) },
    );
    return {
      arb: text, names: 'prompts.txt',
      run(bytes: Uint8Array) {
        fs.writeFileSync(file, bytes);
        readPrompts(file);
      },
    };
  },
};

export const tokenizerTarget: FuzzTarget = {
  name: 'tokenizer merges',
  setup(work) {
    const file = path.join(work, 'merges.txt');
    // The real merges, in the Hugging Face merges.txt form; most cases break the count (cheap), a few keep it
    // and break a line (each of those builds the whole 49,408-entry vocabulary, ~0.5 s).
    const gz = fs.readFileSync(findAsset(VOCAB_FILE)!);
    const merges = (require('node:zlib').gunzipSync(gz) as Buffer).toString('utf8').split('\n').slice(1, NUM_MERGES + 1);
    const text = (ms: readonly string[]) => enc(`#version: 0.2\n${ms.join('\n')}\n`);
    const head = merges.slice(0, 200);
    const arb = fc.oneof(
      { weight: 20, arbitrary: fc.array(fc.oneof(fc.constantFrom(...head), fc.string({ maxLength: 12 })), { maxLength: 30 }).map(text) },
      { weight: 6, arbitrary: mutatedBytes(text(head), 256) },
      { weight: 3, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => new Uint8Array(gzipSync(b))) },
      { weight: 2, arbitrary: mutatedBytes(new Uint8Array(gzipSync(Buffer.from(text(head)))), 64) },
      { weight: 1, arbitrary: fc.tuple(fc.nat(NUM_MERGES - 1), fc.constantFrom('a', 'a b c', '', ' ', 'x  y')).map(([i, bad]) => text(merges.map((m, j) => (j === i ? bad : m)))) },
      { weight: 1, arbitrary: fc.constant(text(merges)) },
    );
    return {
      arb, names: 'merges.txt',
      run(bytes: Uint8Array) {
        fs.writeFileSync(file, bytes);
        CLIPTokenizer.fromFile(file);
      },
    };
  },
};
