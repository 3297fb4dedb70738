// The manifest of a checkpoint folder: what it holds (every file's size and sha256), which training step it is,
// and the caller's small metadata. It is written last, after every file it names is on disk and fsynced, so a
// folder whose manifest verifies is complete; loading re-hashes every file and refuses any difference.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointError } from './errors.js';

export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_FORMAT = 'lpo-checkpoint';
export const MANIFEST_VERSION = 1;
/** A manifest is a few KB; anything much larger is not one (and must not be read whole). */
const MAX_MANIFEST_BYTES = 16 << 20;
const HASH_CHUNK = 8 << 20;

export interface FileEntry {
  bytes: number;
  sha256: string;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: number;
  /** The training step (or iteration) the checkpoint was taken after. */
  step: number;
  /** ISO time of writing (informational). */
  created: string;
  /** Relative path (forward slashes) → size and hash, for every file of the checkpoint but the manifest. */
  files: Record<string, FileEntry>;
  /** The caller's JSON metadata (trainer state, config); not hashed separately: it lives in this file. */
  meta: Record<string, unknown>;
}

/** sha256 (hex) and size of a file, read in chunks (checkpoints can be GBs). */
export function hashFile(file: string): FileEntry {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  let bytes = 0;
  try {
    const buf = Buffer.allocUnsafe(HASH_CHUNK);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, bytes);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      bytes += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return { bytes, sha256: h.digest('hex') };
}

/** Every regular file under `dir` (relative, forward slashes, sorted), except the manifest. */
export function listFiles(dir: string, sub = ''): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(dir, sub), { withFileTypes: true })) {
    const rel = sub ? `${sub}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listFiles(dir, rel));
    else if (e.isFile() && rel !== MANIFEST_FILE) out.push(rel);
  }
  return out.sort();
}

/** A relative path inside the checkpoint: no absolute paths, no `..`, no empty or odd segments. */
function safeRelative(rel: string): boolean {
  if (rel.length === 0 || rel.length > 1024 || rel.includes('\0') || rel.includes('\\') || rel.startsWith('/')) return false;
  return rel.split('/').every((s) => s !== '' && s !== '.' && s !== '..');
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** Parses and checks a manifest's text; `file` names it in errors. */
export function parseManifest(text: string, file: string): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(file, `manifest is not valid JSON: ${(e as Error).message}`);
  }
  if (!isObject(json)) throw new CheckpointError(file, 'manifest is not a JSON object');
  if (json.format !== MANIFEST_FORMAT) throw new CheckpointError(file, `manifest format is ${JSON.stringify(json.format)?.slice(0, 40)}, expected "${MANIFEST_FORMAT}"`);
  if (json.version !== MANIFEST_VERSION) throw new CheckpointError(file, `manifest version ${JSON.stringify(json.version)?.slice(0, 20)}; this build reads ${MANIFEST_VERSION}`);
  if (!Number.isSafeInteger(json.step) || (json.step as number) < 0) throw new CheckpointError(file, `"step" must be a non-negative integer, got ${JSON.stringify(json.step)?.slice(0, 20)}`);
  if (!isObject(json.files)) throw new CheckpointError(file, '"files" must be an object of path → {bytes, sha256}');
  if (json.meta !== undefined && !isObject(json.meta)) throw new CheckpointError(file, '"meta" must be an object');
  const files: Record<string, FileEntry> = {};
  for (const [rel, e] of Object.entries(json.files)) {
    if (!safeRelative(rel) || rel === MANIFEST_FILE) throw new CheckpointError(file, `file name ${JSON.stringify(rel).slice(0, 80)} is not a relative path inside the checkpoint`);
    if (!isObject(e) || !Number.isSafeInteger(e.bytes) || (e.bytes as number) < 0 || typeof e.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(e.sha256)) {
      throw new CheckpointError(file, `entry ${JSON.stringify(rel)} must be {bytes: non-negative integer, sha256: 64 hex digits}`);
    }
    files[rel] = { bytes: e.bytes as number, sha256: e.sha256 };
  }
  return {
    format: MANIFEST_FORMAT, version: MANIFEST_VERSION, step: json.step as number,
    created: typeof json.created === 'string' ? json.created : '', files, meta: (json.meta as Record<string, unknown>) ?? {},
  };
}

/** Reads `<dir>/manifest.json` (checked, not yet verified against the files). */
export function readManifest(dir: string): Manifest {
  const file = path.join(dir, MANIFEST_FILE);
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CheckpointError(file, code === 'ENOENT' ? 'missing: not a complete checkpoint' : `cannot read: ${code ?? (e as Error).message}`);
  }
  if (!st.isFile()) throw new CheckpointError(file, 'is not a regular file');
  if (st.size > MAX_MANIFEST_BYTES) throw new CheckpointError(file, `manifest of ${st.size} bytes is larger than any real one (${MAX_MANIFEST_BYTES})`);
  const raw = fs.readFileSync(file);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    throw new CheckpointError(file, 'manifest is not valid UTF-8');
  }
  return parseManifest(text, file);
}

/**
 * Verifies a checkpoint folder: the manifest parses, and every file it names exists with the recorded size
 * and sha256. Returns the manifest; throws CheckpointError naming the first bad file and what is wrong.
 */
export function verifyCheckpoint(dir: string): Manifest {
  const m = readManifest(dir);
  for (const [rel, want] of Object.entries(m.files)) {
    const p = path.join(dir, ...rel.split('/'));
    let st: fs.Stats;
    try {
      st = fs.statSync(p);
    } catch {
      throw new CheckpointError(p, 'listed in the manifest but missing');
    }
    if (!st.isFile()) throw new CheckpointError(p, 'listed in the manifest but not a regular file');
    if (st.size !== want.bytes) throw new CheckpointError(p, `has ${st.size} bytes, the manifest recorded ${want.bytes} (truncated or replaced)`);
    const got = hashFile(p);
    if (got.sha256 !== want.sha256) throw new CheckpointError(p, `sha256 ${got.sha256.slice(0, 12)}… differs from the manifest's ${want.sha256.slice(0, 12)}… (corrupted)`);
  }
  return m;
}
