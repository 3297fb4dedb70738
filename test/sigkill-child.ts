// The training process of the SIGKILL test (test/sigkill.test.ts, scripts/sigkill-loop.ts): a tiny LPO run
// (tiny U-Net, tiny LRM, a few DDIM steps) that checkpoints after every iteration into <out>/checkpoints and, when
// that folder holds a checkpoint, resumes from the newest one that verifies. It prints the lines the parent
// watches: START / RESUMED <iteration>, COMMIT <step folder> (inside the checkpoint write, after the temporary
// folder is durable and before the rename), ITER <n>, DONE; and writes the final LoRA factors to <out>/final.bin.
// With --destroy-device-after N it destroys the GPU device after iteration N (the device-fault test) and, like on any
// error, prints `ERROR <class>: <message>` and exits 1.
//   vite-node --config vitest.config.ts test/sigkill-child.ts -- --out <dir> [--commit-delay-ms 300] [--destroy-device-after N]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { gpu, initGpu } from '../src/gpu/runtime.js';
import { setCheckpointFaultHook, writeFileAtomic } from '../src/io/checkpoint/index.js';
import { loraLayers } from '../src/nn/lora.js';
import { LpoTrainer, type LpoTrainConfig } from '../src/lpo/trainer.js';
import { tinyLrm } from './lrm-tiny.js';
import { tinyModels } from './lpo-tiny.js';

export const SIGKILL_PROMPTS = ['a red cube', 'a blue sphere', 'a green cone', 'two cats', 'a boat', 'a tree'];
export const SIGKILL_CONFIG: Partial<LpoTrainConfig> = {
  sampleBatchSize: 1, trainBatchSize: 4, epochs: 1, seed: 11, lr: 1e-3, K: 2, numInferenceSteps: 4, checkpointEvery: 1, keepCheckpoints: 2,
};

const { values } = parseArgs({ options: { out: { type: 'string' }, 'commit-delay-ms': { type: 'string', default: '0' }, 'destroy-device-after': { type: 'string' } } });
const out = values.out!;
const delay = Number(values['commit-delay-ms']);
const destroyAfter = values['destroy-device-after'] === undefined ? null : Number(values['destroy-device-after']);
const say = (line: string) => process.stdout.write(`${line}\n`);
process.on('unhandledRejection', (e) => { throw e; });
process.on('uncaughtException', (e) => {
  say(`ERROR ${e.constructor.name}: ${e.message}`);
  process.exit(1);
});

await initGpu();
const lrm = tinyLrm(7, { logitScaleInit: Math.log(2000) });
const models = tinyModels(lrm, 4);
const trainer = new LpoTrainer(models, SIGKILL_PROMPTS, { ...SIGKILL_CONFIG, outDir: out });
const root = trainer.checkpointRoot;
if (fs.existsSync(root) && fs.readdirSync(root).some((n) => n.startsWith('step-'))) {
  await trainer.resume(root, (m) => say(`WARN ${m}`));
  say(`RESUMED ${trainer.iteration}`);
} else {
  say('START');
}
setCheckpointFaultHook(async (tmp) => {
  say(`COMMIT ${path.basename(tmp)}`);
  if (delay > 0) await new Promise((r) => setTimeout(r, delay));
});
await trainer.train({
  onIteration: () => {
    say(`ITER ${trainer.iteration}`);
    if (trainer.iteration === destroyAfter) gpu().device.destroy();
  },
});
const parts = await Promise.all(loraLayers(models.unet).flatMap(([, l]) => [l.loraA.toArray(), l.loraB.toArray()]));
const all = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
parts.reduce((o, p) => (all.set(p, o), o + p.length), 0);
writeFileAtomic(path.join(out, 'final.bin'), new Uint8Array(all.buffer));
say('DONE');
process.exit(0);
