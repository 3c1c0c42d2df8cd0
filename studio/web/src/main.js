// qsim-studio's browser UI: plain DOM, one view per hash (#files, #model,
// #inference, #debugger, #quantize, #jobs).
import { api, ApiError, setCsrf, fileUrl, startEvents, stopEvents, onEvent, waitForJob } from './api.js';
import { renderGraph, modelStatistics, formatCount } from './graph.js';

const main = document.getElementById('main');
const notice = document.getElementById('notice');
let me = null;
// Views load data before they draw; only the latest view asked for may draw
// (a slow response must not paint over the login form or a newer view).
let generation = 0;
function render(gen, ...nodes) {
  if (gen === generation) main.replaceChildren(...nodes);
}

function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== false && v !== undefined && v !== null) e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) e.append(c instanceof Node ? c : String(c));
  return e;
}

function say(text, isError) {
  notice.textContent = text;
  notice.className = isError ? 'error' : '';
}

// Runs an action, showing its error (the server's message) instead of failing.
async function attempt(fn) {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401 && me) { showLogin(); }
    say(e.message, true);
    return undefined;
  }
}

function options(select, values, keep) {
  const previous = keep ? select.value : null;
  select.replaceChildren(...values.map((v) => h('option', { value: v }, v)));
  if (previous && values.includes(previous)) select.value = previous;
}

async function listFiles() {
  const { files } = await api('GET', '/api/files');
  return {
    all: files,
    models: files.filter((f) => f.kind === 'model').map((f) => f.path),
    images: files.filter((f) => f.kind === 'image').map((f) => f.path),
    dirs: files.filter((f) => f.directory).map((f) => f.path),
    cfgs: files.filter((f) => f.kind === 'cfg').map((f) => f.path),
    weights: files.filter((f) => f.kind === 'weights').map((f) => f.path),
  };
}

// Pictures to run on: those under images/ first (calib/ holds calibration).
function preferImages(select, images) {
  const first = images.find((p) => p.startsWith('images/'));
  if (first) select.value = first;
}

function sqnrText(v) {
  if (v === undefined || v === null) return '-';
  return typeof v === 'number' ? v.toFixed(2) : String(v);
}

//===--- login ---------------------------------------------------------===//

function showLogin() {
  me = null;
  ++generation;
  stopEvents();
  document.getElementById('nav').hidden = true;
  document.getElementById('logout').hidden = true;
  document.getElementById('who').textContent = '';
  const name = h('input', { id: 'login-name', placeholder: 'user name', autocomplete: 'username' });
  const password = h('input', { id: 'login-password', type: 'password', placeholder: 'password', autocomplete: 'current-password' });
  const go = (path) => attempt(async () => {
    const r = await api('POST', path, { name: name.value, password: password.value });
    loggedIn(r);
  });
  main.replaceChildren(h('section', { class: 'card' },
    h('h2', {}, 'Log in to qsim-studio'),
    name, password,
    h('button', { id: 'login-button', onclick: () => go('/api/login') }, 'Log in'),
    h('button', { id: 'register-button', onclick: () => go('/api/register') }, 'Register'),
    h('p', {}, 'A new account needs a name of 3 to 32 lower-case letters, digits, "_" or "-" and a password of at least 8 characters.')));
}

function loggedIn(r) {
  me = r.name;
  setCsrf(r.csrf);
  say(`Logged in as ${r.name}.`);
  document.getElementById('nav').hidden = false;
  document.getElementById('logout').hidden = false;
  document.getElementById('who').textContent = r.name;
  startEvents();
  route();
}

document.getElementById('logout').addEventListener('click', () => attempt(async () => {
  await api('POST', '/api/logout');
  say('Logged out.');
  showLogin();
}));

//===--- files ---------------------------------------------------------===//

