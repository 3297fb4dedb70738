import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  SafetensorsError,
  SafetensorsFile,
  readSafetensorsSync,
  serializeSafetensors,
  writeSafetensors,
  writeSafetensorsSync,
} from '../src/io/safetensors.js';
import { toHalfBits } from '../src/tensor/half.js';
import { LpoError } from '../src/errors.js';

const GOLDEN = path.resolve(__dirname, 'fixtures/golden');
let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lpo-st-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Writes a file with a given header (object or raw string) and data bytes; returns its path. */
function mk(name: string, header: unknown, data: Uint8Array | number = 0, opts: { headerLen?: bigint; pad?: boolean } = {}): string {
  const json = typeof header === 'string' ? header : JSON.stringify(header);
  const hb = Buffer.from(json, 'utf8');
  const d = typeof data === 'number' ? new Uint8Array(data) : data;
  const buf = Buffer.alloc(8 + hb.length + d.byteLength);
  buf.writeBigUInt64LE(opts.headerLen ?? BigInt(hb.length));
  hb.copy(buf, 8);
  Buffer.from(d).copy(buf, 8 + hb.length);
  const p = path.join(dir, name);
  fs.writeFileSync(p, buf);
  return p;
}

async function openErr(p: string): Promise<SafetensorsError> {
  try {
    const f = await SafetensorsFile.open(p);
    await f.close();
  } catch (e) {
    expect(e).toBeInstanceOf(SafetensorsError);
    expect(e).toBeInstanceOf(LpoError);
    expect((e as Error).message).toContain(p);
    expect((e as Error).message).not.toContain('\n');
    return e as SafetensorsError;
  }
  throw new Error(`${p} opened without error`);
}

const good = {
  a: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] },
  b: { dtype: 'I64', shape: [2], data_offsets: [24, 40] },
};

