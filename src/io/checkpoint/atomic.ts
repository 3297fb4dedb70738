// Durable, all-or-nothing file writes: data goes to a temporary name in the same folder, is fsynced, and is
// renamed over the destination; the folder is then fsynced so the rename itself survives a power cut. A process
// killed at any point leaves either the old file or the new one, never a mixture (rename(2) is atomic on POSIX).
import * as fs from 'node:fs';
import * as path from 'node:path';

/** A temporary name beside `target` that no other process or call uses. */
export function tempNameFor(target: string): string {
  const rand = Math.floor(Math.random() * 0x100000000).toString(16).padStart(8, '0');
  return path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}-${rand}`);
}

/** fsyncs a file or folder by path (folders: makes the names created or renamed in it durable). */
export function fsyncPath(p: string): void {
  const fd = fs.openSync(p, 'r');
  try {
    fs.fsyncSync(fd);
  } catch (e) {
    // Some file systems refuse fsync on a folder descriptor (EINVAL/EISDIR); the data files were synced already.
    const code = (e as NodeJS.ErrnoException).code;
    if (!(code === 'EINVAL' || code === 'EISDIR') || !fs.fstatSync(fd).isDirectory()) throw e;
  } finally {
    fs.closeSync(fd);
  }
}

/** fsyncs every file and folder under `dir`, and `dir` itself (before a folder is renamed into place). */
export function fsyncTree(dir: string): void {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) fsyncTree(p);
    else if (e.isFile()) fsyncPath(p);
  }
  fsyncPath(dir);
}

/** Writes `data` to `file` atomically and durably (temporary file, fsync, rename, fsync of the folder). */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const tmp = tempNameFor(file);
  try {
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeFileSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fsyncPath(path.dirname(path.resolve(file)));
}

/**
 * Runs `write(tmp)` to produce a file at a temporary path, then fsyncs and renames it over `file` (for writers
 * that stream to a path themselves, such as writeSafetensors).
 */
export async function writeFileAtomicWith(file: string, write: (tmp: string) => Promise<void> | void): Promise<void> {
  const tmp = tempNameFor(file);
  try {
    await write(tmp);
    fsyncPath(tmp);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fsyncPath(path.dirname(path.resolve(file)));
}
