// Inference: start runs; every finished run is kept with its job, so the
// list, the per-layer charts (several runs overlaid), the side-by-side
// detections and the exports survive a reload.
import { api, fileUrl, waitForJob } from '../api.js';
import { h, say, options, num, sqnrDelta, asNumber, download, toCsv, when } from '../util.js';
import { lineChart, palette } from '../chart.js';
import { attempt, listFiles, nextGeneration, render, preferImages, preferCalib, finishedJobs, classNames } from './common.js';

export function parsePlan(text) {
  // "fp32=0,15 fp16=3 default=int8"
  const plan = { default: 'int8' };
  for (const part of text.trim().split(/\s+/).filter(Boolean)) {
    const [k, v] = part.split('=');
    if (k === 'default') plan.default = v;
    else plan[k] = v.split(',').filter(Boolean).map(Number);
  }
  return plan;
}

function drawDetections(canvas, run, names) {
  const r = run.result;
  const img = new Image();
  img.onload = () => {
    const scale = Math.min(1, 560 / img.width);
    canvas.width = img.width * scale;
    canvas.height = img.height * scale;
    const ctx = canvas.getContext('2d');
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    ctx.lineWidth = 2;
    ctx.font = 'bold 13px sans-serif';
    for (const d of r.detections.slice(0, 50)) {
      const [l, t, rr, b] = d.box.map((v) => v * scale);
      const colour = `hsl(${(d.class_id * 47) % 360},80%,40%)`;
      ctx.strokeStyle = colour;
      ctx.strokeRect(l, t, rr - l, b - t);
      const label = `${names && names[d.class_id] ? names[d.class_id] : 'class ' + d.class_id} ${(d.prob * 100).toFixed(0)}%`;
      const w = ctx.measureText(label).width + 6, y = t > 16 ? t - 16 : t;
      ctx.fillStyle = colour;
      ctx.fillRect(l, y, w, 16);
      ctx.fillStyle = 'white';
      ctx.fillText(label, l + 3, y + 12);
    }
  };
  img.onerror = () => canvas.replaceWith(h('p', {}, `${r.image}: the browser cannot show this image format (boxes are in the exports)`));
  img.src = fileUrl(r.image);
}

function runTitle(run) {
  const r = run.result;
  return `run ${run.id}: ${r.model} on ${r.image}, ${r.mode}`;
}

function runRows(run) {
  return run.result.layers.map((l) => [l.layer, l.kind, l.precision, (l.output || []).join('x'), l.sqnr_db ?? '', l.cosine ?? '', l.ms]);
}

function exportRun(run, kind) {
  const name = `run-${run.id}`;
  if (kind === 'json') return download(`${name}.json`, JSON.stringify(run, null, 1), 'application/json');
  const rows = [['layer', 'kind', 'precision', 'output', 'sqnr_db', 'cosine', 'ms'], ...runRows(run), [],
    ['detection', 'class_id', 'prob', 'left', 'top', 'right', 'bottom'],
    ...run.result.detections.map((d, i) => [i, d.class_id, d.prob, ...d.box])];
  download(`${name}.csv`, toCsv(rows), 'text/csv');
}

function compareTable(a, b) {
  const la = a.result.layers, lb = b.result.layers;
  return h('table', { id: 'compare-table' },
    h('tr', {}, h('th', {}, 'layer'), h('th', {}, 'kind'), h('th', {}, `run ${a.id} (${a.result.mode})`), h('th', {}, 'SQNR dB'),
      h('th', {}, `run ${b.id} (${b.result.mode})`), h('th', {}, 'SQNR dB'), h('th', {}, 'Δ dB'), h('th', {}, 'ms A'), h('th', {}, 'ms B')),
    la.map((l, i) => {
      const m = lb[i] || {};
      const d = sqnrDelta(l.sqnr_db, m.sqnr_db);
      return h('tr', {}, h('td', {}, l.layer), h('td', {}, l.kind), h('td', {}, l.precision), h('td', {}, num(l.sqnr_db)),
        h('td', {}, m.precision || '-'), h('td', {}, num(m.sqnr_db)),
        h('td', { class: d === null || d === 0 ? '' : d < 0 ? 'bad' : 'good' }, d === null ? '-' : num(d)),
        h('td', {}, num(l.ms)), h('td', {}, num(m.ms)));
    }),
    h('tr', {}, h('th', {}, 'detections'), h('td', {}), h('td', {}), h('td', {}, a.result.detection_count), h('td', {}), h('td', {}, b.result.detection_count)));
}

