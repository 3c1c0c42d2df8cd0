// Model: the layer graph (zoom, pan, fit, minimap, search, stages), any
// per-layer figure coloured onto it, and a diff against a second model.
import { h, say, options, formatCount, num, sqnrDelta } from '../util.js';
import { GraphView, modelStatistics } from '../graph.js';
import { diffModels } from '../diff.js';
import { attempt, listFiles, nextGeneration, render, latestOnly, graphOf, finishedJobs } from './common.js';

function layerDetails(l) {
  const rows = [
    ['layer', `${l.index} (${l.type})`], ['cfg line', l.location ? l.location.line : '-'],
    ['inputs', (l.inputs || []).join(', ')], ['output', (l.output_shape || []).join(' × ')],
    ['precision', l.precision], ['parameters', formatCount(l.params)], ['MACs', formatCount(l.macs)],
    ['BFLOPs', num(l.bflops)], ['batch norm', l.batch_normalize ? 'yes' : 'no'],
    ['weights', Object.entries(l.weight_bytes || {}).map(([k, v]) => `${k}: ${formatCount(v)}B`).join(', ') || '-'],
    ...Object.entries(l.attributes || {}).map(([k, v]) => [k, JSON.stringify(v)]),
  ];
  return h('table', { id: 'layer-details' }, rows.map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, v))));
}

function summaryLine(graph) {
  const s = modelStatistics(graph);
  return `${s.layers} layers, ${formatCount(s.params)} parameters, ${formatCount(s.macs)} MACs, ` +
    `weights ${formatCount(s.weightBytes)}B, input ${(graph.model.input_shape || []).join('×')}, ` +
    `precisions: ${Object.entries(s.precisions).map(([k, v]) => `${k} ${v}`).join(', ')}`;
}

// The figures a layer can be coloured by: from the graph, or from a run.
function figureValues(figure, graph, run) {
  const map = new Map();
  if (figure === 'macs' || figure === 'params') graph.layers.forEach((l) => map.set(l.index, l[figure] || 0));
  else if (figure === 'bytes') graph.layers.forEach((l) => map.set(l.index, Object.values(l.weight_bytes || {}).reduce((a, b) => a + b, 0)));
  else if (run && (figure === 'sqnr' || figure === 'time')) run.result.layers.forEach((l) => map.set(l.layer, figure === 'sqnr' ? l.sqnr_db : l.ms));
  return map;
}

const FIGURES = [['precision', 'precision'], ['macs', 'MACs'], ['params', 'parameters'], ['bytes', 'weight bytes'],
  ['sqnr', 'SQNR of a run (dB)'], ['time', 'time of a run (ms)'], ['change', 'parameter change vs the compared model']];

function diffTable(d, runA, runB) {
  const sq = (run, l) => (run && l ? (run.result.layers[l.index] || {}).sqnr_db : undefined);
  const rows = d.rows.map((r) => {
    const delta = sqnrDelta(sq(runA, r.a), sq(runB, r.b));
    return h('tr', { class: 'diff-' + r.status },
      h('td', {}, r.a ? `${r.a.index} ${r.a.type}` : ''), h('td', {}, r.b ? `${r.b.index} ${r.b.type}` : ''),
      h('td', { class: 'status' }, r.status),
      h('td', {}, r.a ? (r.a.output_shape || []).join('×') : ''), h('td', {}, r.b ? (r.b.output_shape || []).join('×') : ''),
      h('td', {}, `${r.a ? r.a.precision : '-'} → ${r.b ? r.b.precision : '-'}`),
      h('td', {}, `${formatCount(r.a ? r.a.macs : 0)} → ${formatCount(r.b ? r.b.macs : 0)}`),
      h('td', {}, `${formatCount(r.a ? r.a.params : 0)} → ${formatCount(r.b ? r.b.params : 0)}`),
      h('td', { class: delta === null ? '' : delta < 0 ? 'bad' : 'good' }, delta === null ? '-' : num(delta)));
  });
  const t = d.totals, pct = ([a, b]) => (a ? ` (${(((b - a) / a) * 100).toFixed(1)}%)` : '');
  return h('div', {},
    h('p', { id: 'diff-summary' }, `layers ${t.layers[0]} → ${t.layers[1]}; MACs ${formatCount(t.macs[0])} → ${formatCount(t.macs[1])}${pct(t.macs)}; ` +
      `parameters ${formatCount(t.params[0])} → ${formatCount(t.params[1])}${pct(t.params)}; weights ${formatCount(t.bytes[0])}B → ${formatCount(t.bytes[1])}B${pct(t.bytes)}; ` +
      Object.entries(d.counts).map(([k, v]) => `${v} ${k}`).join(', ')),
    h('table', { id: 'diff-table' },
      h('tr', {}, ['A', 'B', 'change', 'A shape', 'B shape', 'precision', 'MACs', 'parameters', 'Δ SQNR dB (B − A runs)'].map((x) => h('th', {}, x))), rows));
}

