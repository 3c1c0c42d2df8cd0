// Step debugger: a session of your own (kept across reloads: the page
// reattaches to it), layers picked on the graph, feature maps and
// histograms with axes, colour bar and read-out, redrawn after an edit and
// a re-run; command results as tables.
import { api, fileUrl } from '../api.js';
import { h, say, options, num } from '../util.js';
import { GraphView } from '../graph.js';
import { parseNpy } from '../npy.js';
import { attempt, listFiles, nextGeneration, render, preferImages, preferCalib, graphOf, current, latestOnly } from './common.js';
import { featureMaps, histogramOf, quantText, replyTable } from './tensor.js';

let session = null; // { id, layers, position, model }
export function forgetSession(id) { if (session && (id === undefined || session.id === id)) session = null; }
export function currentSession() { return session; }

// The live session of the user after a reload: the newest one.
async function reattach() {
  const { sessions } = await api('GET', '/api/sessions');
  const live = sessions.filter((s) => s.ready).sort((a, b) => b.session - a.session)[0];
  if (!live) return null;
  const status = await api('POST', `/api/sessions/${live.session}/command`, { cmd: 'status' });
  return { id: live.session, layers: live.layers, position: (status.status || {}).position ?? 0, model: live.args.model, reattached: true };
}

function statsTable(stats) {
  const rows = ['min', 'max', 'mean', 'std', 'zeros', 'count'].map((k) => h('tr', {}, h('th', {}, k), h('td', {}, num(stats[k]))));
  rows.push(h('tr', {}, h('th', {}, 'dtype'), h('td', {}, stats.dtype || '-')));
  if (stats.quant) rows.push(h('tr', {}, h('th', {}, 'int8'), h('td', { id: 'dbg-quant' }, quantText(stats.quant))));
  return h('table', { id: 'dbg-stats' }, rows);
}

