// The one progress display (src/cli/progress.ts) on a fake terminal and on a plain stream (a log file, CI).
import { describe, expect, it } from 'vitest';
import { Progress, formatDuration, formatValue } from '../src/cli/progress.js';
import { ArgumentError } from '../src/errors.js';

/** A writable that records what was written; `isTTY` makes it look like a terminal. */
function sink(isTTY: boolean, columns?: number) {
  const chunks: string[] = [];
  return { chunks, isTTY, columns, write: (s: string) => chunks.push(s), text: () => chunks.join('') };
}

/** A clock the test advances by hand (ms). */
function clock() {
  let t = 1000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('Progress without a TTY (logs, CI, nohup)', () => {
  it('prints a plain line at the first step, every 10 %, and at the end: no carriage returns or escapes', () => {
    const s = sink(false);
    const c = clock();
    const p = new Progress({ total: 50, label: 'train', stream: s, now: c.now });
    for (let i = 1; i <= 50; i++) {
      c.advance(500);
      p.update(i, { loss: 1 / i, lr: 1e-4 });
    }
    p.done(); // already done by the last update: no second final line
    const lines = s.text().split('\n').filter(Boolean);
    expect(s.text()).not.toMatch(/[\r\x1b]/);
    expect(lines.map((l) => l.split(' ')[1])).toEqual(['1/50', '5/50', '10/50', '15/50', '20/50', '25/50', '30/50', '35/50', '40/50', '45/50', '50/50']);
    expect(lines[0]).toBe('train 1/50 2% loss=1 lr=1.00e-4 2 it/s elapsed 0:01 eta 0:25');
    expect(lines[5]).toBe('train 25/50 50% loss=0.04 lr=1.00e-4 2 it/s elapsed 0:13 eta 0:13');
    expect(lines.at(-1)).toBe('train 50/50 100% loss=0.02 lr=1.00e-4 2 it/s elapsed 0:25');
  });

  it('every few percent as asked, one line per crossing when a step jumps over several, slow steps as s/it', () => {
    const s = sink(false);
    const c = clock();
    const p = new Progress({ total: 7, stream: s, now: c.now, everyPercent: 25 });
    c.advance(3000);
    p.tick({ phase: 'warm' });
    c.advance(3000);
    p.update(6); // crosses 25, 50 and 75 % at once: one line
    p.done();
    const lines = s.text().split('\n').filter(Boolean);
    expect(lines).toEqual([
      '1/7 14% phase=warm 3 s/it elapsed 0:03 eta 0:18',
      '6/7 85% phase=warm 1 it/s elapsed 0:06 eta 0:01',
      '7/7 100% phase=warm 1.167 it/s elapsed 0:06',
    ]);
  });

  it('log() prints its own line; total 0 finishes with one line', () => {
    const s = sink(false);
    const p = new Progress({ total: 0, label: 'eval', stream: s, now: clock().now });
    p.log('no pairs in this split');
    p.done();
    p.tick();
    expect(s.text()).toBe('no pairs in this split\neval 0/0 100% elapsed 0:00\n');
  });
});

describe('Progress on a TTY', () => {
  it('redraws one line in place (\\r, bar, clear to end of line), throttled, then ends it with a newline', () => {
    const s = sink(true);
    const c = clock();
    const p = new Progress({ total: 4, label: 'denoise', stream: s, now: c.now });
    c.advance(250);
    p.update(1, { t: 981 });
    c.advance(10);
    p.update(2, { t: 741 }); // within 100 ms of the last redraw: skipped
    c.advance(240);
    p.update(3, { t: 501 });
    c.advance(500);
    p.update(4, { t: 1 });
    expect(s.chunks).toEqual([
      '\rdenoise [#####...............] 1/4 25% t=981 4 it/s elapsed 0:00 eta 0:01\x1b[K',
      '\rdenoise [###############.....] 3/4 75% t=501 6 it/s elapsed 0:01 eta 0:00\x1b[K',
      '\rdenoise 4/4 100% t=1 4 it/s elapsed 0:01\x1b[K\n',
    ]);
  });

  it('log() clears the bar, prints the message, redraws; the line is cut to the terminal width', () => {
    const s = sink(true, 30);
    const c = clock();
    const p = new Progress({ total: 10, stream: s, now: c.now });
    c.advance(1000);
    p.tick();
    p.log('checkpoint saved');
    expect(s.chunks[0]).toBe('\r[##..................] 1/10 1\x1b[K');
    expect(s.chunks[1]).toBe('\r\x1b[Kcheckpoint saved\n');
    expect(s.chunks[2]).toBe(s.chunks[0]);
    for (const ch of [s.chunks[0], s.chunks[2]]) expect(ch.replace(/\r|\x1b\[K/g, '').length).toBe(29);
  });

  it('tty: false forces plain lines on a terminal', () => {
    const s = sink(true);
    const p = new Progress({ total: 2, stream: s, tty: false, now: clock().now });
    p.tick();
    p.tick();
    expect(s.text()).not.toMatch(/[\r\x1b]/);
    expect(s.text().split('\n').filter(Boolean)).toHaveLength(2);
  });
});

describe('formatting and arguments', () => {
  it('formats values and durations', () => {
    expect([formatValue(3), formatValue(0.123456), formatValue(2.5e-5), formatValue(1234567.8), formatValue(0), formatValue(NaN), formatValue('x')])
      .toEqual(['3', '0.1235', '2.50e-5', '1.23e+6', '0', 'NaN', 'x']);
    expect([formatDuration(0), formatDuration(75), formatDuration(3725), formatDuration(-1)]).toEqual(['0:00', '1:15', '1:02:05', '?']);
  });

  it('rejects a negative or fractional total and a non-positive everyPercent', () => {
    expect(() => new Progress({ total: -1 })).toThrow(ArgumentError);
    expect(() => new Progress({ total: 1.5 })).toThrow(ArgumentError);
    expect(() => new Progress({ total: 3, everyPercent: 0 })).toThrow(ArgumentError);
  });
});
