// `lpo-wgsl/lrm`: the latent reward model's parts (text features, scoring, its loss). The model class itself is
// exported from the package root. Empty until src/lrm lands: each export is one line, e.g.
// export { encodeText, type TextFeatures } from '../lrm/text.js';
/// <reference types="@webgpu/types" preserve="true" />
export {};
