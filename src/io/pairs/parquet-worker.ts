// hyparquet runs in a worker thread with a deadline. Fuzzing found corrupt files on which hyparquet 1.33 loops
// forever (a page header missing repetition_levels_byte_length sets its read offset to NaN, and every read then
// returns byte 0); a synchronous loop cannot be interrupted from its own thread, so parsing happens in a worker
// that is terminated when it overruns, and the row group is reported as unreadable. It also takes the parquet
// decoding (decompression, page parsing) off the thread that drives the GPU.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

/** What the worker reports about a file's footer. */
export interface ParquetFooter {
  columns: string[];
  numRows: number;
  /** Rows and compressed bytes of each row group. */
  groups: { rows: number; bytes: number }[];
}

// Plain JS (the worker is started from source, so it runs the same under vitest, from dist/ and from a package).
// Byte columns come back as fresh buffers that are transferred, not copied; a Hugging Face Image struct
// {bytes, path} is reduced to its bytes.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
let hp;
const files = new Map();
async function open(path) {
  let f = files.get(path);
  if (!f) {
    const file = await hp.asyncBufferFromFile(path);
    f = { file, metadata: await hp.parquetMetadataAsync(file) };
    files.set(path, f);
  }
  return f;
}
parentPort.on('message', async (req) => {
  try {
    hp ??= await import(workerData.hyparquet);
    const { file, metadata } = await open(req.path);
    if (req.op === 'footer') {
      const columns = hp.parquetSchema(metadata).children.map((c) => c.element.name);
      const groups = metadata.row_groups.map((g) => ({
        rows: Number(g.num_rows),
        bytes: g.columns.reduce((a, c) => a + Number(c.meta_data ? c.meta_data.total_compressed_size : 0), 0),
      }));
      parentPort.postMessage({ id: req.id, footer: { columns, numRows: Number(metadata.num_rows), groups } });
      return;
    }
    const rows = await hp.parquetReadObjects({ file, metadata, columns: req.columns, rowStart: req.rowStart, rowEnd: req.rowEnd, utf8: false });
    const transfer = [];
    for (const r of rows) {
      for (const k of Object.keys(r)) {
        let v = r[k];
        if (v && typeof v === 'object' && v.bytes instanceof Uint8Array) v = v.bytes;
        if (v instanceof Uint8Array) {
          v = v.slice();
          transfer.push(v.buffer);
          r[k] = v;
        }
      }
    }
    parentPort.postMessage({ id: req.id, rows }, transfer);
  } catch (e) {
    parentPort.postMessage({ id: req.id, error: e instanceof Error ? e.message : String(e) });
  }
});
`;

let hyparquetUrl: string | undefined;

/** Thrown when the worker overran its deadline (it has been terminated). */
export class ParquetTimeoutError extends Error {}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** One worker, one request at a time; restarted after a deadline kills it. */
export class ParquetWorker {
  private worker: Worker | null = null;
  private nextId = 0;
  private pending = new Map<number, Pending>();

  /** Deadline of a request: `baseMs` plus `msPerMB` per MB of compressed data it reads. */
  constructor(private readonly baseMs = 30_000, private readonly msPerMB = 1_000) {}

  footer(path: string): Promise<ParquetFooter> {
    return this.request({ op: 'footer', path }, 0) as Promise<ParquetFooter>;
  }

  rows(path: string, columns: string[], rowStart: number, rowEnd: number, bytes: number): Promise<Record<string, unknown>[]> {
    return this.request({ op: 'rows', path, columns, rowStart, rowEnd }, bytes) as Promise<Record<string, unknown>[]>;
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }

  private spawn(): Worker {
    hyparquetUrl ??= pathToFileURL(createRequire(import.meta.url).resolve('hyparquet')).href;
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { hyparquet: hyparquetUrl } });
    w.on('message', (m: { id: number; error?: string; footer?: ParquetFooter; rows?: Record<string, unknown>[] }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.error !== undefined) p.reject(new Error(m.error));
      else p.resolve(m.footer ?? m.rows);
    });
    const fail = (e: Error): void => {
      if (this.worker === w) this.worker = null;
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject(e);
      }
      this.pending.clear();
    };
    w.on('error', (e) => fail(e));
    w.on('exit', (code) => fail(new Error(`parquet worker exited (code ${code})`)));
    w.unref(); // an idle worker never keeps the process alive
    return w;
  }

  private request(req: Record<string, unknown>, bytes: number): Promise<unknown> {
    const w = (this.worker ??= this.spawn());
    const id = this.nextId++;
    const ms = this.baseMs + (bytes / 1e6) * this.msPerMB;
    w.ref(); // a request in flight does
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        if (this.worker === w) this.worker = null;
        void w.terminate();
        reject(new ParquetTimeoutError(`parsing did not finish within ${(ms / 1000).toFixed(1)} s (corrupt data?)`));
      }, ms);
      this.pending.set(id, { resolve, reject, timer });
      w.postMessage({ ...req, id });
    }).finally(() => {
      if (this.worker === w && this.pending.size === 0) w.unref();
    });
  }
}