export async function showModel(gen = nextGeneration()) {
  const f = await listFiles();
  const runs = await finishedJobs('inference');
  const select = h('select', { id: 'model-select' }), other = h('select', { id: 'diff-select' });
  const figure = h('select', { id: 'figure-select' }), runSel = h('select', { id: 'figure-run' });
  options(select, f.models);
  options(other, ['(none)', ...f.models]);
  options(figure, FIGURES);
  const runChoices = (model) => runs.filter((r) => r.result.model === model).map((r) => [String(r.id), `run ${r.id}: ${r.result.mode} on ${r.result.image}`]);
  const graphBox = h('div', { class: 'graph', id: 'graph' }), otherBox = h('div', { class: 'graph', id: 'graph-b' });
  const details = h('div', { class: 'details' }, h('p', {}, 'Click a layer for its details.'));
  const stats = h('div', { id: 'model-stats' }), diffBox = h('div', { id: 'diff' });
  const view = new GraphView(graphBox, { onSelect: (l) => details.replaceChildren(layerDetails(l)), id: 'graph' });
  const viewB = new GraphView(otherBox, { onSelect: (l) => details.replaceChildren(layerDetails(l)), id: 'graph-b' });
  otherBox.hidden = true;
  const latest = latestOnly(), latestB = latestOnly();
  let graph = null, graphB = null, diff = null;
  const recolor = () => {
    const run = runs.find((r) => String(r.id) === runSel.value);
    if (figure.value === 'precision') return view.colorBy(null);
    if (figure.value === 'change') {
      const change = new Map();
      if (diff) for (const r of diff.rows) if (r.a) change.set(r.a.index, r.b ? (r.b.params || 0) - (r.a.params || 0) : -(r.a.params || 0));
      return view.colorBy(change, { label: 'parameter change', higherIsBetter: true, format: formatCount });
    }
    const label = FIGURES.find(([k]) => k === figure.value)[1];
    view.colorBy(figureValues(figure.value, graph, run), { label, higherIsBetter: figure.value === 'sqnr', format: figure.value === 'sqnr' || figure.value === 'time' ? num : formatCount });
  };
  const showDiff = () => {
    diff = graph && graphB ? diffModels(graph, graphB) : null;
    if (!diff) { diffBox.replaceChildren(); otherBox.hidden = true; return; }
    otherBox.hidden = false;
    const statusB = new Map(diff.rows.filter((r) => r.b).map((r) => [r.b.index, r.status]));
    const statusA = new Map(diff.rows.filter((r) => r.a).map((r) => [r.a.index, r.status]));
    viewB.setClasses((l) => 'diff ' + (statusB.get(l.index) || ''));
    view.setClasses((l) => 'diff ' + (statusA.get(l.index) || ''));
    const runA = runs.find((r) => r.result.model === select.value), runB = runs.find((r) => r.result.model === other.value);
    diffBox.replaceChildren(h('h3', {}, `${select.value} → ${other.value}`), diffTable(diff, runA, runB));
  };
  const open = () => attempt(async () => {
    say(`Reading ${select.value} ...`);
    graph = await latest(graphOf(select.value));
    stats.replaceChildren(h('p', {}, summaryLine(graph)));
    view.setGraph(graph);
    options(runSel, runChoices(select.value));
    recolor();
    showDiff();
    say(`${select.value}: ${graph.layers.length} layers.`);
  });
  const openOther = () => attempt(async () => {
    if (other.selectedIndex === 0) { graphB = null; return showDiff(); }
    graphB = await latestB(graphOf(other.value));
    viewB.setGraph(graphB);
    showDiff();
    recolor();
  });
  select.addEventListener('change', open);
  other.addEventListener('change', openOther);
  figure.addEventListener('change', recolor);
  runSel.addEventListener('change', recolor);
  if (!render(gen, h('section', { class: 'card' },
    h('label', {}, 'model ', select), h('label', {}, 'compare with ', other),
    h('label', {}, 'colour by ', figure), h('label', {}, 'run ', runSel), stats),
  h('div', { class: 'row' }, graphBox, otherBox, details), diffBox)) return;
  if (f.models.length) open();
}
