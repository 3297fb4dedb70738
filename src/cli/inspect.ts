// `lpo inspect <file.safetensors | model folder>`: tensors, dtypes, shapes, parameter and byte totals, metadata,
// and for a diffusers folder each component's class, config and weights.
import * as fs from 'node:fs';
import { UsageError } from '../errors.js';
import type { TensorInfo } from '../io/safetensors.js';
import { openDiffusersModel } from '../io/diffusers.js';
import { openWeights, type WeightsReader } from '../io/weights.js';
import { defineCommand, parseCommand } from './args.js';

export const inspectSpec = defineCommand({
  name: 'inspect',
  summary: 'lists the tensors of a safetensors file, or the components of a diffusers folder',
  details: 'Shows dtypes, shapes, parameter and byte totals and metadata; for a folder, each component\'s class, config and weights.',
  positionals: [{ name: 'target', required: true, path: 'exists', help: 'file.safetensors, model.safetensors.index.json or a model folder' }],
  options: {
    tensors: { type: 'boolean', negatable: true, help: 'list every tensor (default: on for a file, off for a folder)' },
    filter: { type: 'string', value: 'regex', help: 'only tensors whose name matches' },
    fp16: { type: 'boolean', help: 'in a folder, prefer the .fp16 weight variants' },
    json: { type: 'boolean', help: 'print JSON instead of text' },
  },
});

function regex(flag: string, src: string | undefined): RegExp | null {
  if (src === undefined) return null;
  try {
    return new RegExp(src);
  } catch (e) {
    throw new UsageError(`${flag}: ${(e as Error).message}`);
  }
}

const fmtInt = (n: number): string => n.toLocaleString('en-US');
function fmtBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(2)} ${units[u]}`;
}
const numelOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

interface WeightsSummary {
  path: string;
  tensors: number;
  elements: number;
  bytes: number;
  dtypes: Record<string, { tensors: number; elements: number }>;
  metadata: Record<string, string>;
  list: { key: string; dtype: string; shape: number[]; bytes: number }[];
}

function summarize(w: WeightsReader, filter: RegExp | null): WeightsSummary {
  const s: WeightsSummary = { path: w.path, tensors: 0, elements: 0, bytes: 0, dtypes: {}, metadata: { ...w.metadata }, list: [] };
  for (const key of w.keys()) {
    if (filter && !filter.test(key)) continue;
    const info: TensorInfo = w.info(key);
    const n = numelOf(info.shape);
    s.tensors++;
    s.elements += n;
    s.bytes += info.byteLength;
    const d = (s.dtypes[info.dtype] ??= { tensors: 0, elements: 0 });
    d.tensors++;
    d.elements += n;
    s.list.push({ key, dtype: info.dtype, shape: [...info.shape], bytes: info.byteLength });
  }
  return s;
}

function printWeights(s: WeightsSummary, listTensors: boolean, indent = ''): void {
  const md = Object.entries(s.metadata);
  if (md.length) console.log(`${indent}metadata: ${md.map(([k, v]) => `${k}=${v.length > 80 ? `${v.slice(0, 77)}...` : v}`).join(', ')}`);
  if (listTensors && s.list.length) {
    const wk = Math.min(80, Math.max(4, ...s.list.map((t) => t.key.length)));
    const wd = Math.max(5, ...s.list.map((t) => t.dtype.length));
    console.log(`${indent}${'name'.padEnd(wk)}  ${'dtype'.padEnd(wd)}  shape`);
    for (const t of s.list) console.log(`${indent}${t.key.padEnd(wk)}  ${t.dtype.padEnd(wd)}  [${t.shape.join(', ')}]`);
  }
  const byDtype = Object.entries(s.dtypes)
    .sort((a, b) => b[1].elements - a[1].elements || a[0].localeCompare(b[0]))
    .map(([d, v]) => `${d} ${v.tensors} (${fmtInt(v.elements)})`)
    .join(', ');
  console.log(`${indent}total: ${fmtInt(s.tensors)} tensors, ${fmtInt(s.elements)} parameters, ${fmtInt(s.bytes)} bytes (${fmtBytes(s.bytes)})${byDtype ? `; ${byDtype}` : ''}`);
}

export async function inspect(argv: string[]): Promise<number> {
  const a = parseCommand(inspectSpec, argv);
  if (!a) return 0;
  const o = { ...a, filter: regex('--filter', a.filter) };
  const st = fs.statSync(o.target);

  if (!st.isDirectory()) {
    const w = await openWeights(o.target);
    try {
      const s = summarize(w, o.filter);
      if (o.json) {
        console.log(JSON.stringify(s, null, 1));
        return 0;
      }
      console.log(`${o.target}: ${fmtInt(st.size)} bytes`);
      printWeights(s, o.tensors ?? true);
    } finally {
      await w.close();
    }
    return 0;
  }

  const model = await openDiffusersModel(o.target, { preferFp16: o.fp16 });
  try {
    const out: Record<string, unknown> = { dir: o.target, index: model.index, components: {} as Record<string, unknown> };
    if (!o.json) {
      console.log(`${o.target}: ${model.index ? `${String(model.index._class_name ?? 'pipeline')} (model_index.json)` : 'no model_index.json'}; components: ${[...model.components.keys()].join(', ')}`);
    }
    let total = 0;
    let totalBytes = 0;
    for (const c of model.components.values()) {
      const s = c.weights ? summarize(c.weights, o.filter) : null;
      if (s) {
        total += s.elements;
        totalBytes += s.bytes;
      }
      if (o.json) {
        (out.components as Record<string, unknown>)[c.name] = { className: c.className, configPath: c.configPath, config: c.config, weightsPath: c.weightsPath, variant: c.variant, files: c.files, weights: s };
        continue;
      }
      console.log('');
      console.log(`[${c.name}] ${c.className ?? ''}`.trimEnd());
      if (c.configPath) {
        console.log(`  config: ${c.configPath}`);
        for (const [k, v] of Object.entries(c.config ?? {})) {
          if (k.startsWith('_')) continue;
          const j = JSON.stringify(v);
          console.log(`    ${k}: ${j.length > 100 ? `${j.slice(0, 97)}...` : j}`);
        }
      }
      if (c.weightsPath) console.log(`  weights: ${c.weightsPath}${c.variant ? ` (${c.variant})` : ''}`);
      if (s) printWeights(s, o.tensors ?? false, '  ');
      if (c.files.length) console.log(`  other files: ${c.files.join(', ')}`);
    }
    if (o.json) console.log(JSON.stringify(out, null, 1));
    else {
      console.log('');
      console.log(`all components: ${fmtInt(total)} parameters, ${fmtInt(totalBytes)} bytes (${fmtBytes(totalBytes)})`);
    }
  } finally {
    await model.close();
  }
  return 0;
}
