// Seeded host-side randomness: the same seed gives the same numbers on every adapter, because
// they are made on the CPU in exact integer arithmetic and uploaded.
import { ArgumentError } from '../errors.js';

/** A Generator's whole state: the four xoshiro words and the cached second Box–Muller normal (checkpoints). */
export interface GeneratorState {
  s: number[];
  spare: number | null;
}

/** xoshiro128** seeded by splitmix32: small, fast, good statistical quality. */
export class Generator {
  private s = new Uint32Array(4);
  private spare: number | null = null;

  constructor(seed = 0) {
    this.manualSeed(seed);
  }

  manualSeed(seed: number): this {
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    this.spare = null;
    return this;
  }

  /** The state to resume this exact stream later (setState). */
  getState(): GeneratorState {
    return { s: Array.from(this.s), spare: this.spare };
  }

  setState(st: GeneratorState): this {
    if (!Array.isArray(st.s) || st.s.length !== 4 || !st.s.every((x) => Number.isInteger(x) && x >= 0 && x < 2 ** 32)) {
      throw new ArgumentError(`Generator.setState: s must be four unsigned 32-bit integers, got ${JSON.stringify(st.s)}`);
    }
    if (!(st.spare === null || Number.isFinite(st.spare))) throw new ArgumentError(`Generator.setState: spare must be null or a number, got ${st.spare}`);
    this.s.set(st.s);
    this.spare = st.spare;
    return this;
  }

  nextU32(): number {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return r;
  }

  /** Uniform in [0, 1) with 32 random bits. */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** Standard normal (Box–Muller in float64). */
  normal(): number {
    if (this.spare !== null) { const v = this.spare; this.spare = null; return v; }
    const u1 = (this.nextU32() + 1) / 4294967297; // (0, 1]
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }

  normalArray(n: number, mean = 0, std = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = mean + std * this.normal();
    return out;
  }

  uniformArray(n: number, low = 0, high = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = low + (high - low) * this.uniform();
    return out;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