describe('safetensors round trip', () => {
  it('writes and reads F32/F16/BF16/F64/I64/I32/U8/BOOL, scalars, empty tensors and metadata', async () => {
    const p = path.join(dir, 'rt.safetensors');
    const f32 = Float32Array.from([1.5, -2.25, 3e-8, 1e30, -0, 7]);
    await writeSafetensors(
      p,
      {
        'w.f32': { dtype: 'F32', shape: [2, 3], data: f32 },
        'w.f16': { dtype: 'F16', shape: [4], data: [1, -0.5, 65504, 6e-8] },
        'w.bf16': { dtype: 'BF16', shape: [3], data: [1, -3.5, 1e38] },
        'w.f64': { dtype: 'F64', shape: [2], data: [0.1, -1e-300] },
        ids: { dtype: 'I64', shape: [1, 5], data: [0, -1, 49407, 2 ** 31 - 1, -(2 ** 31)] },
        big: { dtype: 'I64', shape: [1], data: new BigInt64Array([1n << 40n]) },
        i32: { dtype: 'I32', shape: [2], data: [-7, 9] },
        u8: { dtype: 'U8', shape: [2], data: [0, 255] },
        flags: { dtype: 'BOOL', shape: [3], data: [1, 0, 1] },
        scalar: { dtype: 'F32', shape: [], data: [2.9] },
        empty: { dtype: 'F32', shape: [0, 4], data: [] },
      },
      { format: 'pt', note: 'hello' },
    );
    const f = await SafetensorsFile.open(p);
    try {
      expect(f.metadata).toEqual({ format: 'pt', note: 'hello' });
      expect(f.keys().sort()).toEqual(['big', 'empty', 'flags', 'i32', 'ids', 'scalar', 'u8', 'w.bf16', 'w.f16', 'w.f32', 'w.f64']);
      expect(f.info('w.f32')).toMatchObject({ dtype: 'F32', shape: [2, 3], byteLength: 24 });
      expect(Array.from(await f.readF32('w.f32'))).toEqual(Array.from(f32));
      expect(Array.from(await f.readF32('w.f16'))).toEqual([1, -0.5, 65504, 2 ** -24]);
      // bf16 rounds to 8 mantissa bits: 1e38 → nearest bf16
      const bf = await f.readF32('w.bf16');
      expect(bf[0]).toBe(1);
      expect(bf[1]).toBe(-3.5);
      expect(Math.abs(bf[2] - 1e38) / 1e38).toBeLessThan(2 ** -8);
      expect(Array.from(await f.readF32('w.f64'))).toEqual([Math.fround(0.1), -0]);
      expect(Array.from(await f.readInt32('ids'))).toEqual([0, -1, 49407, 2 ** 31 - 1, -(2 ** 31)]);
      expect(Array.from(f.readInt32Sync('i32'))).toEqual([-7, 9]);
      expect(Array.from(await f.readInt32('u8'))).toEqual([0, 255]);
      expect(Array.from(await f.readInt32('flags'))).toEqual([1, 0, 1]);
      expect(Array.from(await f.readF32('ids'))).toEqual([0, -1, 49407, 2 ** 31 - 1, -(2 ** 31)].map(Math.fround));
      expect((await f.read('scalar')).shape).toEqual([]);
      expect((await f.read('scalar')).data[0]).toBeCloseTo(2.9, 6);
      expect((await f.read('empty')).data.length).toBe(0);
      // an I64 value outside int32 is an error naming the tensor
      await expect(f.readInt32('big')).rejects.toThrow(/tensor "big".*does not fit in int32/);
      // asking for integers from a float tensor
      await expect(f.readInt32('w.f32')).rejects.toThrow(SafetensorsError);
      expect(() => f.info('nope')).toThrow(/tensor "nope": no such tensor/);
    } finally {
      await f.close();
    }
    // sync writer and in-memory serialiser give the same bytes
    const p2 = path.join(dir, 'rt2.safetensors');
    const t = { x: { dtype: 'F32' as const, shape: [3], data: [1, 2, 3] }, n: { dtype: 'I64' as const, shape: [1], data: [5] } };
    writeSafetensorsSync(p2, t, { a: 'b' });
    expect(new Uint8Array(fs.readFileSync(p2))).toEqual(serializeSafetensors(t, { a: 'b' }));
    const r = readSafetensorsSync(p2);
    expect(Array.from(r.tensors.x.data)).toEqual([1, 2, 3]);
    expect(r.tensors.n.data).toBeInstanceOf(Int32Array);
    // header padded to a multiple of 8 and data aligned
    const buf = fs.readFileSync(p2);
    expect(Number(buf.readBigUInt64LE(0)) % 8).toBe(0);
  });

  it('decodes f16 and bf16 bit patterns exactly (subnormals, inf, nan, signed zero)', async () => {
    const halfBits = [0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0xc000, 0x7bff, 0x7c00, 0xfc00, 0x7e00, 0x3555];
    const hb = new Uint8Array(new Uint16Array(halfBits).buffer);
    const bfBits = [0x3f80, 0xbf80, 0x4049, 0x7f80, 0xff80, 0x7fc0, 0x0001, 0x8000];
    const bb = new Uint8Array(new Uint16Array(bfBits).buffer);
    const p = path.join(dir, 'half.safetensors');
    writeSafetensorsSync(p, {
      h: { dtype: 'F16', shape: [halfBits.length], data: hb, raw: true },
      b: { dtype: 'BF16', shape: [bfBits.length], data: bb, raw: true },
    });
    const f = SafetensorsFile.openSync(p);
    const h = Array.from(await f.readF32('h'));
    expect(h.slice(0, 10)).toEqual([0, -0, 2 ** -24, 1023 * 2 ** -24, 2 ** -14, 1, -2, 65504, Infinity, -Infinity]);
    expect(Number.isNaN(h[10])).toBe(true);
    expect(h[11]).toBe((1 + 0x155 / 1024) / 4); // 0x3555 = 2^-2 * (1 + 341/1024)
    const b = Array.from(await f.readF32('b'));
    const fromBits = (x: number) => new Float32Array(new Uint32Array([x << 16]).buffer)[0];
    expect(b.filter((_, i) => i !== 5)).toEqual(bfBits.filter((_, i) => i !== 5).map(fromBits));
    expect(Number.isNaN(b[5])).toBe(true);
    // writing floats as F16 rounds as half.ts does
    const vals = [0.1, -3.14159, 1e-7, 70000];
    const p2 = path.join(dir, 'half2.safetensors');
    writeSafetensorsSync(p2, { h: { dtype: 'F16', shape: [4], data: vals } });
    const raw = new Uint16Array((await SafetensorsFile.open(p2).then((g) => g.readBytes('h'))).buffer);
    expect(Array.from(raw)).toEqual(vals.map(toHalfBits));
    f.closeSync();
  });
});

