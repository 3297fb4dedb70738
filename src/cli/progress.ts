// The one progress display: on a terminal it redraws one line in place (bar, step/total, your fields, rate,
// ETA); anywhere else (CI logs, nohup, a pipe) it prints a plain line every few percent and at the end, so a
// log file stays readable. Library code can use it too by passing its own stream.
import { ArgumentError } from '../errors.js';

/** Where progress goes: process.stderr by default; anything with write() (and isTTY, columns if it is a terminal). */
export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export type ProgressFields = Readonly<Record<string, number | string>>;

export interface ProgressOptions {
  /** Number of steps to completion (0 is allowed: `done()` prints the one final line). */
  total: number;
  /** What is counted, first on the line (`train`, `denoise`). */
  label?: string;
  /** Default process.stderr. */
  stream?: ProgressStream;
  /** Redraw in place (default: stream.isTTY). */
  tty?: boolean;
  /** Without a TTY: a line each time progress crosses a multiple of this many percent (default 10). */
  everyPercent?: number;
  /** With a TTY: at most one redraw per this many ms, except the last (default 100). */
  redrawMs?: number;
  /** Clock in ms (tests pass a fake one). */
  now?: () => number;
}

/** Formats a field value: integers as they are, others with 4 significant digits, very small or large ones in e-notation. */
export function formatValue(v: number | string): string {
  if (typeof v === 'string') return v;
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v) && Math.abs(v) < 1e9) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2);
  return String(Number(v.toPrecision(4)));
}

/** 75 → "1:15", 3725 → "1:02:05". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/**
 * `const p = new Progress({ total: steps, label: 'train' }); … p.tick({ loss, lr }); … p.done();`
 * Completed steps go to update()/tick(); messages that must not break the bar go to log().
 */
export class Progress {
  readonly total: number;
  private readonly label: string;
  private readonly stream: ProgressStream;
  private readonly tty: boolean;
  private readonly every: number;
  private readonly redrawMs: number;
  private readonly now: () => number;
  private readonly start: number;
  private step = 0;
  private fields: ProgressFields = {};
  private lastDraw = -Infinity;
  private nextPercent: number;
  private drawn = false;
  private finished = false;

  constructor(opts: ProgressOptions) {
    if (!Number.isInteger(opts.total) || opts.total < 0) throw new ArgumentError(`Progress: total must be an integer ≥ 0, got ${opts.total}`);
    if (!(opts.everyPercent === undefined || opts.everyPercent > 0)) throw new ArgumentError(`Progress: everyPercent must be > 0, got ${opts.everyPercent}`);
    this.total = opts.total;
    this.label = opts.label ?? '';
    this.stream = opts.stream ?? process.stderr;
    this.tty = opts.tty ?? this.stream.isTTY === true;
    this.every = opts.everyPercent ?? 10;
    this.redrawMs = opts.redrawMs ?? 100;
    this.now = opts.now ?? (() => performance.now());
    this.start = this.now();
    this.nextPercent = this.every;
  }

  /** Sets the number of completed steps (and the fields shown beside it, e.g. `{ loss, lr }`). */
  update(step: number, fields?: ProgressFields): void {
    if (this.finished) return;
    this.step = Math.max(0, Math.min(step, this.total));
    if (fields) this.fields = fields;
    if (this.step >= this.total) {
      this.done();
      return;
    }
    const t = this.now();
    if (this.tty) {
      if (t - this.lastDraw < this.redrawMs) return;
      this.lastDraw = t;
      this.redraw();
      return;
    }
    // A line at the first step (the rate and ETA show early) and each time a multiple of `every` % is crossed.
    const pct = (100 * this.step) / this.total;
    if (pct + 1e-9 >= this.nextPercent || (!this.drawn && this.step > 0)) {
      while (pct + 1e-9 >= this.nextPercent) this.nextPercent += this.every;
      this.drawn = true;
      this.stream.write(`${this.line()}\n`);
    }
  }

  /** One more step done. */
  tick(fields?: ProgressFields): void {
    this.update(this.step + 1, fields);
  }

  /** Prints the final line (and ends the in-place line on a TTY). Further updates are ignored. */
  done(fields?: ProgressFields): void {
    if (this.finished) return;
    if (fields) this.fields = fields;
    this.finished = true;
    this.step = this.total;
    this.stream.write(this.tty ? `\r${this.line()}\x1b[K\n` : `${this.line()}\n`);
  }

  /** Prints a message on its own line without garbling the bar (on a TTY the bar is redrawn under it). */
  log(message: string): void {
    if (this.tty && this.drawn && !this.finished) {
      this.stream.write(`\r\x1b[K${message}\n`);
      this.redraw();
    } else this.stream.write(`${message}\n`);
  }

  private redraw(): void {
    this.drawn = true;
    let line = this.line(true);
    const cols = this.stream.columns;
    if (cols && line.length > cols - 1) line = line.slice(0, cols - 1);
    this.stream.write(`\r${line}\x1b[K`);
  }

  /** `label [####....] 12/100 12% loss=0.25 3.1 it/s elapsed 0:04 eta 0:28` (the bar only on a TTY). */
  private line(bar = false): string {
    const elapsed = (this.now() - this.start) / 1000;
    const frac = this.total === 0 ? 1 : this.step / this.total;
    const parts: string[] = [];
    if (this.label) parts.push(this.label);
    if (bar) {
      const w = 20;
      const k = Math.round(frac * w);
      parts.push(`[${'#'.repeat(k)}${'.'.repeat(w - k)}]`);
    }
    parts.push(`${this.step}/${this.total}`, `${Math.floor(frac * 100)}%`);
    for (const [k, v] of Object.entries(this.fields)) parts.push(`${k}=${formatValue(v)}`);
    if (this.step > 0 && elapsed > 0) {
      const rate = this.step / elapsed;
      parts.push(rate >= 1 ? `${formatValue(rate)} it/s` : `${formatValue(1 / rate)} s/it`);
    }
    parts.push(`elapsed ${formatDuration(elapsed)}`);
    if (this.step > 0 && this.step < this.total) parts.push(`eta ${formatDuration((elapsed / this.step) * (this.total - this.step))}`);
    return parts.join(' ');
  }
}
