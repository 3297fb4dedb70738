// `lpo-wgsl/toy`: the toy world (a tiny base model and a synthetic preference dataset for demos and tests).
// Empty until src/toy lands: each export is one line, e.g.
// export { makeToyWorld } from '../toy/world.js';
/// <reference types="@webgpu/types" preserve="true" />
export {};
