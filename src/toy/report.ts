// The demo's report: one self-contained HTML page (images as data: URIs, plots as inline SVG, no scripts, no
// network) and the summary table printed on stdout. Both read only a DemoResult.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { linePlotSvg, type PlotSeries } from '../report/plot.js';
import type { MeanSpread } from './evaluate.js';
import type { DemoResult, ModelEval } from './demo.js';
import { pngOf } from './demo_output.js';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const ms = (m: MeanSpread, digits = 3) => `${m.mean.toFixed(digits)} ± ${m.spread.toFixed(digits)}`;
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** The change of a metric against the base model, and whether it exceeds both models' seed-to-seed spread. */
function versusBase(e: ModelEval, base: ModelEval, key: 'alignmentRate' | 'alignmentScore' | 'aesthetic'): { delta: number; beyondSpread: boolean } {
  const d = e.summary[key].mean - base.summary[key].mean;
  return { delta: d, beyondSpread: Math.abs(d) > Math.max(e.summary[key].spread, base.summary[key].spread) };
}

/** Each model's baseline: best-of-4 steers the η = 1 sampler, so it is compared with base-eta1; the rest with base. */
export function baselineOf(r: DemoResult, e: ModelEval): ModelEval {
  const base = r.evals.find((x) => x.model === 'base')!;
  return e.model === 'best-of-4' ? r.evals.find((x) => x.model === 'base-eta1') ?? base : base;
}

/** The stdout table: one row per model, then the LRM's accuracy by timestep bucket and the phase times. */
export function formatDemoSummary(r: DemoResult): string {
  const lines: string[] = [];
  const n = r.evals[0].summary;
  lines.push(`Held-out evaluation: ${n.prompts} prompts × ${n.seeds} seeds, judged by the hidden scorer (mean ± seed-to-seed std)`);
  lines.push('');
  lines.push(`${'model'.padEnd(10)} ${'alignment rate'.padStart(16)} ${'Δ'.padStart(8)} ${'graded align.'.padStart(16)} ${'Δ'.padStart(8)} ${'aesthetic'.padStart(16)} ${'Δ'.padStart(8)}`);
  for (const e of r.evals) {
    const ref = baselineOf(r, e);
    const d = (key: 'alignmentRate' | 'alignmentScore' | 'aesthetic') => {
      if (e === ref) return '';
      const x = versusBase(e, ref, key);
      return `${x.delta >= 0 ? '+' : ''}${x.delta.toFixed(3)}${x.beyondSpread ? '*' : ''}`;
    };
    lines.push(`${e.model.padEnd(10)} ${ms(e.summary.alignmentRate).padStart(16)} ${d('alignmentRate').padStart(8)} ${ms(e.summary.alignmentScore).padStart(16)} ${d('alignmentScore').padStart(8)} ${ms(e.summary.aesthetic).padStart(16)} ${d('aesthetic').padStart(8)}`);
  }
  lines.push('(Δ: against base; best-of-4 against base-eta1, the same η = 1 sampler. * the change exceeds the larger seed-to-seed std of the two)');
  lines.push('');
  lines.push(`LRM accuracy on ${r.lrm.buckets[0]?.pairs ?? 0} validation pairs by timestep bucket (chance 50%), against the labels / the hidden preference:`);
  lines.push(`  ${r.lrm.buckets.map((b) => `${b.name}: ${pct(b.accuracy)} / ${pct(b.truth)}`).join(', ')}`);
  lines.push(`Time: ${Object.entries(r.seconds).map(([k, v]) => `${k} ${v.toFixed(0)} s`).join(', ')}`);
  return lines.join('\n');
}

function dataUri(image: Float32Array): string {
  return `data:image/png;base64,${pngOf(image).toString('base64')}`;
}

function plot(series: PlotSeries[], opts: Parameters<typeof linePlotSvg>[1]): string {
  const usable = series.filter((s) => s.points.length > 0 && s.points.every(([x, y]) => Number.isFinite(x) && Number.isFinite(y)));
  return usable.length ? linePlotSvg(usable, { width: 480, height: 300, ...opts }).replace(/^<\?xml[^>]*>\s*/, '') : '<p>(no data)</p>';
}

