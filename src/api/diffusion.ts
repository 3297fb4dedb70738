// `lpo-wgsl/diffusion`: what sits under the pipeline. DDIM step types and its Gaussian log-probability (LPO's
// policy term), and the noise schedules. DDIMScheduler and StableDiffusionPipeline are exported from the root.
/// <reference types="@webgpu/types" preserve="true" />

export { ddimLogProb, type StepOptions, type StepWithLogProbOptions, type StepOutput, type StepWithLogProbOutput, type StepScalars } from '../diffusion/ddim.js';
export {
  parseSchedulerConfig, makeBetas, makeAlphasCumprod, ddimTimesteps, DDIM_DEFAULTS, SchedulerConfigError,
  type SchedulerConfig, type BetaSchedule, type PredictionType, type TimestepSpacing,
} from '../diffusion/schedule.js';