async function showFiles(gen = ++generation) {
  const f = await listFiles();
  const dir = h('input', { id: 'upload-dir', value: 'models', size: 12 });
  const input = h('input', { id: 'upload-file', type: 'file', multiple: true });
  const cfg = h('select', { id: 'import-cfg' });
  const weights = h('select', { id: 'import-weights' });
  options(cfg, f.cfgs);
  options(weights, ['(synthetic weights)', ...f.weights]);
  // Each action redraws the list before it reports, so that what it reports
  // is on the page.
  const upload = () => attempt(async () => {
    const count = input.files.length;
    if (!count) throw new Error('choose one or more files first');
    for (const file of input.files) {
      const name = file.name.replace(/[^A-Za-z0-9._+-]/g, '_');
      const path = `${dir.value.replace(/\/+$/, '')}/${name}`;
      say(`Uploading ${path} ...`);
      await api('POST', `/api/files?path=${encodeURIComponent(path)}&overwrite=1`, file);
    }
    await showFiles();
    say(`Uploaded ${count} file(s).`);
  });
  const importModel = () => attempt(async () => {
    const body = { cfg: cfg.value };
    if (weights.selectedIndex > 0) body.weights = weights.value;
    const { job } = await api('POST', '/api/models/import', body);
    say(`Importing ${cfg.value} (job ${job}) ...`);
    const done = await waitForJob(job);
    if (done.status !== 'done') throw new Error(done.error);
    await showFiles();
    say(`Imported ${done.result.model}.`);
  });
  const rows = f.all.map((e) => h('tr', { 'data-path': e.path },
    h('td', {}, e.directory ? e.path + '/' : h('a', { href: fileUrl(e.path, true) }, e.path)),
    h('td', {}, e.kind), h('td', {}, e.directory ? '' : formatCount(e.size) + 'B'),
    h('td', {},
      e.kind === 'image' ? h('button', { class: 'augment', onclick: () => attempt(async () => {
        const r = await api('POST', '/api/files/augment', { path: e.path });
        await showFiles();
        say(`Augmented: ${r.files.join(', ')}`);
      }) }, 'Augment ×5') : '',
      h('button', { class: 'delete', onclick: () => attempt(async () => {
        if (!confirm(`Delete ${e.path}?`)) return;
        await api('DELETE', `/api/files?path=${encodeURIComponent(e.path)}`);
        showFiles();
      }) }, 'Delete'))));
  render(gen, 
    h('section', { class: 'card' }, h('h2', {}, 'Upload'),
      h('label', {}, 'into folder ', dir), input,
      h('button', { id: 'upload-button', onclick: upload }, 'Upload')),
    h('section', { class: 'card' }, h('h2', {}, 'Import a Darknet model'),
      h('label', {}, 'cfg ', cfg), h('label', {}, 'weights ', weights),
      h('button', { id: 'import-button', onclick: importModel }, 'Import')),
    h('section', { class: 'card' }, h('h2', {}, 'Your files'),
      h('table', { id: 'file-table' }, h('tr', {}, h('th', {}, 'path'), h('th', {}, 'kind'), h('th', {}, 'size'), h('th', {}, '')), rows)));
}

//===--- model view ----------------------------------------------------===//

function layerDetails(l) {
  const rows = [
    ['layer', `${l.index} (${l.type})`], ['cfg line', l.location ? l.location.line : '-'],
    ['inputs', (l.inputs || []).join(', ')], ['output', (l.output_shape || []).join(' x ')],
    ['precision', l.precision], ['parameters', formatCount(l.params)], ['MACs', formatCount(l.macs)],
    ['BFLOPs', l.bflops], ['batch norm', l.batch_normalize ? 'yes' : 'no'],
    ['weights', Object.entries(l.weight_bytes || {}).map(([k, v]) => `${k}: ${formatCount(v)}B`).join(', ') || '-'],
    ...Object.entries(l.attributes || {}).map(([k, v]) => [k, JSON.stringify(v)]),
  ];
  return h('table', { id: 'layer-details' }, rows.map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, v))));
}

async function showModel(gen = ++generation) {
  const f = await listFiles();
  const select = h('select', { id: 'model-select' });
  options(select, f.models);
  const graphBox = h('div', { class: 'graph', id: 'graph' });
  const details = h('div', { class: 'details' }, h('p', {}, 'Click a layer for its details.'));
  const stats = h('div', { id: 'model-stats' });
  const open = () => attempt(async () => {
    say(`Reading ${select.value} ...`);
    const graph = await api('GET', `/api/models/graph?path=${encodeURIComponent(select.value)}`);
    const s = modelStatistics(graph);
    stats.replaceChildren(h('p', {},
      `${s.layers} layers, ${formatCount(s.params)} parameters, ${formatCount(s.macs)} MACs, ` +
      `weights ${formatCount(s.weightBytes)}B, input ${(graph.model.input_shape || []).join('x')}, ` +
      `precisions: ${Object.entries(s.precisions).map(([k, v]) => `${k} ${v}`).join(', ')}`),
    h('p', { class: 'legend' }, h('span', { class: 'prec-fp32', style: 'background:#90caf9' }, 'fp32'),
      h('span', { style: 'background:#ffe082' }, 'fp16'), h('span', { style: 'background:#a5d6a7' }, 'int8'),
      ' edges: black = next layer, blue dashed = route, red dotted = shortcut'));
    renderGraph(graphBox, graph, {
      precisionOf: (l) => (['fp32', 'fp16', 'int8'].includes(l.precision) ? l.precision : 'other'),
      onSelect: (l) => details.replaceChildren(layerDetails(l)),
    });
    say(`${select.value}: ${s.layers} layers.`);
  });
  render(gen, h('section', { class: 'card' },
    h('label', {}, 'model ', select), h('button', { id: 'model-open', onclick: open }, 'Open'), stats),
  h('div', { class: 'row' }, graphBox, details));
  if (f.models.length) open();
}

