// Positioned reads through a file descriptor, in chunks below fs's 2 GiB − 1 limit per call.
import * as fs from 'node:fs';
import { SafetensorsError } from './error.js';

export const MAX_READ = 0x40000000; // 1 GiB per read call (fs.read takes at most 2 GiB − 1)

export function readFully(fd: number, into: Uint8Array, position: number, file: string, key: string | null = null): void {
  let done = 0;
  while (done < into.byteLength) {
    const len = Math.min(MAX_READ, into.byteLength - done);
    const n = fs.readSync(fd, into, done, len, position + done);
    if (n === 0) throw new SafetensorsError(file, key, `file ended at byte ${position + done} while reading`);
    done += n;
  }
}
