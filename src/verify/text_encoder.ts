// verify-reference section `text_encoder`: transformers' CLIPTextModel (last_hidden_state, pooler_output, hidden_states.i).
import type { SectionRunner } from './types.js';
import { textEncoderOf } from './models.js';

export const textEncoderRunner: SectionRunner = {
  section: 'text_encoder',
  describe: 'CLIPTextModel from config.json + weights.safetensors (strict keys) on input_ids',
  async run(ctx) {
    const model = await textEncoderOf(ctx);
    const ids = await ctx.tensor('input_ids');
    const out = model.forward({ data: ids.data, shape: [ids.shape[0], ids.shape[1]] }, { outputHiddenStates: true });
    const hidden = out.hiddenStates ?? [];
    const all = [out.lastHiddenState, out.poolerOutput, ...hidden];
    for (const [name] of ctx.outputs()) {
      let m: RegExpMatchArray | null;
      const t = name === 'last_hidden_state' ? out.lastHiddenState
        : name === 'pooler_output' ? out.poolerOutput
        : (m = name.match(/^hidden_states\.(\d+)$/)) ? hidden[Number(m[1])] : undefined;
      if (t) await ctx.produce(name, await t.toArray(), t.shape);
    }
    for (const t of new Set(all)) t.dispose();
  },
};