describe('safetensors corruption → SafetensorsError naming file and tensor', () => {
  it('accepts the well-formed reference file', async () => {
    const f = await SafetensorsFile.open(mk('good.safetensors', good, 40));
    expect(f.keys()).toEqual(['a', 'b']);
    await f.close();
  });

  it('file shorter than 8 bytes', async () => {
    const p = path.join(dir, 'tiny.safetensors');
    fs.writeFileSync(p, Buffer.from([1, 2, 3]));
    expect((await openErr(p)).message).toMatch(/3 bytes, fewer than the 8-byte header length/);
  });

  it('missing file', async () => {
    expect((await openErr(path.join(dir, 'absent.safetensors'))).message).toMatch(/cannot open: ENOENT/);
  });

  it('header length past the end of the file', async () => {
    const p = mk('hlen.safetensors', good, 40, { headerLen: 10_000n });
    expect((await openErr(p)).message).toMatch(/header length 10000 runs past the end of the file/);
  });

  it('absurd header length', async () => {
    const p = mk('hhuge.safetensors', good, 40, { headerLen: 1n << 40n });
    expect((await openErr(p)).message).toMatch(/exceeds the limit of 100000000 bytes/);
  });

  it('truncated data section names the last tensor', async () => {
    const e = await openErr(mk('trunc.safetensors', good, 30));
    expect(e.key).toBe('b');
    expect(e.message).toMatch(/tensor "b": file is truncated: the data section needs 40 bytes/);
  });

  it('bad JSON, non-UTF-8, non-object header', async () => {
    expect((await openErr(mk('badjson.safetensors', '{"a": {"dtype": "F32",', 0))).message).toMatch(/header is not valid JSON/);
    expect((await openErr(mk('array.safetensors', '[1, 2]', 0))).message).toMatch(/must be a JSON object/);
    expect((await openErr(mk('null.safetensors', 'null    ', 0))).message).toMatch(/must be a JSON object/);
    const p = path.join(dir, 'utf8.safetensors');
    const b = Buffer.from([2, 0, 0, 0, 0, 0, 0, 0, 0xc3, 0x28]);
    fs.writeFileSync(p, b);
    expect((await openErr(p)).message).toMatch(/not valid UTF-8/);
  });

  it('entry that is not an object', async () => {
    const e = await openErr(mk('entry.safetensors', { x: [1, 2] }, 0));
    expect(e.key).toBe('x');
    expect(e.message).toMatch(/entry must be an object/);
  });

  it('unknown dtype', async () => {
    const e = await openErr(mk('dtype.safetensors', { ...good, a: { ...good.a, dtype: 'F24' } }, 40));
    expect(e.key).toBe('a');
    expect(e.message).toMatch(/tensor "a": unknown dtype "F24"/);
    expect((await openErr(mk('dtype2.safetensors', { ...good, a: { shape: [6], data_offsets: [0, 24] } }, 40))).message).toMatch(/unknown dtype undefined/);
  });

  it('negative, non-integer or non-numeric shape', async () => {
    for (const [i, shape] of [[-2, -3], [2.5, 2], ['2', 3], 6, null].entries()) {
      const e = await openErr(mk(`shape${i}.safetensors`, { ...good, a: { ...good.a, shape } }, 40));
      expect(e.key).toBe('a');
      expect(e.message).toMatch(/tensor "a": shape .*non-negative integers/);
    }
  });

  it('byte span that does not match dtype × shape', async () => {
    const e = await openErr(mk('span.safetensors', { a: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 20] }, b: { dtype: 'I64', shape: [2], data_offsets: [20, 36] } }, 36));
    expect(e.key).toBe('a');
    expect(e.message).toMatch(/data_offsets \[0, 20\] span 20 bytes but F32 \[2, 3\] needs 6 × 4 = 24/);
  });

  it('malformed data_offsets', async () => {
    for (const [i, off] of [[0], [0, 24, 1], [-8, 16], [0, '24'], [24, 0]].entries()) {
      const e = await openErr(mk(`off${i}.safetensors`, { ...good, a: { ...good.a, data_offsets: off } }, 40));
      expect(e.key).toBe('a');
      expect(e.message).toMatch(/data_offsets/);
    }
  });

  it('gap between tensors', async () => {
    const e = await openErr(mk('gap.safetensors', { a: good.a, b: { ...good.b, data_offsets: [32, 48] } }, 48));
    expect(e.key).toBe('b');
    expect(e.message).toMatch(/leave a gap: bytes \[24, 32\) of the data section belong to no tensor/);
  });

  it('gap at the start of the data section', async () => {
    const e = await openErr(mk('gap0.safetensors', { a: { ...good.a, data_offsets: [8, 32] } }, 32));
    expect(e.message).toMatch(/tensor "a".*gap: bytes \[0, 8\)/);
  });

  it('overlapping tensors', async () => {
    const e = await openErr(mk('overlap.safetensors', { a: good.a, b: { ...good.b, data_offsets: [16, 32] } }, 32));
    expect(e.key).toBe('b');
    expect(e.message).toMatch(/overlap tensor "a", which ends at 24/);
  });

  it('duplicate key', async () => {
    const json = '{"a":{"dtype":"F32","shape":[6],"data_offsets":[0,24]},"a":{"dtype":"F32","shape":[6],"data_offsets":[0,24]}}';
    const e = await openErr(mk('dup.safetensors', json, 24));
    expect(e.key).toBe('a');
    expect(e.message).toMatch(/appears twice/);
  });

  it('trailing bytes after the data section', async () => {
    const e = await openErr(mk('trail.safetensors', good, 41));
    expect(e.message).toMatch(/1 trailing bytes after the data section/);
  });

  it('bad metadata', async () => {
    for (const [i, md] of [{ a: 1 }, [1], 'x', { a: { b: 'c' } }].entries()) {
      const e = await openErr(mk(`md${i}.safetensors`, { __metadata__: md, ...good }, 40));
      expect(e.key).toBe('__metadata__');
      expect(e.message).toMatch(/__metadata__/);
    }
  });

  it('unsupported conversions name the tensor', async () => {
    const p = mk('f8.safetensors', { q: { dtype: 'F8_E4M3', shape: [4], data_offsets: [0, 4] } }, 4);
    const f = await SafetensorsFile.open(p);
    await expect(f.readF32('q')).rejects.toThrow(/tensor "q": cannot convert F8_E4M3/);
    await f.close();
    await expect(f.readF32('q')).rejects.toThrow(/was closed/);
  });

  it('writer rejects mismatched data', async () => {
    await expect(writeSafetensors(path.join(dir, 'w.safetensors'), { x: { dtype: 'F32', shape: [2, 2], data: [1, 2, 3] } })).rejects.toThrow(/tensor "x": 3 values for shape \[2, 2\]/);
    expect(() => writeSafetensorsSync(path.join(dir, 'w2.safetensors'), { x: { dtype: 'I64', shape: [1], data: [1.5] } })).toThrow(/not an integer/);
  });
});