//===--- inference -----------------------------------------------------===//

const runs = []; // finished inference jobs of this page

function parsePlan(text) {
  // "fp32=0,15 fp16=3 default=int8"
  const plan = { default: 'int8' };
  for (const part of text.trim().split(/\s+/).filter(Boolean)) {
    const [k, v] = part.split('=');
    if (k === 'default') plan.default = v;
    else plan[k] = v.split(',').filter(Boolean).map(Number);
  }
  return plan;
}

function drawDetections(canvas, imagePath, result) {
  const img = new Image();
  img.onload = () => {
    const scale = Math.min(1, 640 / img.width);
    canvas.width = img.width * scale;
    canvas.height = img.height * scale;
    const ctx = canvas.getContext('2d');
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    ctx.lineWidth = 2;
    ctx.font = '12px sans-serif';
    for (const d of result.detections.slice(0, 50)) {
      const [l, t, r, b] = d.box.map((v) => v * scale);
      ctx.strokeStyle = `hsl(${(d.class_id * 47) % 360},80%,45%)`;
      ctx.strokeRect(l, t, r - l, b - t);
      ctx.fillStyle = ctx.strokeStyle;
      ctx.fillText(`${d.class_id} ${(d.prob * 100).toFixed(0)}%`, l + 2, t + 12);
    }
  };
  img.onerror = () => { canvas.replaceWith(h('p', {}, `${imagePath}: the browser cannot show this image format (boxes are in the table)`)); };
  img.src = fileUrl(imagePath);
}

function runCard(job) {
  const r = job.result;
  const canvas = h('canvas', { class: 'detections', 'data-job': job.id });
  drawDetections(canvas, r.image, r);
  return h('section', { class: 'card run', 'data-job': job.id },
    h('h3', {}, `Run ${job.id}: ${r.model} on ${r.image}, ${r.mode} — ${r.detection_count} detection(s), ${r.ms.toFixed(1)} ms`),
    h('div', { class: 'row' }, canvas,
      h('table', { class: 'sqnr' }, h('tr', {}, h('th', {}, 'layer'), h('th', {}, 'kind'), h('th', {}, 'precision'), h('th', {}, 'SQNR dB vs float'), h('th', {}, 'ms')),
        r.layers.map((l) => h('tr', {}, h('td', {}, l.layer), h('td', {}, l.kind), h('td', {}, l.precision), h('td', {}, sqnrText(l.sqnr_db)), h('td', {}, l.ms.toFixed(2)))))));
}

function compareTable(a, b) {
  const la = a.result.layers, lb = b.result.layers;
  return h('table', { id: 'compare-table' },
    h('tr', {}, h('th', {}, 'layer'), h('th', {}, 'kind'), h('th', {}, `run ${a.id} (${a.result.mode})`), h('th', {}, 'SQNR'), h('th', {}, `run ${b.id} (${b.result.mode})`), h('th', {}, 'SQNR'), h('th', {}, 'Δ dB')),
    la.map((l, i) => {
      const m = lb[i] || {};
      const d = typeof l.sqnr_db === 'number' && typeof m.sqnr_db === 'number' ? m.sqnr_db - l.sqnr_db : null;
      return h('tr', {}, h('td', {}, l.layer), h('td', {}, l.kind), h('td', {}, l.precision), h('td', {}, sqnrText(l.sqnr_db)),
        h('td', {}, m.precision || '-'), h('td', {}, sqnrText(m.sqnr_db)),
        h('td', { class: d === null ? '' : d < 0 ? 'bad' : 'good' }, d === null ? '-' : d.toFixed(2)));
    }),
    h('tr', {}, h('th', {}, 'detections'), h('td', {}), h('td', {}), h('td', {}, a.result.detection_count), h('td', {}), h('td', {}, b.result.detection_count)));
}

