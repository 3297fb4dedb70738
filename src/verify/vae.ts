// verify-reference section `vae`: diffusers' AutoencoderKL (posterior, decode, reconstruction, block features),
// and the same model loaded from legacy attention key names (query/key/value/proj_attn).
import { SafetensorsFile, type ReadTensorOptions } from '../io/safetensors.js';
import type { WeightsReader } from '../io/weights.js';
import type { AutoencoderKL } from '../nn/vae.js';
import type { Tensor } from '../tensor/tensor.js';
import type { SectionContext, SectionRunner } from './types.js';
import { vaeOf } from './models.js';

/** weights.safetensors without the current attention names, plus the legacy-named file: a legacy checkpoint. */
function legacyReader(weights: SafetensorsFile, legacy: SafetensorsFile, replaced: Set<string>): WeightsReader {
  const owner = new Map<string, SafetensorsFile>();
  for (const k of weights.keys()) if (!replaced.has(k)) owner.set(k, weights);
  for (const k of legacy.keys()) owner.set(k, legacy);
  const f = (k: string) => {
    const x = owner.get(k);
    if (!x) throw new Error(`legacy VAE checkpoint: no tensor ${k}`);
    return x;
  };
  return {
    path: `${weights.path} + ${legacy.path}`,
    metadata: {},
    keys: () => [...owner.keys()],
    has: (k) => owner.has(k),
    info: (k) => f(k).info(k),
    readF32: (k) => f(k).readF32(k),
    readInt32: (k) => f(k).readInt32(k),
    readTensor: (k, o?: ReadTensorOptions) => f(k).readTensor(k, o),
    close: async () => { weights.closeSync(); legacy.closeSync(); },
  };
}

async function runAll(ctx: SectionContext, model: AutoencoderKL, prefix = '', only?: Set<string>): Promise<void> {
  const wanted = (n: string) => !only || only.has(n);
  const got = new Map<string, Tensor>();
  const outs = ctx.outputs().map(([n]) => n);
  const needEncode = outs.some((n) => /^posterior_|^reconstruction$|^debug\.encoder\./.test(n) && wanted(n));
  const needDecode = outs.some((n) => (n === 'decoded' || n.startsWith('debug.decoder.')) && wanted(n));
  if (needEncode) {
    const image = await ctx.gpuTensor('image');
    const feats: Record<string, Tensor> = {};
    const post = model.encode(image, { features: feats });
    got.set('posterior_mean', post.mean).set('posterior_logvar', post.logvar).set('posterior_std', post.std);
    for (const [k, v] of Object.entries(feats)) got.set(/^(en|de)coder\./.test(k) ? `debug.${k}` : `debug.encoder.${k}`, v);
    if (outs.includes('reconstruction') && wanted('reconstruction')) got.set('reconstruction', model.decode(post.mean));
    image.dispose();
  }
  if (needDecode) {
    const latent = await ctx.gpuTensor('latent');
    const feats: Record<string, Tensor> = {};
    got.set('decoded', model.decode(latent, { features: feats }));
    for (const [k, v] of Object.entries(feats)) got.set(/^(en|de)coder\./.test(k) ? `debug.${k}` : `debug.decoder.${k}`, v);
    latent.dispose();
  }
  for (const name of outs) {
    const t = got.get(name);
    if (!t || !wanted(name)) continue;
    const vals = await t.toArray();
    if (prefix) {
      const ref = (await ctx.tensor(name)).data;
      ctx.compare(`${prefix}${name}`, vals, ref);
    } else {
      await ctx.produce(name, vals, t.shape);
    }
  }
  for (const t of new Set(got.values())) t.dispose();
}

export const vaeRunner: SectionRunner = {
  section: 'vae',
  describe: 'AutoencoderKL from config.json + weights.safetensors (strict keys); again from legacy attention names',
  async run(ctx) {
    await runAll(ctx, await vaeOf(ctx));
    const files = Object.keys(ctx.spec.files ?? {});
    const legacyRel = files.find((f) => /legacy.*\.safetensors$/.test(f));
    const weightsRel = files.find((f) => /(^|\/)weights\.safetensors$/.test(f));
    const map = (ctx.spec.legacy_attention_keys as { legacy_to_current?: Record<string, string> } | undefined)?.legacy_to_current;
    if (!legacyRel || !weightsRel || !map) return;
    const reader = legacyReader(SafetensorsFile.openSync(ctx.file(weightsRel)), SafetensorsFile.openSync(ctx.file(legacyRel)), new Set(Object.values(map)));
    const legacyModel = await vaeOf(ctx, 'vae', reader, `${ctx.file(legacyRel)}#legacy`);
    await runAll(ctx, legacyModel, 'legacy_keys: ', new Set(['decoded', 'posterior_mean']));
  },
};
