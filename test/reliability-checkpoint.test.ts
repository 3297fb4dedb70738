// The checkpoint library (src/io/checkpoint): atomic folders with a hashed manifest, verification on load,
// fallback to the newest good checkpoint, keep-last-N, and the cleanup after an interrupted save.
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CheckpointError, CheckpointStore, readManifest, verifyCheckpoint, writeFileAtomic, writeFileAtomicWith } from '../src/io/checkpoint/index.js';
import { FileFormatError } from '../src/errors.js';

const ROOT = fs.mkdtempSync(path.join(tmpdir(), 'lpo-ckpt-'));
afterAll(() => fs.rmSync(ROOT, { recursive: true, force: true }));
let n = 0;
const fresh = () => path.join(ROOT, `s${n++}`);

/** A checkpoint whose files depend on the step: weights.bin (step bytes), sub/state.json. */
async function saveStep(store: CheckpointStore, step: number): Promise<string> {
  return store.save(step, (tmp) => {
    fs.writeFileSync(path.join(tmp, 'weights.bin'), Buffer.alloc(1000 + step, step & 0xff));
    fs.mkdirSync(path.join(tmp, 'sub'));
    fs.writeFileSync(path.join(tmp, 'sub', 'state.json'), JSON.stringify({ step }));
  }, { step, note: 'test' });
}