async function showInference(gen = ++generation) {
  const f = await listFiles();
  const model = h('select', { id: 'inf-model' });
  const image = h('select', { id: 'inf-image' });
  const calib = h('select', { id: 'inf-calib' });
  const mode = h('select', { id: 'inf-mode' });
  options(model, f.models);
  options(image, f.images);
  preferImages(image, f.images);
  options(calib, ['(none)', ...f.dirs]);
  if (f.dirs.includes('calib')) calib.value = 'calib';
  options(mode, ['float', 'hybrid', 'int8', 'fp16', 'mixed']);
  mode.value = 'int8';
  const plan = h('input', { id: 'inf-plan', value: 'fp32=0 default=int8', size: 24 });
  const bar = h('progress', { id: 'inf-progress', max: 1, value: 0 });
  const list = h('div', { id: 'runs' });
  const cmpA = h('select', { id: 'cmp-a' }), cmpB = h('select', { id: 'cmp-b' });
  const cmpOut = h('div', { id: 'compare' });
  const refreshRuns = () => {
    list.replaceChildren(...runs.slice().reverse().map(runCard));
    const ids = runs.map((r) => String(r.id));
    options(cmpA, ids, true); options(cmpB, ids, true);
    if (ids.length > 1 && cmpA.value === cmpB.value) {
      cmpA.value = ids[ids.length - 2];
      cmpB.value = ids[ids.length - 1];
    }
  };
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
    runs.push(done);
    say(`Run ${job} finished: ${done.result.detection_count} detection(s).`);
    refreshRuns();
  });
  render(gen, 
    h('section', { class: 'card' }, h('h2', {}, 'Run a model on an image'),
      h('label', {}, 'model ', model), h('label', {}, 'image ', image), h('label', {}, 'mode ', mode),
      h('label', {}, 'calibration ', calib), h('label', {}, 'mixed plan ', plan),
      h('button', { id: 'inf-run', onclick: run }, 'Run'), bar),
    h('section', { class: 'card' }, h('h2', {}, 'Compare two runs'), cmpA, cmpB,
      h('button', { id: 'cmp-show', onclick: () => {
        const a = runs.find((r) => String(r.id) === cmpA.value), b = runs.find((r) => String(r.id) === cmpB.value);
        if (a && b) cmpOut.replaceChildren(compareTable(a, b));
      } }, 'Compare'), cmpOut),
    list);
  refreshRuns();
}

//===--- step debugger -------------------------------------------------===//

let session = null; // { id, layers, position }

