// Quantize: method, mode and a mixed-precision plan made by clicking layers
// on the graph or typing their indices. The plan belongs to its model:
// a graph that arrives later neither drops the layers chosen meanwhile nor
// shows another model's plan.
import { api, fileUrl, waitForJob } from '../api.js';
import { h, say, options } from '../util.js';
import { GraphView } from '../graph.js';
import { attempt, listFiles, nextGeneration, render, latestOnly, graphOf, preferCalib } from './common.js';

const plans = new Map(); // model -> Map(layer -> fp32|fp16)
function planOf(model) {
  if (!plans.has(model)) plans.set(model, new Map());
  return plans.get(model);
}

function layerList(text) {
  return text.split(/[\s,]+/).filter(Boolean).map(Number).filter((n) => Number.isInteger(n) && n >= 0);
}

export async function showQuantize(gen = nextGeneration()) {
  const f = await listFiles();
  const model = h('select', { id: 'q-model' }), calib = h('select', { id: 'q-calib' });
  const method = h('select', { id: 'q-method' }), mode = h('select', { id: 'q-mode' });
  const images = h('input', { id: 'q-images', type: 'number', value: 20, min: 1, style: 'width:5em' });
  options(model, f.models); options(calib, f.dirs); preferCalib(calib, f.dirs);
  options(method, ['minmax', 'percentile', 'entropy', 'mse', 'log2']);
  options(mode, ['int8', 'hybrid', 'fp16', 'mixed']);
  const fp32 = h('input', { id: 'q-fp32', size: 18, placeholder: 'e.g. 0, 13' });
  const fp16 = h('input', { id: 'q-fp16', size: 18 });
  const bar = h('progress', { id: 'q-progress', max: 1, value: 0 });
  const result = h('div', { id: 'q-result' });
  const planText = h('p', { id: 'q-plan' });
  const graphBox = h('div', { class: 'graph', id: 'q-graph' });
  const cycle = ['int8', 'fp16', 'fp32'];
  const latest = latestOnly();
  let drawnModel = null;
  const graphView = new GraphView(graphBox, { id: 'q-graph', onSelect: (l) => {
    if (drawnModel !== model.value) return; // another model's graph: its plan is not this one
    const plan = planOf(drawnModel);
    const next = cycle[(cycle.indexOf(plan.get(l.index) || 'int8') + 1) % 3];
    if (next === 'int8') plan.delete(l.index); else plan.set(l.index, next);
    mode.value = 'mixed';
    showPlan();
  } });
  const planObject = () => {
    const p = { default: 'int8', fp32: [], fp16: [] };
    for (const [l, prec] of planOf(model.value)) p[prec].push(l);
    p.fp32.sort((a, b) => a - b); p.fp16.sort((a, b) => a - b);
    return p;
  };
  const showPlan = () => {
    const p = planObject();
    fp32.value = p.fp32.join(', ');
    fp16.value = p.fp16.join(', ');
    planText.textContent = `plan for ${model.value}: ${['fp32', 'fp16'].map((k) => (p[k].length ? `${k}=${p[k].join(',')}` : '')).filter(Boolean).join(' ')} default=int8` +
      ' (click layers to cycle int8 → fp16 → fp32, or type their indices; used with mode "mixed")';
    if (drawnModel === model.value) graphView.setClasses((l) => 'plan-' + (planOf(model.value).get(l.index) || 'int8'));
  };
  const typed = () => {
    const plan = planOf(model.value);
    plan.clear();
    for (const l of layerList(fp16.value)) plan.set(l, 'fp16');
    for (const l of layerList(fp32.value)) plan.set(l, 'fp32');
    if (plan.size) mode.value = 'mixed';
    showPlan();
  };
  fp32.addEventListener('change', typed);
  fp16.addEventListener('change', typed);
  const loadGraph = () => attempt(async () => {
    graphBox.classList.add('loading');
    showPlan();
    const graph = await latest(graphOf(model.value));
    drawnModel = model.value;
    graphView.setGraph(graph);
    graphBox.classList.remove('loading');
    showPlan();
  });
  model.addEventListener('change', loadGraph);
  const run = () => attempt(async () => {
    const body = { model: model.value, calib: calib.value, method: method.value, mode: mode.value, calib_images: Number(images.value) };
    if (mode.value === 'mixed') body.plan = planObject();
    const { job } = await api('POST', '/api/jobs/quantize', body);
    say(`Quantization job ${job} running ...`);
    bar.value = 0;
    const done = await waitForJob(job, (p) => { bar.max = p.total; bar.value = p.done; });
    if (done.status !== 'done') throw new Error(`job ${job} ${done.status}: ${done.error}`);
    bar.value = bar.max;
    const report = await (await fetch(fileUrl(done.result.report))).text();
    result.replaceChildren(
      h('p', {}, 'Download: ', h('a', { id: 'q-download-model', href: fileUrl(done.result.model, true) }, done.result.model), ' · ',
        h('a', { id: 'q-download-report', href: fileUrl(done.result.report, true) }, done.result.report)),
      h('pre', { id: 'q-report' }, report));
    say(`Quantized: ${done.result.model}.`);
  });
  if (!render(gen,
    h('section', { class: 'card' }, h('h2', {}, 'Quantize a model'),
      h('label', {}, 'model ', model), h('label', {}, 'calibration images ', calib), h('label', {}, 'at most ', images),
      h('label', {}, 'method ', method), h('label', {}, 'mode ', mode),
      h('button', { id: 'q-run', onclick: run }, 'Quantize'), bar, h('br'),
      h('label', {}, 'fp32 layers ', fp32), h('label', {}, 'fp16 layers ', fp16), planText, result),
    graphBox)) return;
  if (f.models.length) loadGraph();
}
