import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLIPTokenizer, TokenizerError, cleanText, findAsset } from '../src/io/tokenizer.js';
import { htmlUnescape } from '../src/io/html-entities.js';

interface GoldenPrompt {
  prompt: string;
  ids: number[];
  cleaned_text: string;
  bpe_tokens_without_special: string[];
  truncated: boolean;
  num_tokens_with_bos_eos_before_truncation: number;
}
const golden = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures/golden/tokenizer/prompts_ids.json'), 'utf8')) as {
  prompts: GoldenPrompt[];
  bos_id: number;
  eos_id: number;
  pad_id: number;
  max_length: number;
};

describe('CLIP tokenizer', () => {
  const tok = CLIPTokenizer.fromFile();

  it('loads the vocabulary from assets/ (49408 entries, BOS 49406, EOS 49407)', () => {
    expect(findAsset('bpe_simple_vocab_16e6.txt.gz')).toMatch(/assets[\\/]bpe_simple_vocab_16e6\.txt\.gz$/);
    expect(tok.vocabSize).toBe(49408);
    expect(tok.bosId).toBe(golden.bos_id);
    expect(tok.eosId).toBe(golden.eos_id);
  });

  it.each(golden.prompts.map((p) => [JSON.stringify(p.prompt).slice(0, 60), p] as const))('matches the golden ids for %s', (_name, p) => {
    expect(cleanText(p.prompt)).toBe(p.cleaned_text);
    expect(tok.tokenize(p.prompt)).toEqual(p.bpe_tokens_without_special);
    const ids = tok.encode(p.prompt);
    expect(ids).toHaveLength(golden.max_length);
    expect(ids).toEqual(p.ids);
    expect(tok.encodeRaw(p.prompt).length + 2).toBe(p.num_tokens_with_bos_eos_before_truncation);
  });

  it('covers truncation and ftfy-sensitive prompts', () => {
    expect(golden.prompts.some((p) => p.truncated)).toBe(true);
    const long = golden.prompts.find((p) => p.truncated)!;
    expect(tok.encode(long.prompt)[76]).toBe(49407);
  });

  it('encodes batches and decodes', () => {
    const texts = golden.prompts.slice(0, 3).map((p) => p.prompt);
    expect(tok.encodeBatch(texts)).toEqual(golden.prompts.slice(0, 3).map((p) => p.ids));
    const flat = tok.encodeBatchInt32(texts);
    expect(flat.length).toBe(3 * 77);
    expect(Array.from(flat.subarray(77, 154))).toEqual(golden.prompts[1].ids);
    expect(tok.decode(golden.prompts[0].ids)).toBe('a photo of an astronaut riding a horse on mars');
    expect(tok.decode(tok.encode('Café 日本語 🐱'))).toBe('café 日本語 🐱');
  });

  it('cleans like ftfy + html.unescape twice', () => {
    expect(cleanText('&amp;amp; ＦＵＬＬ　width ﬂower\r\n“x”\u0085y')).toBe('& full width flower "x" y');
    expect(htmlUnescape('&lt;b&gt; &ampx &#39; &#x41; &#128; &#0; &notit; &unknown;')).toBe("<b> &x ' A € \ufffd ¬it; &unknown;");
  });

  it('reports a bad vocabulary file as a TokenizerError', () => {
    expect(() => CLIPTokenizer.fromFile('/nonexistent/vocab.txt.gz')).toThrow(TokenizerError);
    expect(() => CLIPTokenizer.fromFile(path.join(__dirname, 'fixtures/golden/tokenizer/prompts_ids.json'))).toThrow(/merges/);
  });
});
