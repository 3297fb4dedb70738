// `lpo-wgsl/lrm`: the latent reward model's parts (text features, its loss, training, evaluation, the MPCF data
// filter). The model class (LatentRewardModel) is exported from the package root. A new public name is one line here.
/// <reference types="@webgpu/types" preserve="true" />

export { TextFeatures } from '../lrm/text.js';
export { LRM_DEFAULTS, lrmConfigFor, type LrmConfig } from '../lrm/config.js';
export { LRM_TIMESTEPS } from '../lrm/schedule.js';
export { pairLoss, pairWeights, pairAccuracy, type PairLabels, type PairLossOutput } from '../lrm/loss.js';
export { trainLrm, type TrainLrmOptions, type TrainLrmResult, type StepMetrics, type EvalRecord } from '../lrm/train.js';
export { fitLrmHeads, type FitHeadsOptions, type FitHeadsResult } from '../lrm/heads.js';
export { evaluateLrm, accuracyAt, type EvalLrmOptions, type LrmEvalResult } from '../lrm/eval.js';
export { mpcfFilter, countMpcf, parseMpcfStrategy, MpcfError, type MpcfStrategy, type MpcfCounts } from '../lrm/mpcf.js';
export type { BaseComponents, FromDiffusersOptions } from '../lrm/io.js';
