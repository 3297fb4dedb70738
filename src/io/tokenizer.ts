// The CLIP BPE tokenizer (openai/CLIP simple_tokenizer.py), with Stable Diffusion 1.x conventions:
// ids = [49406] + bpe(clean(text)) + [49407], cut to 77 (the last kept id becomes 49407), padded with 49407.
//
// clean(x) = whitespace_clean(html.unescape(html.unescape(ftfy.fix_text(x))).strip()).lower().
// ftfy.fix_text is approximated by the steps that matter for prompts: HTML entities, terminal escapes,
// Latin ligatures (ﬁ → fi), full-width characters (NFKC), curly quotes → straight, line breaks, control
// characters and NFC. ftfy's mojibake repair (fix_encoding) is not reproduced.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { ArgumentError, FileFormatError } from '../errors.js';
import { htmlUnescape } from './html-entities.js';

/**
 * The vocabulary (merges) file is missing or malformed: `new TokenizerError(file, problem)`. The one-argument
 * form is for a problem found before there is a file (no vocabulary found); it names CLIP's vocabulary file.
 */
export class TokenizerError extends FileFormatError {
  constructor(fileOrProblem: string, problem?: string) {
    super(problem === undefined ? VOCAB_FILE : fileOrProblem, problem ?? fileOrProblem);
  }
}

export const BOS_ID = 49406;
export const EOS_ID = 49407;
export const PAD_ID = 49407;
export const MAX_LENGTH = 77;
/** Merges used by CLIP: lines 1..48894 of the gz file (49152 − 256 − 2 entries). */
export const NUM_MERGES = 49152 - 256 - 2;
export const VOCAB_FILE = 'bpe_simple_vocab_16e6.txt.gz';

/**
 * The UTF-8 byte → printable character map of GPT-2/CLIP, as [byte, char] pairs in the reference's dict order
 * (the printable bytes first): that order is also the order of the first 256 vocabulary entries.
 */
export function bytesToUnicodePairs(): [number, string][] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  return bs.map((b, i) => [b, String.fromCodePoint(cs[i])]);
}

/** The byte → character map indexed by byte. */
export function bytesToUnicode(): string[] {
  const out = new Array<string>(256);
  for (const [b, c] of bytesToUnicodePairs()) out[b] = c;
  return out;
}

// ---- ftfy-like cleaning -----------------------------------------------------------------------------------

/** ftfy's fix_latin_ligatures table. */
const LIGATURES: Record<string, string> = {
  'Ĳ': 'IJ', 'ĳ': 'ij', 'ŉ': 'ʼn', 'Ǆ': 'DŽ', 'ǅ': 'Dž', 'ǆ': 'dž', 'Ǉ': 'LJ', 'ǈ': 'Lj', 'ǉ': 'lj',
  'Ǌ': 'NJ', 'ǋ': 'Nj', 'ǌ': 'nj', 'ﬀ': 'ff', 'ﬁ': 'fi', 'ﬂ': 'fl', 'ﬃ': 'ffi', 'ﬄ': 'ffl', 'ﬅ': 'ſt', 'ﬆ': 'st',
};
const LIGATURE_RE = new RegExp(`[${Object.keys(LIGATURES).join('')}]`, 'gu');
/** ftfy's fix_character_width: full-width/half-width forms → NFKC, the ideographic space → ' '. */
const WIDTH_RE = /[\uff01-\uffef]/gu;
/** ftfy's uncurl_quotes. */
const SINGLE_QUOTE_RE = /[\u02bc\u2018-\u201b]/gu;
const DOUBLE_QUOTE_RE = /[\u201c-\u201f]/gu;
/** ftfy's remove_terminal_escapes. */
const ANSI_RE = /\x1b\[((?:\d|;)*)([a-zA-Z])/g;
/** ftfy's fix_line_breaks. */
const LINE_BREAK_RE = /\r\n|[\r\u2028\u2029\u0085]/g;
/** ftfy's remove_control_chars (the characters it deletes). */
const CONTROL_RE = /[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc\u{1d173}-\u{1d17a}\u{e0000}-\u{e007f}]/gu;
/** Python's str.isspace() characters (what `re`'s \s and str.strip() use). */
const PY_SPACE = '\\t\\n\\v\\f\\r \\x1c-\\x1f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_SPACE_RUN = new RegExp(`[${PY_SPACE}]+`, 'gu');
const PY_STRIP = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'gu');

