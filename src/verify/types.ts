// What a section runner of `lpo verify-reference` sees and reports.
import type { HostTensor } from '../io/safetensors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Manifest, ManifestSection, ManifestTensor, Metric, Tolerance } from './manifest.js';

export type Status = 'PASS' | 'FAIL' | 'SKIPPED';

/** One line of the report table. */
export interface Row {
  section: string;
  name: string;
  metric: Metric | '-';
  /** relL2 / max relative error, or the number of mismatching elements for `exact`. */
  value: number | null;
  tol: number | null;
  status: Status;
  note?: string;
}

export interface SectionContext {
  readonly root: string;
  readonly section: string;
  readonly spec: ManifestSection;
  readonly manifest: Manifest;
  /** `rel` is relative to the reference folder ("unet/config.json"); returns the checked file's path. */
  file(rel: string): string;
  /** A file of this section ("cases.json"). */
  sectionFile(rel: string): string;
  json<T = unknown>(relToSection: string): T;
  /** The manifest's tensors of this section that the reference folder gives as results (not inputs). */
  outputs(): [string, ManifestTensor][];
  /** A tensor of this section's manifest, read from its file (floats as f32, integers as i32). */
  tensor(name: string): Promise<HostTensor>;
  /** The same, uploaded to the GPU. */
  gpuTensor(name: string): Promise<Tensor>;
  /** Any tensor of any safetensors file in the folder (path relative to the folder). */
  readFrom(relFile: string, key: string): Promise<HostTensor>;
  /** Reports a computed result for a manifest tensor: compared with the reference under the guidance's tolerance. */
  produce(name: string, values: ArrayLike<number>, shape?: readonly number[]): Promise<void>;
  /** Reports a computed result for something that is not a manifest tensor, against its expected values. */
  compare(name: string, got: ArrayLike<number>, expected: ArrayLike<number>, tolerance?: Tolerance | { dtype: string }): void;
  /** Adds a row directly (a failure with a message, a skipped part). */
  row(r: Omit<Row, 'section'>): void;
  log(msg: string): void;
}

export interface SectionRunner {
  /** The manifest section name it verifies. */
  readonly section: string;
  /** What it runs, for the report. */
  readonly describe: string;
  run(ctx: SectionContext): Promise<void>;
}