// One run: its detections and its per-layer table.
function runCard(run, names) {
  const r = run.result;
  const canvas = h('canvas', { class: 'detections', 'data-job': run.id });
  drawDetections(canvas, run, names);
  return h('section', { class: 'card run', 'data-job': run.id },
    h('h3', {}, `${runTitle(run)}: ${r.detection_count} detection(s), ${num(r.ms)} ms`),
    h('div', { class: 'row' }, canvas,
      h('table', { class: 'sqnr' }, h('tr', {}, h('th', {}, 'layer'), h('th', {}, 'kind'), h('th', {}, 'precision'), h('th', {}, 'SQNR dB vs float'), h('th', {}, 'ms')),
        r.layers.map((l) => h('tr', {}, h('td', {}, l.layer), h('td', {}, l.kind), h('td', {}, l.precision), h('td', {}, num(l.sqnr_db)), h('td', {}, num(l.ms)))))));
}

function charts(selected) {
  const series = (key) => selected.map((run) => ({ name: `run ${run.id} (${run.result.mode})`,
    points: run.result.layers.map((l) => [l.layer, key === 'sqnr' ? asNumber(l.sqnr_db) : l.ms]).filter(([, v]) => v !== null) }));
  return h('div', { class: 'row' },
    h('div', {}, h('h4', {}, 'SQNR against the float model, per layer'), lineChart(series('sqnr'), { xLabel: 'layer', yLabel: 'SQNR dB', id: 'chart-sqnr' })),
    h('div', {}, h('h4', {}, 'time per layer'), lineChart(series('ms'), { xLabel: 'layer', yLabel: 'ms', id: 'chart-time' })));
}