export async function showDebugger(gen = nextGeneration()) {
  const f = await listFiles();
  if (!session) session = await reattach();
  if (!current(gen)) return;
  const model = h('select', { id: 'dbg-model' }), image = h('select', { id: 'dbg-image' });
  const mode = h('select', { id: 'dbg-mode' }), calib = h('select', { id: 'dbg-calib' });
  options(model, f.models); options(image, f.images); preferImages(image, f.images);
  options(mode, ['float', 'hybrid', 'int8', 'fp16']); mode.value = 'int8';
  options(calib, ['(none)', ...f.dirs]); preferCalib(calib, f.dirs);
  const status = h('p', { id: 'dbg-status' }, 'No session.');
  const log = h('pre', { id: 'dbg-log' }), result = h('div', { id: 'dbg-result-box' });
  const view = h('div', { id: 'dbg-view' });
  const picker = h('div', { class: 'graph picker', id: 'dbg-graph' });
  const layer = h('input', { id: 'dbg-layer', type: 'number', min: 0, value: 0, style: 'width:5em' });
  const what = h('select', { id: 'dbg-what' }); options(what, ['output', 'input', 'weights']);
  const crossPrec = h('select', { id: 'dbg-cross-prec' }); options(crossPrec, ['fp32', 'fp16', 'int8']);
  const wIndex = h('input', { id: 'dbg-w-index', type: 'number', value: 0, style: 'width:7em' });
  const wValue = h('input', { id: 'dbg-w-value', type: 'number', value: 0, step: 'any', style: 'width:7em' });
  const saveFile = h('input', { id: 'dbg-save-file', value: 'models/edited.mlirbc' });
  const graphView = new GraphView(picker, { compact: true, id: 'dbg-graph', onSelect: (l) => { layer.value = l.index; } });
  let shown = null; // what the view shows: redrawn after edits
  const latestInspect = latestOnly(); // the view shows what was asked last

  const showStatus = (reply = {}) => {
    if (!session) { status.textContent = 'No session.'; return; }
    status.textContent = `session ${session.id} (${session.model}): ${session.layers} layers, next layer ${session.position}` +
      (reply.reason ? ` (stopped: ${reply.reason})` : '') +
      (reply.last ? `, last ran: layer ${reply.last.layer} ${reply.last.kind} (${reply.last.precision})` : '');
  };
  const show = (reply) => {
    log.textContent = JSON.stringify(reply, null, 1).slice(0, 20000);
    if (reply.position !== undefined && session) session.position = reply.position;
    if (!['stats', 'dump', 'histogram'].includes(reply.cmd)) result.replaceChildren(replyTable(reply));
    showStatus(reply);
  };
  const cmd = (request) => attempt(async () => {
    if (!session) throw new Error('start a session first');
    const reply = await api('POST', `/api/sessions/${session.id}/command`, request);
    if (!reply.ok) throw new Error(reply.error);
    show(reply);
    say(`${request.cmd}: ok`);
    if (['set-weights', 'rerun', 'restart', 'run-to', 'step', 'continue'].includes(request.cmd) && shown) await inspect(shown);
    return reply;
  });
  const loadGraph = async () => {
    if (session && session.model) graphView.setGraph(await graphOf(session.model));
  };
  const start = () => attempt(async () => {
    const body = { model: model.value, image: image.value, mode: mode.value };
    if (calib.selectedIndex > 0) body.calib = calib.value;
    say('Starting the session (loading and calibrating) ...');
    const r = await api('POST', '/api/sessions', body);
    session = { id: r.session, layers: r.load.layers, position: 0, model: model.value };
    show(r.load);
    await loadGraph();
    say(`Session ${r.session} ready.`);
  });
  const inspect = (target = { n: Number(layer.value), w: what.value }) => latestInspect(fetchTensor(target)).then(drawTensor);
  const fetchTensor = async (target) => {
    const { n, w } = target;
    const request = (body) => api('POST', `/api/sessions/${session.id}/command`, body);
    const stats = await request({ cmd: 'stats', layer: n, what: w, bins: 32 });
    if (!stats.ok) throw new Error(stats.error);
    const base = `session/layer${n}-${w}`;
    for (const file of [`${base}.npy`, `${base}.png`]) {
      const r = await request({ cmd: 'dump', layer: n, what: w, file });
      if (!r.ok) throw new Error(r.error);
    }
    await request({ cmd: 'histogram', layer: n, what: w, file: `${base}-hist.png` });
    const npy = parseNpy(await (await fetch(fileUrl(`${base}.npy`), { credentials: 'same-origin' })).arrayBuffer());
    return { target, stats, npy, base };
  };
  const drawTensor = ({ target, stats, npy, base }) => {
    const { n, w } = target;
    shown = target;
    view.replaceChildren(h('div', { class: 'row' },
      h('div', {}, h('h4', {}, `layer ${n} ${w} ${(stats.shape || []).join('×')}`), featureMaps(npy)),
      h('div', {}, h('h4', {}, 'histogram'), histogramOf(stats), statsTable(stats))),
    h('details', {}, h('summary', {}, 'as pictures written by the session'),
      h('img', { class: 'tensor', id: 'dbg-tensor-img', src: fileUrl(`${base}.png`) }),
      h('img', { class: 'tensor', id: 'dbg-hist-img', src: fileUrl(`${base}-hist.png`) })));
    log.textContent = JSON.stringify(stats, null, 1).slice(0, 20000);
  };
  const button = (id, label, fn) => h('button', { id, onclick: fn }, label);
  if (!render(gen,
    h('section', { class: 'card' }, h('h2', {}, 'Step session'),
      h('label', {}, 'model ', model), h('label', {}, 'image ', image), h('label', {}, 'mode ', mode), h('label', {}, 'calibration ', calib),
      button('dbg-start', 'Start', start),
      button('dbg-end', 'End session', () => attempt(async () => {
        if (session) await api('DELETE', `/api/sessions/${session.id}`);
        session = null; showStatus(); say('Session ended.');
      })), status),
    h('section', { class: 'card' }, h('h3', {}, 'Run'),
      button('dbg-step', 'Step', () => cmd({ cmd: 'step' })),
      button('dbg-continue', 'Continue', () => cmd({ cmd: 'continue' })),
      button('dbg-runto', 'Run to layer', () => cmd({ cmd: 'run-to', layer: Number(layer.value) })),
      button('dbg-break', 'Break after layer', () => cmd({ cmd: 'break', layer: Number(layer.value) })),
      button('dbg-clear', 'Clear breakpoints', () => cmd({ cmd: 'break', clear: true })),
      button('dbg-restart', 'Restart', () => cmd({ cmd: 'restart' })),
      button('dbg-pause', 'Pause', () => cmd({ cmd: 'pause' })),
      button('dbg-resume', 'Resume', () => cmd({ cmd: 'resume' })),
      button('dbg-stop', 'Stop', () => cmd({ cmd: 'stop' }))),
    h('div', { class: 'row' }, picker,
      h('section', { class: 'card details' }, h('h3', {}, 'Layer (pick it on the graph)'),
        h('label', {}, 'layer ', layer), h('label', {}, 'tensor ', what),
        button('dbg-show', 'Show', () => attempt(() => inspect())),
        button('dbg-compare', 'Compare with float', () => cmd({ cmd: 'compare', layer: Number(layer.value) })),
        h('br'), h('label', {}, 'cross to ', crossPrec),
        button('dbg-cross', 'Cross', () => cmd({ cmd: 'cross', layer: Number(layer.value), precision: crossPrec.value })),
        h('br'), h('label', {}, 'weight index ', wIndex), h('label', {}, 'value ', wValue),
        button('dbg-set-weight', 'Set weight', () => cmd({ cmd: 'set-weights', layer: Number(layer.value), index: Number(wIndex.value), value: Number(wValue.value) })),
        button('dbg-rerun', 'Re-run', () => cmd({ cmd: 'rerun', layer: Number(layer.value) })),
        h('br'), h('label', {}, 'save as ', saveFile),
        button('dbg-save', 'Save model', () => cmd({ cmd: 'save', file: saveFile.value })), result)),
    view, h('details', { open: true, class: 'raw' }, h('summary', {}, 'raw reply (JSON)'), log))) return;
  showStatus();
  if (session) {
    if (session.reattached) say(`Reattached to your session ${session.id}.`);
    attempt(loadGraph);
  }
}