function pyStrip(s: string): string {
  return s.replace(PY_STRIP, '');
}

/** One pass of the ftfy steps we reproduce. */
function ftfyPass(text: string, unescape: boolean): string {
  let t = text;
  if (unescape) t = htmlUnescape(t);
  t = t.replace(ANSI_RE, '');
  t = t.replace(LIGATURE_RE, (c) => LIGATURES[c]);
  t = t.replace(WIDTH_RE, (c) => c.normalize('NFKC')).replace(/\u3000/g, ' ');
  t = t.replace(SINGLE_QUOTE_RE, "'").replace(DOUBLE_QUOTE_RE, '"');
  t = t.replace(LINE_BREAK_RE, '\n');
  t = t.replace(CONTROL_RE, '');
  return t.normalize('NFC');
}

/** An approximation of ftfy.fix_text (see the file comment): repeated until nothing changes, as ftfy does. */
export function fixText(text: string): string {
  // ftfy unescapes entities only when the text holds no '<' (it might be HTML otherwise).
  const unescape = !text.includes('<');
  let t = text;
  for (let i = 0; i < 16; i++) {
    const next = ftfyPass(t, unescape);
    if (next === t) break;
    t = next;
  }
  return t;
}

/** whitespace_clean(basic_clean(text)).lower() of CLIP's simple_tokenizer. */
export function cleanText(text: string): string {
  const basic = pyStrip(htmlUnescape(htmlUnescape(fixText(text))));
  return pyStrip(basic.replace(PY_SPACE_RUN, ' ')).toLowerCase();
}

// ---- BPE ---------------------------------------------------------------------------------------------------

const PRETOKENIZE = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/giu;
const SPECIAL = new Set(['<|startoftext|>', '<|endoftext|>']);

