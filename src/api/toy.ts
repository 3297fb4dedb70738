// `lpo-wgsl/toy`: the toy world (a tiny base model and a synthetic preference dataset for demos and tests).
// A new public name is one line here.
/// <reference types="@webgpu/types" preserve="true" />

export { COLOURS, SHAPES, PALETTE, BACKGROUNDS, SIZES, IMAGE_SIZE, renderScene, sampleScene, type Colour, type Shape, type Scene, type SceneObject, type ObjectSpec } from '../toy/scenes.js';
export {
  RELATIONS, HELD_OUT_PROMPTS, parseCaption, captionText, samplePrompt, sceneForCaption, promptSplit, isHeldOut, allCaptions, CaptionError,
  type CaptionSpec, type Relation, type PromptSplit,
} from '../toy/captions.js';
export { judge, preferenceScore, type Judgement, type Alignment, type Aesthetics, type PreferenceWeights } from '../toy/judge/judge.js';
export { TOY_UNET_CONFIG, TOY_VAE_CONFIG, TOY_TEXT_ENCODER_CONFIG, TOY_SCHEDULER_CONFIG, createToyModels, toyBaseDir, type ToyModels } from '../toy/model.js';
export { pretrainToyBase, DEFAULT_PRETRAIN, type PretrainConfig, type PretrainResult, type PretrainOptions } from '../toy/pretrain.js';
export { saveToyPipeline } from '../toy/checkpoint.js';
export { sampleImages, initialLatent, type SampleOptions, type SampleRequest, type Sampled } from '../toy/sample.js';
export {
  evaluatePipeline, evaluateReconstruction, judgeSamples, summariseSamples, formatEvalSummary, captionCategory,
  type EvalSummary, type JudgedSample, type MeanSpread,
} from '../toy/evaluate.js';
export { generatePairs, labelPair, writeToyPairs, pairStats, aspectScores, type ToyPair, type PairLabel, type PairGenOptions, type LabelOptions, type PairStats } from '../toy/pairs.js';
export { runToyDemo, demoPlan, type ToyDemoOptions, type DemoPlan, type DemoResult, type DemoPhase, type ModelEval } from '../toy/demo.js';
export { demoReportHtml, writeDemoReport, formatDemoSummary } from '../toy/report.js';