function summaryTable(r: DemoResult): string {
  const base = r.evals.find((e) => e.model === 'base')!;
  const cats = Object.keys(base.summary.byCategory);
  const head = ['model', 'alignment rate', 'Δ', 'graded alignment', 'Δ', 'aesthetic', 'Δ', ...cats].map((h) => `<th>${esc(h)}</th>`).join('');
  const rows = r.evals.map((e) => {
    const ref = baselineOf(r, e);
    const d = (key: 'alignmentRate' | 'alignmentScore' | 'aesthetic') => {
      if (e === ref) return '<td></td>';
      const x = versusBase(e, ref, key);
      return `<td><span class="${x.beyondSpread ? 'sig' : ''}">${x.delta >= 0 ? '+' : ''}${x.delta.toFixed(3)}</span></td>`;
    };
    const c = cats.map((k) => `<td>${pct(e.summary.byCategory[k] ?? 0)}</td>`).join('');
    return `<tr><th>${esc(e.model)}</th><td>${ms(e.summary.alignmentRate)}</td>${d('alignmentRate')}<td>${ms(e.summary.alignmentScore)}</td>${d('alignmentScore')}<td>${ms(e.summary.aesthetic)}</td>${d('aesthetic')}${c}</tr>`;
  }).join('\n');
  return `<table><tr>${head}</tr>\n${rows}</table>`;
}

/** One row per prompt; per seed a cell with the models' images side by side. */
function imageGrid(r: DemoResult): string {
  const models = r.evals.map((e) => e.model);
  const byKey = new Map<string, Float32Array>();
  for (const e of r.evals) for (const row of e.rows) byKey.set(`${e.model}|${row.prompt}|${row.seed}`, row.image);
  const head = `<tr><th>prompt</th>${r.plan.evalSeeds.map((s) => `<th>seed ${s}<br><small>${models.map(esc).join(' · ')}</small></th>`).join('')}</tr>`;
  const rows = r.plan.evalPrompts.map((p) => {
    const cells = r.plan.evalSeeds.map((s) => {
      const imgs = models.map((m) => {
        const img = byKey.get(`${m}|${p}|${s}`);
        const judged = r.evals.find((e) => e.model === m)!.rows.find((x) => x.prompt === p && x.seed === s);
        return img ? `<img src="${dataUri(img)}" title="${esc(`${m}: ${judged?.match ? 'matches' : 'does not match'}, aesthetic ${judged?.aesthetic.toFixed(2)}`)}" class="${judged?.match ? 'ok' : 'no'}">` : '';
      });
      return `<td>${imgs.join('')}</td>`;
    }).join('');
    return `<tr><th class="prompt">${esc(p)}</th>${cells}</tr>`;
  }).join('\n');
  return `<table class="grid">${head}\n${rows}</table>`;
}