/** Finds assets/<name> in the nearest ancestor of this module's folder (works from src/ and from the bundled dist/). */
export function findAsset(name: string): string | null {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const p = path.join(dir, 'assets', name);
    if (fs.existsSync(p)) return p;
    const up = path.dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

export class CLIPTokenizer {
  readonly encoder: Map<string, number>;
  readonly decoder: string[];
  private readonly ranks: Map<string, number>;
  private readonly byteEncoder = bytesToUnicode();
  private readonly byteDecoder: Map<string, number>;
  private readonly cache = new Map<string, string[]>();

  /** `merges`: the BPE merge pairs in rank order ("a b"), 48894 of them for CLIP. */
  constructor(merges: readonly string[], readonly maxLength = MAX_LENGTH) {
    const symbols = bytesToUnicodePairs().map(([, c]) => c);
    const vocab = [...symbols, ...symbols.map((c) => c + '</w>')];
    this.ranks = new Map();
    merges.forEach((m, i) => {
      const parts = m.split(' ');
      if (parts.length !== 2 || !parts[0] || !parts[1]) throw new TokenizerError(`merge ${i + 1} ${JSON.stringify(m).slice(0, 80)} is not two symbols`);
      this.ranks.set(m, i);
      vocab.push(parts[0] + parts[1]);
    });
    vocab.push('<|startoftext|>', '<|endoftext|>');
    this.decoder = vocab;
    this.encoder = new Map(vocab.map((v, i) => [v, i]));
    this.byteDecoder = new Map(this.byteEncoder.map((c, b) => [c, b]));
  }

  get bosId(): number { return this.encoder.get('<|startoftext|>')!; }
  get eosId(): number { return this.encoder.get('<|endoftext|>')!; }
  get vocabSize(): number { return this.decoder.length; }

  /**
   * Loads the merges from openai/CLIP's `bpe_simple_vocab_16e6.txt.gz` (default: the copy in assets/), or from a
   * Hugging Face `merges.txt` (first line `#version: …`).
   */
  static fromFile(file?: string): CLIPTokenizer {
    const p = file ?? findAsset(VOCAB_FILE);
    if (!p) throw new TokenizerError(`cannot find assets/${VOCAB_FILE} above ${path.dirname(fileURLToPath(import.meta.url))}; pass the file's path`);
    let raw: Buffer;
    try {
      raw = fs.readFileSync(p);
    } catch (e) {
      throw new TokenizerError(p, `cannot read BPE vocabulary: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    let text: string;
    try {
      text = (raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw).toString('utf8');
    } catch (e) {
      throw new TokenizerError(p, `cannot decompress BPE vocabulary: ${(e as Error).message}`);
    }
    const lines = text.split('\n');
    let merges: string[];
    if (lines[0].startsWith('#version')) merges = lines.slice(1).filter((l) => l.length > 0);
    else merges = lines.slice(1, NUM_MERGES + 1);
    if (merges.length !== NUM_MERGES) {
      throw new TokenizerError(p, `BPE vocabulary has ${merges.length} merges, expected ${NUM_MERGES}`);
    }
    try {
      return new CLIPTokenizer(merges);
    } catch (e) {
      throw new TokenizerError(p, `BPE vocabulary: ${e instanceof FileFormatError ? e.problem : (e as Error).message}`);
    }
  }

  /** The BPE symbols of one pre-token (already byte-mapped). */
  private bpe(token: string): string[] {
    const hit = this.cache.get(token);
    if (hit) return hit;
    if (SPECIAL.has(token)) return [token];
    const chars = Array.from(token);
    let word = [...chars.slice(0, -1), chars[chars.length - 1] + '</w>'];
    while (word.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i < word.length - 1; i++) {
        const r = this.ranks.get(word[i] + ' ' + word[i + 1]);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const first = word[best];
      const second = word[best + 1];
      // Merge every occurrence of the pair, left to right (as simple_tokenizer does).
      const next: string[] = [];
      for (let i = 0; i < word.length; ) {
        if (i < word.length - 1 && word[i] === first && word[i + 1] === second) {
          next.push(first + second);
          i += 2;
        } else {
          next.push(word[i]);
          i += 1;
        }
      }
      word = next;
    }
    if (this.cache.size < 100_000) this.cache.set(token, word);
    return word;
  }

  /** The BPE pieces of the cleaned text, without BOS/EOS (simple_tokenizer's bpe tokens). */
  tokenize(text: string): string[] {
    const out: string[] = [];
    for (const m of cleanText(text).matchAll(PRETOKENIZE)) {
      let mapped = '';
      for (const b of Buffer.from(m[0], 'utf8')) mapped += this.byteEncoder[b];
      out.push(...this.bpe(mapped));
    }
    return out;
  }

  /** Token ids without BOS/EOS, padding or truncation. */
  encodeRaw(text: string): number[] {
    return this.tokenize(text).map((t) => {
      const id = this.encoder.get(t);
      if (id === undefined) throw new TokenizerError(`BPE piece ${JSON.stringify(t)} is not in the vocabulary`);
      return id;
    });
  }

  /** `maxLength` ids: BOS, the pieces, EOS; truncated with EOS last; padded with EOS (49407). */
  encode(text: string): number[] {
    const ids = [this.bosId, ...this.encodeRaw(text), this.eosId];
    if (ids.length > this.maxLength) {
      ids.length = this.maxLength;
      ids[this.maxLength - 1] = this.eosId;
    }
    while (ids.length < this.maxLength) ids.push(PAD_ID);
    return ids;
  }

  encodeBatch(texts: readonly string[]): number[][] {
    return texts.map((t) => this.encode(t));
  }

  /** The batch as one row-major [B, maxLength] Int32Array (for Tensor.fromArray(…, 'i32')). */
  encodeBatchInt32(texts: readonly string[]): Int32Array {
    const out = new Int32Array(texts.length * this.maxLength);
    texts.forEach((t, i) => out.set(this.encode(t), i * this.maxLength));
    return out;
  }

  /** Text of ids (special tokens dropped), as simple_tokenizer.decode does. */
  decode(ids: readonly number[]): string {
    const bytes: number[] = [];
    let text = '';
    const flush = (): void => {
      text += Buffer.from(bytes).toString('utf8');
      bytes.length = 0;
    };
    for (const id of ids) {
      if (id === this.bosId || id === this.eosId) continue;
      const piece = this.decoder[id];
      if (piece === undefined) throw new ArgumentError(`id ${id} is outside the vocabulary (${this.vocabSize})`);
      for (const ch of piece.replace(/<\/w>/g, ' ')) {
        const b = this.byteDecoder.get(ch);
        if (b === undefined) {
          flush();
          text += ch;
        } else bytes.push(b);
      }
    }
    flush();
    return text.trim();
  }
}