describe('CheckpointStore', () => {
  it('publishes a verified folder with a sha256 per file and the caller metadata', async () => {
    const store = new CheckpointStore(fresh());
    const dir = await saveStep(store, 7);
    expect(path.basename(dir)).toBe('step-00000007');
    const m = verifyCheckpoint(dir);
    expect(Object.keys(m.files).sort()).toEqual(['sub/state.json', 'weights.bin']);
    expect(m.files['weights.bin'].bytes).toBe(1007);
    expect(m.files['weights.bin'].sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(m.meta).toEqual({ step: 7, note: 'test' });
    expect(store.latest()?.step).toBe(7);
    expect(fs.readdirSync(store.root)).toEqual(['step-00000007']); // no temporary left
  });

  it('keeps the newest N', async () => {
    const store = new CheckpointStore(fresh(), { keep: 2 });
    for (const s of [1, 2, 3, 4, 5]) await saveStep(store, s);
    expect(store.list().map((c) => c.step)).toEqual([4, 5]);
    expect(() => new CheckpointStore(fresh(), { keep: 0 })).toThrow(/keep must be a positive integer/);
  });

  it('a corrupted, truncated or manifest-less newest checkpoint is a CheckpointError, and latest() falls back', async () => {
    const store = new CheckpointStore(fresh(), { keep: 5 });
    for (const s of [1, 2, 3, 4]) await saveStep(store, s);
    const [, c2, c3, c4] = store.list();
    // 4: one flipped byte; 3: truncated; 2: manifest missing (a crash before it was written, by hand).
    const w4 = path.join(c4.dir, 'weights.bin');
    const b = fs.readFileSync(w4);
    b[500] ^= 1;
    fs.writeFileSync(w4, b);
    fs.truncateSync(path.join(c3.dir, 'weights.bin'), 10);
    fs.rmSync(path.join(c2.dir, 'manifest.json'));
    expect(() => store.load(c4.dir)).toThrow(CheckpointError);
    expect(() => store.load(c4.dir)).toThrow(/weights\.bin'.*sha256 .* differs .*corrupted/);
    expect(() => store.load(c3.dir)).toThrow(/has 10 bytes, the manifest recorded 1003 \(truncated/);
    expect(() => store.load(c2.dir)).toThrow(/manifest\.json'.*missing/);
    const bad: string[] = [];
    const got = store.latest((dir, e) => { bad.push(`${path.basename(dir)}: ${e.constructor.name}`); });
    expect(got?.step).toBe(1);
    expect(bad).toEqual(['step-00000004: CheckpointError', 'step-00000003: CheckpointError', 'step-00000002: CheckpointError']);
    expect(new CheckpointError('f', 'p')).toBeInstanceOf(FileFormatError);
  });

  it('malformed manifests are refused with the file named', async () => {
    const store = new CheckpointStore(fresh());
    const dir = await saveStep(store, 1);
    const mf = path.join(dir, 'manifest.json');
    const good = fs.readFileSync(mf, 'utf8');
    const cases: [string, RegExp][] = [
      ['{', /not valid JSON/],
      ['[]', /not a JSON object/],
      [good.replace('"lpo-checkpoint"', '"other"'), /format is "other"/],
      [good.replace('"step": 1', '"step": -1'), /"step" must be a non-negative integer/],
      [JSON.stringify({ ...JSON.parse(good), files: { '../etc/passwd': { bytes: 1, sha256: 'a'.repeat(64) } } }), /not a relative path/],
      [JSON.stringify({ ...JSON.parse(good), files: { 'weights.bin': { bytes: 1000 + 1, sha256: 'xyz' } } }), /64 hex digits/],
    ];
    for (const [text, re] of cases) {
      fs.writeFileSync(mf, text);
      expect(() => readManifest(dir), text.slice(0, 30)).toThrow(re);
      expect(() => readManifest(dir)).toThrow(/manifest\.json'/);
    }
    fs.writeFileSync(mf, Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));
    expect(() => readManifest(dir)).toThrow(/not valid UTF-8/);
  });

  it('a save that fails before the rename leaves the previous checkpoints and no temporary folder', async () => {
    const store = new CheckpointStore(fresh(), { beforeCommit: () => { throw new Error('killed here'); } });
    await expect(saveStep(store, 1)).rejects.toThrow('killed here');
    expect(fs.readdirSync(store.root)).toEqual([]);
    const ok = new CheckpointStore(store.root);
    await saveStep(ok, 1);
    const failing = new CheckpointStore(store.root, { beforeCommit: () => { throw new Error('killed again'); } });
    await expect(saveStep(failing, 2)).rejects.toThrow('killed again');
    expect(failing.latest()?.step).toBe(1);
    await expect(failing.save(1.5, () => {})).rejects.toThrow(/non-negative integer/);
  });

  it('cleans up after a killed save: temporary folders go, a checkpoint moved aside for re-saving comes back', async () => {
    const root = fresh();
    const store = new CheckpointStore(root);
    await saveStep(store, 3);
    fs.mkdirSync(path.join(root, '.tmp-step-00000004-999'));
    fs.writeFileSync(path.join(root, '.tmp-step-00000004-999', 'weights.bin'), 'half');
    fs.renameSync(path.join(root, 'step-00000003'), path.join(root, '.trash-step-00000003-999'));
    const again = new CheckpointStore(root);
    expect(fs.readdirSync(root)).toEqual(['step-00000003']);
    expect(again.latest()?.step).toBe(3);
    // Re-saving an existing step replaces it.
    await again.save(3, (tmp) => fs.writeFileSync(path.join(tmp, 'x'), 'new'));
    expect(Object.keys(again.latest()!.manifest.files)).toEqual(['x']);
  });
});

describe('atomic files', () => {
  it('writeFileAtomic and writeFileAtomicWith replace the file whole and leave no temporary', async () => {
    const dir = fresh();
    fs.mkdirSync(dir);
    const f = path.join(dir, 'a.json');
    writeFileAtomic(f, 'one');
    writeFileAtomic(f, new Uint8Array([116, 119, 111]));
    expect(fs.readFileSync(f, 'utf8')).toBe('two');
    await writeFileAtomicWith(f, (tmp) => fs.writeFileSync(tmp, 'three'));
    expect(fs.readFileSync(f, 'utf8')).toBe('three');
    await expect(writeFileAtomicWith(f, (tmp) => { fs.writeFileSync(tmp, 'partial'); throw new Error('crash'); })).rejects.toThrow('crash');
    expect(fs.readFileSync(f, 'utf8')).toBe('three');
    expect(fs.readdirSync(dir)).toEqual(['a.json']);
  });
});
