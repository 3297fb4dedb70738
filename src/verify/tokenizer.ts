// verify-reference section `tokenizer`: CLIP BPE ids of each prompt in prompts_ids.json (exact).
import { CLIPTokenizer } from '../io/tokenizer.js';
import type { SectionRunner } from './types.js';

interface PromptEntry { prompt: string; ids: number[] }

export const tokenizerRunner: SectionRunner = {
  section: 'tokenizer',
  describe: 'CLIPTokenizer (openai/CLIP BPE) on every prompt of prompts_ids.json',
  async run(ctx) {
    const files = Object.keys(ctx.spec.files ?? {});
    const vocab = files.find((f) => /\.txt(\.gz)?$/.test(f) || /merges\.txt$/.test(f));
    const idsFile = files.find((f) => /prompts_ids\.json$/.test(f)) ?? 'tokenizer/prompts_ids.json';
    const tok = CLIPTokenizer.fromFile(vocab ? ctx.file(vocab) : undefined);
    const data = ctx.json<{ prompts: PromptEntry[] }>(idsFile.replace(/^tokenizer\//, ''));
    data.prompts.forEach((p, i) => {
      const short = p.prompt.length > 28 ? `${p.prompt.slice(0, 27)}…` : p.prompt;
      ctx.compare(`prompt.${i} ${JSON.stringify(short)}`, tok.encode(p.prompt), p.ids, { dtype: 'int64' });
    });
  },
};
