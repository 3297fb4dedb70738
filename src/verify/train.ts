// verify-reference section `train`: gradients through whole networks. The section holds several cases (its
// config.json lists them); each case has its own runner file, listed here. A case without a runner is reported
// as SKIPPED (its tensors then show as "not computed"). To add one: write src/verify/train_<case>.ts exporting a
// TrainCaseRunner and list it in TRAIN_CASES.
import { ReferenceDataError } from './manifest.js';
import type { SectionContext, SectionRunner } from './types.js';
import { trainLrmCase } from './train_lrm.js';
import { trainUnetCase } from './train_unet.js';
import { trainLpoCase } from './train_lpo.js';

/** One case of the train section: it produces the case's tensors through ctx (as a section runner does). */
export interface TrainCaseRunner {
  /** The case name in train/config.json `cases`. */
  readonly case: string;
  readonly describe: string;
  run(ctx: SectionContext): Promise<void>;
}

export const TRAIN_CASES: TrainCaseRunner[] = [trainUnetCase, trainLrmCase, trainLpoCase];

export const trainRunner: SectionRunner = {
  section: 'train',
  describe: 'gradients through whole networks, one runner per case of config.json',
  async run(ctx) {
    const cfg = ctx.json<{ cases?: unknown }>('config.json');
    if (!Array.isArray(cfg.cases) || !cfg.cases.every((c) => typeof c === 'string')) {
      throw new ReferenceDataError(`${ctx.sectionFile('config.json')}: "cases" must be a list of case names`);
    }
    const byName = new Map(TRAIN_CASES.map((c) => [c.case, c]));
    for (const name of cfg.cases as string[]) {
      const runner = byName.get(name);
      if (!runner) {
        ctx.row({ name: `(case ${name})`, metric: '-', value: null, tol: null, status: 'SKIPPED', note: 'not supported yet' });
        continue;
      }
      ctx.log(`case ${name}: ${runner.describe}`);
      try {
        await runner.run(ctx);
      } catch (e) {
        // One failing case does not hide the others' results.
        ctx.row({ name: `(case ${name})`, metric: '-', value: null, tol: null, status: 'FAIL', note: `error: ${(e as Error).message ?? e}` });
      }
    }
  },
};