describe('golden safetensors files', () => {
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else if (e.name.endsWith('.safetensors')) files.push(path.join(d, e.name));
    }
  };
  walk(GOLDEN);
  const manifest = JSON.parse(fs.readFileSync(path.join(GOLDEN, 'manifest.json'), 'utf8'));

  it('finds the golden files', () => {
    expect(files.length).toBeGreaterThanOrEqual(20);
  });

  it.each(files.map((f) => [path.relative(GOLDEN, f), f]))('reads %s', async (_rel, file) => {
    const f = await SafetensorsFile.open(file);
    try {
      expect(f.keys().length).toBeGreaterThan(0);
      let elems = 0;
      for (const k of f.keys()) {
        const info = f.info(k);
        const t = await f.read(k);
        expect(t.data.length).toBe(info.shape.reduce((a, b) => a * b, 1));
        if (info.dtype === 'F32') expect(t.data.every((v) => Number.isFinite(v))).toBe(true);
        elems += t.data.length;
      }
      expect(elems).toBeGreaterThan(0);
      // The manifest's tensors of this file agree in dtype and shape.
      const rel = path.relative(GOLDEN, file);
      const section = manifest.sections[rel.split(path.sep)[0]];
      for (const [name, m] of Object.entries((section?.tensors ?? {}) as Record<string, { file: string; dtype: string; shape: number[] }>)) {
        if (m.file !== path.basename(file) || !f.has(name)) continue;
        expect(f.info(name).shape).toEqual(m.shape);
        expect(f.info(name).dtype).toBe(m.dtype === 'int64' ? 'I64' : 'F32');
      }
    } finally {
      await f.close();
    }
  });

  it('text encoder weights: position_ids is arange(77) and the parameter count matches the manifest', async () => {
    const f = await SafetensorsFile.open(path.join(GOLDEN, 'text_encoder/weights.safetensors'));
    expect(Array.from(await f.readInt32('text_model.embeddings.position_ids'))).toEqual(Array.from({ length: 77 }, (_, i) => i));
    const params = f.keys().filter((k) => !k.endsWith('position_ids')).reduce((a, k) => a + f.info(k).shape.reduce((x, y) => x * y, 1), 0);
    expect(params).toBe(manifest.sections.text_encoder.num_parameters);
    expect(f.metadata).toEqual({ format: 'pt' });
    await f.close();
  });
});
