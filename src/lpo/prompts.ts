// Prompt files for the LPO trainer, and the seeded order in which it walks them.
//
// Accepted: the authors' JSON ([{"caption": …, "trainset_idx": …}, …], as lpo/prompts/4k_training_prompts.json),
// a JSON array of strings, or plain text with one prompt per line (blank lines skipped). Anything else —
// an empty file, an empty or absurdly long prompt, a JSON entry without a caption — is a FileFormatError
// naming the file and the entry.
import { readFileSync } from 'node:fs';
import { ArgumentError, FileFormatError } from '../errors.js';
import { Generator } from '../tensor/random.js';

/** Longer than any caption a CLIP tokenizer can use (77 tokens) by far: a sign of a wrong file. */
export const MAX_PROMPT_CHARS = 4096;

function check(file: string, where: string, p: unknown): string {
  if (typeof p !== 'string') throw new FileFormatError(file, `${where}: expected a string caption, got ${JSON.stringify(p)?.slice(0, 60)}`);
  const s = p.trim();
  if (s.length === 0) throw new FileFormatError(file, `${where}: empty prompt`);
  if (s.length > MAX_PROMPT_CHARS) throw new FileFormatError(file, `${where}: prompt of ${s.length} characters (more than ${MAX_PROMPT_CHARS}); is this a prompt file?`);
  return s;
}

/** Parses prompt-file text (JSON when it starts with '[' or '{', else one prompt per line). */
export function parsePrompts(text: string, file = '<prompts>'): string[] {
  const body = text.replace(/^\uFEFF/, '');
  if (body.trim().length === 0) throw new FileFormatError(file, 'is empty: no prompts');
  const head = body.trimStart()[0];
  let out: string[];
  if (head === '[' || head === '{') {
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch (e) {
      throw new FileFormatError(file, `is not valid JSON: ${(e as Error).message}`);
    }
    if (!Array.isArray(json)) throw new FileFormatError(file, 'JSON prompt files hold an array (of strings, or of objects with a "caption")');
    out = json.map((e, i) => {
      if (e && typeof e === 'object' && !Array.isArray(e)) {
        const o = e as Record<string, unknown>;
        if (!('caption' in o)) throw new FileFormatError(file, `entry ${i}: an object without a "caption" field`);
        return check(file, `entry ${i}`, o.caption);
      }
      return check(file, `entry ${i}`, e);
    });
  } else {
    out = [];
    body.split(/\r?\n/).forEach((line, i) => {
      if (line.trim().length) out.push(check(file, `line ${i + 1}`, line));
    });
  }
  if (out.length === 0) throw new FileFormatError(file, 'holds no prompts');
  return out;
}

export function readPrompts(file: string): string[] {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new FileFormatError(file, `cannot be read: ${(e as Error).message}`);
  }
  let text: string;
  try {
    // Strict: a file in another encoding would otherwise become prompts full of U+FFFD.
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new FileFormatError(file, 'is not valid UTF-8 text');
  }
  return parsePrompts(text, file);
}

/**
 * A generator seeded from (seed, stream, index): the trainer's randomness is a pure function of the
 * iteration, so a checkpoint needs only the seed and the position to continue exactly.
 */
export function derivedGenerator(seed: number, stream: number, index: number): Generator {
  let h = (seed >>> 0) ^ Math.imul(stream + 1, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 15), 0x85ebca77) >>> 0;
  h = (h + Math.imul(index + 1, 0xc2b2ae3d)) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0x27d4eb2f) >>> 0;
  return new Generator((h ^ (h >>> 16)) >>> 0);
}

/** A seeded permutation of 0…n−1 (Fisher–Yates). */
export function permutation(n: number, gen: Generator): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(gen.uniform() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

/** Where the trainer is in the prompt file: epoch and the batch within it (drop_last = false, as the authors). */
export interface DataPosition { epoch: number; batch: number }

/** Walks epochs of shuffled prompt batches; every epoch has its own seeded order. */
export class PromptSchedule {
  readonly batchesPerEpoch: number;

  constructor(readonly prompts: readonly string[], readonly batchSize: number, readonly seed: number) {
    if (prompts.length === 0) throw new ArgumentError('PromptSchedule: no prompts');
    if (!(Number.isInteger(batchSize) && batchSize >= 1)) throw new ArgumentError(`PromptSchedule: batch size must be a positive integer, got ${batchSize}`);
    this.batchesPerEpoch = Math.ceil(prompts.length / batchSize);
  }

  /** The position of iteration i (0-based) counted from the start. */
  position(iteration: number): DataPosition {
    return { epoch: Math.floor(iteration / this.batchesPerEpoch), batch: iteration % this.batchesPerEpoch };
  }

  /** The prompts of one batch. */
  batch(pos: DataPosition): string[] {
    const order = permutation(this.prompts.length, derivedGenerator(this.seed, 1, pos.epoch));
    return order.slice(pos.batch * this.batchSize, (pos.batch + 1) * this.batchSize).map((i) => this.prompts[i]);
  }
}
