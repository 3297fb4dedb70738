// The section runners `lpo verify-reference` knows. A section of the manifest without a runner here is
// reported as SKIPPED. To add one: write src/verify/<section>.ts exporting a SectionRunner and list it.
import type { SectionRunner } from './types.js';
import { tokenizerRunner } from './tokenizer.js';
import { textEncoderRunner } from './text_encoder.js';
import { unetRunner } from './unet.js';
import { vaeRunner } from './vae.js';
import { ddimRunner } from './ddim.js';
import { pipelineRunner } from './pipeline.js';
import { lrmRunner } from './lrm.js';
import { trainRunner } from './train.js';
import { lpoRunner } from './lpo.js';

export const SECTION_RUNNERS: SectionRunner[] = [tokenizerRunner, textEncoderRunner, unetRunner, vaeRunner, ddimRunner, pipelineRunner, lrmRunner, lpoRunner, trainRunner];
