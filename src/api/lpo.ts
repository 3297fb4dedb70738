// `lpo-wgsl/lpo`: latent preference optimisation (the step-level DPO trainer, its thresholds and CFG helpers).
// The trainer's main entry is exported from the package root. Empty until src/lpo lands: each export is one line, e.g.
// export { lpoLoss } from '../lpo/loss.js';
/// <reference types="@webgpu/types" preserve="true" />
export {};