/** The whole page. */
export function demoReportHtml(r: DemoResult): string {
  const lrmLoss = plot([{ label: 'LRM training loss', points: r.lrm.steps.map((s) => [s.step, s.loss] as const) }], { title: 'LRM: Bradley–Terry loss per step', xLabel: 'step', yLabel: 'loss' });
  const evalTs = [...new Set(r.lrm.evals.flatMap((e) => e.byTimestep.map((b) => b.t)))];
  const lrmAcc = plot(evalTs.map((t) => ({
    label: `t = ${t}`,
    points: r.lrm.evals.filter((e) => e.byTimestep.some((b) => b.t === t)).map((e) => [e.step, e.byTimestep.find((b) => b.t === t)!.accuracy] as const),
  })), { title: 'LRM: validation accuracy during training', xLabel: 'step', yLabel: 'accuracy', yRange: [0, 1], yRef: 0.5 });
  const lrmByT = plot([
    { label: 'vs the hidden preference', points: r.lrm.byTimestep.map((b) => [b.t, b.truth] as const) },
    { label: 'vs the labels (noisy)', points: r.lrm.byTimestep.map((b) => [b.t, b.accuracy] as const) },
  ], { title: 'LRM accuracy by timestep (final model)', xLabel: 'timestep t', yLabel: 'accuracy', yRange: [0, 1], yRef: 0.5 });
  const lpoLoss = plot([{ label: 'LPO loss', points: r.lpo.filter((m) => m.loss !== null).map((m) => [m.iteration, m.loss!] as const) }], { title: 'LPO: step-level DPO loss per iteration', xLabel: 'iteration', yLabel: 'loss' });
  const lpoScore = plot([
    { label: 'valid-pair rate', points: r.lpo.map((m) => [m.iteration, m.validRate] as const) },
  ], { title: 'LPO: share of steps giving a valid pair', xLabel: 'iteration', yLabel: 'rate', yRange: [0, 1] });
  const lpoReward = plot([
    { label: 'LRM score of final latents', points: r.lpo.map((m) => [m.iteration, m.finalScore] as const) },
  ], { title: 'LPO: LRM score of the sampled trajectories', xLabel: 'iteration', yLabel: 'score' });
  const bucketRows = r.lrm.buckets.map((b) => `<tr><th>${esc(b.name)}</th><td>${pct(b.accuracy)}</td><td>${pct(b.truth)}</td><td>${b.truth > 0.5 ? 'above chance' : '<b>not above chance</b>'}</td></tr>`).join('');
  const p = r.pairStats;
  const kept = (c: { kept: number; dropped: number }) => `${c.kept} of ${c.kept + c.dropped}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lpo-wgsl toy demo</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f4f4f4; }
.grid td { padding: 2px; text-align: left; white-space: nowrap; }
.grid img { width: 64px; height: 64px; image-rendering: pixelated; margin: 1px; border: 2px solid transparent; }
.grid img.ok { border-color: #2ca02c; }
.grid img.no { border-color: #ddd; }
th.prompt { text-align: left; font-weight: normal; }
.sig { font-weight: bold; }
.plots svg { margin: 0 1em 1em 0; border: 1px solid #eee; }
</style></head><body>
<h1>Latent preference optimisation in the toy world</h1>
<p>Base model <code>${esc(r.base)}</code>; ${r.plan.evalPrompts.length} held-out prompts × ${r.plan.evalSeeds.length} seeds
(seeds ${r.plan.evalSeeds.join(', ')}), DDIM ${r.plan.sampleSteps} steps, CFG ${r.plan.guidanceScale}; base and LPO sample with η = 0,
best-of-4 with η = 1 (it needs random candidates), so <code>base-eta1</code> (the base model with η = 1) is its baseline. The hidden scorer judges every image: <b>alignment rate</b> is the share of images whose
shapes, colours, counts and relations match the caption (a toy GenEval), <b>aesthetic</b> its 0–1 liking of contrast, centring, edges and clutter.
Spreads are the standard deviation over seeds of the per-seed means. Total time ${(r.seconds.total ?? 0).toFixed(0)} s.</p>
<h2>Results</h2>
${summaryTable(r)}
<p>Δ is against <code>base</code>, and for best-of-4 against <code>base-eta1</code> (the same η = 1 sampler). Bold changes exceed the larger of the two models' seed-to-seed spreads.</p>
<h2>Preference data and the latent reward model</h2>
<p>${p.pairs} pairs of base-model images from ${p.prompts} training prompts (${p.validation} held for validation), labelled by a Bradley–Terry
coin flip on the hidden preference: ${pct(p.ties)} ties; labels agree with the hidden preference on ${pct(p.agreement)} of decided pairs
(the ceiling of any reward model's accuracy against them). The LRM trained on MPCF strategy ${r.mpcf.strategy}'s pairs: ${kept(r.mpcf.winLose)} win-lose and ${kept(r.mpcf.ties)} tie pairs.
What each strategy keeps of the training pairs: ${r.mpcfAll.map((c) => `${c.strategy}: ${kept(c.winLose)} win-lose, ${kept(c.ties)} ties`).join('; ')}.
The LRM (the base U-Net's down and mid blocks and its text encoder${r.plan.lrmHeadSteps > 0 ? `; its projection heads first fitted for ${r.plan.lrmHeadSteps} steps on frozen features of ${r.plan.lrmHeadDraws} noisy copies of each training pair, then` : ','} ${r.plan.lrmSteps} steps of ${r.plan.lrmBatch} pairs) scores noisy latents; its accuracy on the
${r.lrm.buckets[0]?.pairs ?? 0} validation pairs by timestep bucket (each bucket pools three timesteps), against the pairs' labels (the paper's measure,
capped by the annotators' noise) and against the hidden preference itself (ties count 0.5):</p>
<table><tr><th>t bucket</th><th>vs labels</th><th>vs hidden preference</th><th></th></tr>${bucketRows}</table>
<div class="plots">${lrmByT}${lrmAcc}${lrmLoss}</div>
<h2>LPO</h2>
<p>${r.lpo.length} iterations of ${r.plan.lpo.sampleBatchSize} training prompts, K = ${r.plan.lpo.K} candidates per step, LoRA rank ${r.plan.lpo.loraRank},
${r.lpo.reduce((s, m) => s + m.items, 0)} step-level pairs in all. No image is decoded during training.</p>
<div class="plots">${lpoLoss}${lpoScore}${lpoReward}</div>
<h2>Samples</h2>
<p>Each cell: ${r.evals.map((e) => esc(e.model)).join(' · ')} at the same prompt and seed; a green frame marks an image the hidden scorer says matches its caption.
Every image is also a PNG under <code>samples/</code> (index in <code>samples/index.json</code>).</p>
${imageGrid(r)}
</body></html>
`;
}

/** Writes out/report.html. */
export function writeDemoReport(r: DemoResult): string {
  const file = path.join(r.out, 'report.html');
  fs.writeFileSync(file, demoReportHtml(r));
  return file;
}
