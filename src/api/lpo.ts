// `lpo-wgsl/lpo`: latent preference optimisation's parts (the step-level loss, thresholds, pair selection, the
// step-wise sampler, GRPO, best-of-N). The trainer (LpoTrainer) is exported from the package root. A new public
// name is one line here.
/// <reference types="@webgpu/types" preserve="true" />

export { lpoLoss, LPO_DEFAULTS, type PairBatch, type LpoLossOptions, type LpoLossOutput } from '../lpo/loss.js';
export { threshold, SD15_THRESHOLD, SDXL_THRESHOLD, type ThresholdConfig, type ThresholdStrategy } from '../lpo/threshold.js';
export { selectPairs } from '../lpo/select.js';
export { sampleStepwise, SAMPLER_DEFAULTS, type StepwiseConfig, type StepwiseInputs, type StepwiseResult, type StepPair, type StepGroup } from '../lpo/sampler.js';
export { grpoLoss, groupAdvantages, GRPO_DEFAULTS } from '../lpo/grpo.js';
export { generateBestOfN, type BestOfNModels, type BestOfNOptions, type BestOfNResult } from '../lpo/best_of_n.js';
export { readPrompts, parsePrompts } from '../lpo/prompts.js';
export { LatentSpaceMismatchError } from '../lpo/reward.js';