async function showDebugger(gen = ++generation) {
  const f = await listFiles();
  const model = h('select', { id: 'dbg-model' }), image = h('select', { id: 'dbg-image' });
  const mode = h('select', { id: 'dbg-mode' }), calib = h('select', { id: 'dbg-calib' });
  options(model, f.models); options(image, f.images); preferImages(image, f.images);
  options(mode, ['float', 'hybrid', 'int8', 'fp16']); mode.value = 'int8';
  options(calib, ['(none)', ...f.dirs]);
  if (f.dirs.includes('calib')) calib.value = 'calib';
  const status = h('p', { id: 'dbg-status' }, session ? `session ${session.id}` : 'No session.');
  const log = h('pre', { id: 'dbg-log' });
  const view = h('div', { id: 'dbg-view', class: 'row' });
  const layer = h('input', { id: 'dbg-layer', type: 'number', min: 0, value: 0, style: 'width:5em' });
  const what = h('select', { id: 'dbg-what' }); options(what, ['output', 'input', 'weights']);
  const crossPrec = h('select', { id: 'dbg-cross-prec' }); options(crossPrec, ['fp32', 'fp16', 'int8']);
  const wIndex = h('input', { id: 'dbg-w-index', type: 'number', value: 0, style: 'width:7em' });
  const wValue = h('input', { id: 'dbg-w-value', type: 'number', value: 0, step: 'any', style: 'width:7em' });
  const saveFile = h('input', { id: 'dbg-save-file', value: 'models/edited.mlirbc' });

  const show = (reply) => {
    log.textContent = JSON.stringify(reply, null, 1).slice(0, 4000);
    if (reply.position !== undefined && session) session.position = reply.position;
    if (session) status.textContent = `session ${session.id}: ${session.layers} layers, next layer ${session.position}` +
      (reply.reason ? ` (stopped: ${reply.reason})` : '') + (reply.last ? `, last ran: layer ${reply.last.layer} ${reply.last.kind} (${reply.last.precision})` : '');
  };
  const cmd = (request) => attempt(async () => {
    if (!session) throw new Error('start a session first');
    const reply = await api('POST', `/api/sessions/${session.id}/command`, request);
    if (!reply.ok) throw new Error(reply.error);
    show(reply);
    say(`${request.cmd}: ok`);
    return reply;
  });
  const start = () => attempt(async () => {
    const body = { model: model.value, image: image.value, mode: mode.value };
    if (calib.selectedIndex > 0) body.calib = calib.value;
    say('Starting the session (loading and calibrating) ...');
    const r = await api('POST', '/api/sessions', body);
    session = { id: r.session, layers: r.load.layers, position: 0 };
    show(r.load);
    say(`Session ${r.session} ready.`);
  });
  const inspect = async () => {
    const n = Number(layer.value), w = what.value;
    const stats = await cmd({ cmd: 'stats', layer: n, what: w, bins: 32 });
    if (!stats) return;
    const pic = `session/layer${n}-${w}.png`, hist = `session/layer${n}-${w}-hist.png`;
    await cmd({ cmd: 'dump', layer: n, what: w, file: pic });
    await cmd({ cmd: 'histogram', layer: n, what: w, file: hist });
    view.replaceChildren(
      h('div', {}, h('h4', {}, `layer ${n} ${w} ${(stats.shape || []).join('x')}`), h('img', { class: 'tensor', id: 'dbg-tensor-img', src: fileUrl(pic) })),
      h('div', {}, h('h4', {}, 'histogram'), h('img', { class: 'tensor', id: 'dbg-hist-img', src: fileUrl(hist) }),
        h('table', { id: 'dbg-stats' }, ['min', 'max', 'mean', 'std', 'zeros', 'count'].map((k) => h('tr', {}, h('th', {}, k), h('td', {}, stats[k] ?? '-'))),
          stats.quant ? h('tr', {}, h('th', {}, 'int8'), h('td', {}, `scale ${stats.quant.scale}, zero point ${stats.quant.zero_point}, clipped ${stats.quant.clipped_percent}%`)) : '')));
    show(stats);
  };
  const button = (id, label, fn) => h('button', { id, onclick: fn }, label);
  render(gen, 
    h('section', { class: 'card' }, h('h2', {}, 'Step session'),
      h('label', {}, 'model ', model), h('label', {}, 'image ', image), h('label', {}, 'mode ', mode), h('label', {}, 'calibration ', calib),
      button('dbg-start', 'Start', start),
      button('dbg-end', 'End session', () => attempt(async () => {
        if (session) await api('DELETE', `/api/sessions/${session.id}`);
        session = null; status.textContent = 'No session.'; say('Session ended.');
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
    h('section', { class: 'card' }, h('h3', {}, 'Layer'),
      h('label', {}, 'layer ', layer), h('label', {}, 'tensor ', what),
      button('dbg-show', 'Show', () => attempt(inspect)),
      button('dbg-compare', 'Compare with float', () => cmd({ cmd: 'compare', layer: Number(layer.value) })),
      h('label', {}, ' cross to ', crossPrec),
      button('dbg-cross', 'Cross', () => cmd({ cmd: 'cross', layer: Number(layer.value), precision: crossPrec.value })),
      h('br'),
      h('label', {}, 'weight index ', wIndex), h('label', {}, 'value ', wValue),
      button('dbg-set-weight', 'Set weight', () => cmd({ cmd: 'set-weights', layer: Number(layer.value), index: Number(wIndex.value), value: Number(wValue.value) })),
      button('dbg-rerun', 'Re-run', () => cmd({ cmd: 'rerun', layer: Number(layer.value) })),
      h('br'), h('label', {}, 'save as ', saveFile),
      button('dbg-save', 'Save model', () => cmd({ cmd: 'save', file: saveFile.value }))),
    view, log);
}

//===--- quantization --------------------------------------------------===//

async function showQuantize(gen = ++generation) {
  const f = await listFiles();
  const model = h('select', { id: 'q-model' }), calib = h('select', { id: 'q-calib' });
  const method = h('select', { id: 'q-method' }), mode = h('select', { id: 'q-mode' });
  const images = h('input', { id: 'q-images', type: 'number', value: 20, min: 1, style: 'width:5em' });
  options(model, f.models); options(calib, f.dirs);
  if (f.dirs.includes('calib')) calib.value = 'calib';
  options(method, ['minmax', 'percentile', 'entropy', 'mse', 'log2']);
  options(mode, ['int8', 'hybrid', 'fp16', 'mixed']);
  const bar = h('progress', { id: 'q-progress', max: 1, value: 0 });
  const result = h('div', { id: 'q-result' });
  const planText = h('p', { id: 'q-plan' });
  const graphBox = h('div', { class: 'graph', id: 'q-graph' });
  const plan = new Map(); // layer -> precision
  let drawn = null;
  const cycle = ['int8', 'fp16', 'fp32'];
  const planObject = () => {
    const p = { default: 'int8', fp32: [], fp16: [], int8: [] };
    for (const [l, prec] of plan) p[prec].push(l);
    return p;
  };
  const showPlan = () => {
    const p = planObject();
    planText.textContent = `plan: ${['fp32', 'fp16'].map((k) => p[k].length ? `${k}=${p[k].join(',')}` : '').filter(Boolean).join(' ')} default=int8` +
      ' (click layers to cycle int8 → fp16 → fp32; used with mode "mixed")';
  };
  const loadGraph = () => attempt(async () => {
    const graph = await api('GET', `/api/models/graph?path=${encodeURIComponent(model.value)}`);
    plan.clear();
    drawn = renderGraph(graphBox, graph, {
      precisionOf: (l) => plan.get(l.index) || 'int8',
      onSelect: (l) => {
        const next = cycle[(cycle.indexOf(plan.get(l.index) || 'int8') + 1) % 3];
        if (next === 'int8') plan.delete(l.index); else plan.set(l.index, next);
        mode.value = 'mixed';
        drawn.recolor(); showPlan();
      },
    });
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
  render(gen, 
    h('section', { class: 'card' }, h('h2', {}, 'Quantize a model'),
      h('label', {}, 'model ', model), h('label', {}, 'calibration images ', calib), h('label', {}, 'at most ', images),
      h('label', {}, 'method ', method), h('label', {}, 'mode ', mode),
      h('button', { id: 'q-run', onclick: run }, 'Quantize'), bar, planText, result),
    graphBox);
  if (f.models.length) loadGraph();
}

//===--- jobs ----------------------------------------------------------===//

async function showJobs(gen = ++generation) {
  const { jobs } = await api('GET', '/api/jobs');
  const log = h('pre', { id: 'job-log' });
  const act = (id, action) => attempt(async () => { await api('POST', `/api/jobs/${id}/${action}`); showJobs(); });
  render(gen, h('section', { class: 'card' }, h('h2', {}, 'Jobs'),
    h('table', { id: 'job-table' }, h('tr', {}, ['id', 'kind', 'status', 'arguments', 'error', ''].map((t) => h('th', {}, t))),
      jobs.map((j) => h('tr', {}, h('td', {}, j.id), h('td', {}, j.kind), h('td', {}, j.status),
        h('td', {}, JSON.stringify(j.args).slice(0, 120)), h('td', { class: 'bad' }, (j.error || '').slice(0, 200)),
        h('td', {}, j.status === 'running' && j.kind !== 'session'
          ? [h('button', { onclick: () => act(j.id, 'pause') }, 'Pause'), h('button', { onclick: () => act(j.id, 'resume') }, 'Resume'), h('button', { onclick: () => act(j.id, 'stop') }, 'Stop')]
          : '',
        h('button', { onclick: () => attempt(async () => { log.textContent = (await api('GET', `/api/jobs/${j.id}/log`)).log; }) }, 'Log'))))),
    log));
}

//===--- routing -------------------------------------------------------===//

const views = { files: showFiles, model: showModel, inference: showInference, debugger: showDebugger, quantize: showQuantize, jobs: showJobs };

function route() {
  if (!me) return showLogin();
  const name = location.hash.slice(1) || 'files';
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.getAttribute('href') === '#' + name);
  attempt(() => (views[name] || showFiles)());
}

window.addEventListener('hashchange', route);
onEvent('session', (e) => { if (session && e.session === session.id && e.ended) say(`Session ${e.session} ended: ${e.reason}`, e.reason !== 'ended'); });
api('GET', '/api/me').then(loggedIn, showLogin);