export async function showInference(gen = nextGeneration(), focus) {
  const f = await listFiles();
  let runs = (await finishedJobs('inference')).sort((a, b) => b.id - a.id);
  const model = h('select', { id: 'inf-model' }), image = h('select', { id: 'inf-image' });
  const calib = h('select', { id: 'inf-calib' }), mode = h('select', { id: 'inf-mode' });
  const names = h('select', { id: 'inf-names' });
  options(model, f.models); options(image, f.images); preferImages(image, f.images);
  options(calib, ['(none)', ...f.dirs]); preferCalib(calib, f.dirs);
  options(mode, ['float', 'hybrid', 'int8', 'fp16', 'mixed']); mode.value = 'int8';
  options(names, ['(class numbers)', ...f.names]);
  const coco = f.names.find((n) => /coco/.test(n));
  if (coco) names.value = coco;
  const plan = h('input', { id: 'inf-plan', value: 'fp32=0 default=int8', size: 24 });
  const bar = h('progress', { id: 'inf-progress', max: 1, value: 0 });
  const list = h('div', { id: 'runs' }), chartBox = h('div', { id: 'charts' }), side = h('div', { id: 'side-by-side' });
  const cmpA = h('select', { id: 'cmp-a' }), cmpB = h('select', { id: 'cmp-b' });
  const checked = new Set(focus ? [focus] : runs.slice(0, 2).map((r) => r.id));
  const redraw = () => {
    const rows = runs.map((run, k) => h('tr', { 'data-run': run.id },
      h('td', {}, h('input', { type: 'checkbox', class: 'overlay', checked: checked.has(run.id) || undefined,
        onchange: (e) => { if (e.target.checked) checked.add(run.id); else checked.delete(run.id); redrawCharts(); } })),
      h('td', { style: `color:${palette[k % palette.length]}` }, runTitle(run)), h('td', {}, run.result.detection_count),
      h('td', {}, num(run.result.ms)), h('td', {}, when(run.finished)),
      h('td', {}, h('button', { class: 'export-csv', onclick: () => exportRun(run, 'csv') }, 'CSV'),
        h('button', { class: 'export-json', onclick: () => exportRun(run, 'json') }, 'JSON'))));
    list.replaceChildren(h('table', { id: 'run-table' }, h('tr', {}, ['overlay', 'run', 'detections', 'ms', 'finished', 'export'].map((t) => h('th', {}, t))), rows));
    const ids = runs.map((r) => [String(r.id), runTitle(r)]);
    options(cmpA, ids, true); options(cmpB, ids, true);
    if (runs.length > 1 && cmpA.value === cmpB.value) { cmpA.value = String(runs[1].id); cmpB.value = String(runs[0].id); }
    redrawCharts();
  };
  const cards = h('div', { id: 'run-cards' });
  const redrawCharts = () => attempt(async () => {
    const selected = runs.filter((r) => checked.has(r.id));
    chartBox.replaceChildren(charts(selected));
    const classes = await classNames(names.selectedIndex > 0 ? names.value : null);
    cards.replaceChildren(...selected.map((r) => runCard(r, classes)));
  });
  const compare = () => attempt(async () => {
    const a = runs.find((r) => String(r.id) === cmpA.value), b = runs.find((r) => String(r.id) === cmpB.value);
    if (!a || !b) throw new Error('finish two runs first');
    const classes = await classNames(names.selectedIndex > 0 ? names.value : null);
    const ca = h('canvas', { class: 'detections', 'data-job': a.id }), cb = h('canvas', { class: 'detections', 'data-job': b.id });
    drawDetections(ca, a, classes); drawDetections(cb, b, classes);
    side.replaceChildren(h('div', { class: 'row' }, h('div', {}, h('h4', {}, runTitle(a)), ca), h('div', {}, h('h4', {}, runTitle(b)), cb)), compareTable(a, b));
  });
  const run = () => attempt(async () => {
    const body = { model: model.value, image: image.value, mode: mode.value };
    if (calib.selectedIndex > 0) body.calib = calib.value;
    if (mode.value === 'mixed') body.plan = parsePlan(plan.value);
    const { job } = await api('POST', '/api/jobs/inference', body);
    say(`Inference job ${job} running ...`);
    bar.value = 0;
    const done = await waitForJob(job, (p) => { bar.max = p.total; bar.value = p.done; });
    if (done.status !== 'done') throw new Error(`job ${job} ${done.status}: ${done.error}`);
    bar.value = bar.max;
    runs = [done, ...runs];
    checked.add(done.id);
    redraw();
    say(`Run ${job} finished: ${done.result.detection_count} detection(s).`);
  });
  if (!render(gen,
    h('section', { class: 'card' }, h('h2', {}, 'Run a model on an image'),
      h('label', {}, 'model ', model), h('label', {}, 'image ', image), h('label', {}, 'mode ', mode),
      h('label', {}, 'calibration ', calib), h('label', {}, 'mixed plan ', plan),
      h('button', { id: 'inf-run', onclick: run }, 'Run'), bar),
    h('section', { class: 'card' }, h('h2', {}, 'Runs'), h('p', {}, 'Every finished run is kept with its job; tick runs to overlay them.'), list, chartBox),
    h('section', { class: 'card' }, h('h2', {}, 'Two runs side by side'), cmpA, cmpB, h('label', {}, ' class names ', names),
      h('button', { id: 'cmp-show', onclick: compare }, 'Compare'), side), cards)) return;
  redraw();
  if (focus) { cmpB.value = String(focus); compare(); }
}
