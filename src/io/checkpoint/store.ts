// A folder of training checkpoints, one subfolder per step (`step-00000120/`), written all-or-nothing:
//
//   1. the caller writes its files into a fresh temporary folder (`.tmp-step-…`) beside them;
//   2. every file is fsynced and hashed, and manifest.json (sizes + sha256) is written last and fsynced;
//   3. the temporary folder is renamed to its final name and the root folder fsynced;
//   4. all but the newest `keep` checkpoints are removed.
//
// A process killed at any point leaves complete, verifiable checkpoints plus at most one temporary folder,
// which the next store on the same root removes. Loading verifies the manifest and every hash, and `latest()`
// falls back to the newest checkpoint that verifies, reporting the ones that do not.
// One writer per root is assumed (a trainer and its resumption, never two trainers at once).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ArgumentError } from '../../errors.js';
import { fsyncPath, fsyncTree, writeFileAtomic } from './atomic.js';
import { CheckpointError } from './errors.js';
import { hashFile, listFiles, MANIFEST_FILE, MANIFEST_FORMAT, MANIFEST_VERSION, verifyCheckpoint, type Manifest } from './manifest.js';

const STEP_RE = /^step-(\d{8,})$/;
const TEMP_PREFIXES = ['.tmp-step-', '.trash-step-'];

export interface CheckpointStoreOptions {
  /** How many complete checkpoints to keep (the newest ones; default 3). */
  keep?: number;
  /**
   * Called after the checkpoint's files and manifest are durable in the temporary folder, just before the
   * rename that publishes it. A test hook: a crash here must leave the previous checkpoints as they were.
   */
  beforeCommit?: (tmpDir: string) => void | Promise<void>;
}

export interface CheckpointInfo {
  step: number;
  dir: string;
}

export interface LoadedCheckpoint extends CheckpointInfo {
  manifest: Manifest;
}

export const stepDirName = (step: number): string => `step-${String(step).padStart(8, '0')}`;

let faultHook: ((tmpDir: string) => void | Promise<void>) | null = null;

/**
 * Fault injection for crash tests (test/sigkill.test.ts): `hook` runs in every store's save, at the same point
 * as `beforeCommit` — the checkpoint durable in its temporary folder, not yet published — so a test can kill the
 * process exactly there, even when the store belongs to a trainer. Null removes it.
 */
export function setCheckpointFaultHook(hook: ((tmpDir: string) => void | Promise<void>) | null): void {
  faultHook = hook;
}

export class CheckpointStore {
  readonly keep: number;

  constructor(readonly root: string, private readonly opts: CheckpointStoreOptions = {}) {
    this.keep = opts.keep ?? 3;
    if (!(Number.isInteger(this.keep) && this.keep >= 1)) throw new ArgumentError(`CheckpointStore: keep must be a positive integer, got ${opts.keep}`);
    fs.mkdirSync(root, { recursive: true });
    this.removeLeftovers();
  }

  /** Checkpoint folders by name (complete or not), oldest first. */
  list(): CheckpointInfo[] {
    const out: CheckpointInfo[] = [];
    for (const e of fs.readdirSync(this.root, { withFileTypes: true })) {
      const m = STEP_RE.exec(e.name);
      if (m && e.isDirectory()) out.push({ step: Number(m[1]), dir: path.join(this.root, e.name) });
    }
    return out.sort((a, b) => a.step - b.step);
  }

  /**
   * Writes a checkpoint of `step`: `write(tmp)` puts the files into the temporary folder `tmp` (any layout,
   * subfolders allowed); `meta` goes into the manifest. Returns the published folder.
   */
  async save(step: number, write: (tmp: string) => Promise<void> | void, meta: Record<string, unknown> = {}): Promise<string> {
    if (!(Number.isSafeInteger(step) && step >= 0)) throw new ArgumentError(`CheckpointStore.save: step must be a non-negative integer, got ${step}`);
    const name = stepDirName(step);
    const tmp = path.join(this.root, `.tmp-${name}-${process.pid}`);
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp);
    const final = path.join(this.root, name);
    try {
      await write(tmp);
      const files: Manifest['files'] = {};
      for (const rel of listFiles(tmp)) files[rel] = hashFile(path.join(tmp, ...rel.split('/')));
      const manifest: Manifest = { format: MANIFEST_FORMAT, version: MANIFEST_VERSION, step, created: new Date().toISOString(), files, meta };
      writeFileAtomic(path.join(tmp, MANIFEST_FILE), `${JSON.stringify(manifest, null, 1)}\n`);
      fsyncTree(tmp);
      await this.opts.beforeCommit?.(tmp);
      await faultHook?.(tmp);
      if (fs.existsSync(final)) {
        // The same step again (a resumed run re-saving it): move the old one aside first; a crash in between
        // loses only this step, and the older checkpoints remain.
        const trash = path.join(this.root, `.trash-${name}-${process.pid}`);
        fs.rmSync(trash, { recursive: true, force: true });
        fs.renameSync(final, trash);
        fs.renameSync(tmp, final);
        fs.rmSync(trash, { recursive: true, force: true });
      } else {
        fs.renameSync(tmp, final);
      }
      fsyncPath(this.root);
    } catch (e) {
      fs.rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
    this.prune();
    return final;
  }

  /** Removes all but the newest `keep` checkpoints. */
  prune(): void {
    const all = this.list();
    for (const c of all.slice(0, Math.max(0, all.length - this.keep))) fs.rmSync(c.dir, { recursive: true, force: true });
  }

  /** Verifies one checkpoint folder (manifest + every hash); throws CheckpointError. */
  load(dir: string): LoadedCheckpoint {
    const m = STEP_RE.exec(path.basename(dir));
    const manifest = verifyCheckpoint(dir);
    if (m && Number(m[1]) !== manifest.step) throw new CheckpointError(path.join(dir, MANIFEST_FILE), `records step ${manifest.step} but the folder is ${path.basename(dir)}`);
    return { step: manifest.step, dir, manifest };
  }

  /**
   * The newest checkpoint that verifies, or null when there is none. Each newer one that fails is passed to
   * `onCorrupt` (e.g. logged: "checkpoint step-… is corrupted (…); falling back").
   */
  latest(onCorrupt?: (dir: string, error: CheckpointError) => void): LoadedCheckpoint | null {
    for (const c of this.list().reverse()) {
      try {
        return this.load(c.dir);
      } catch (e) {
        if (!(e instanceof CheckpointError)) throw e;
        onCorrupt?.(c.dir, e);
      }
    }
    return null;
  }

  /**
   * Cleans up after an interrupted save: temporary folders go; a complete checkpoint moved aside to be
   * replaced (`.trash-step-…`) whose replacement never arrived is put back.
   */
  private removeLeftovers(): void {
    for (const e of fs.readdirSync(this.root)) {
      if (!TEMP_PREFIXES.some((p) => e.startsWith(p))) continue;
      const p = path.join(this.root, e);
      const name = /^\.trash-(step-\d+)-\d+$/.exec(e)?.[1];
      if (name && !fs.existsSync(path.join(this.root, name))) fs.renameSync(p, path.join(this.root, name));
      else fs.rmSync(p, { recursive: true, force: true });
    }
  }
}
