// A tensor drawn as feature maps on a canvas, with a colour bar and the
// value under the cursor; a histogram with axes. Used by the step debugger.
import { h, num, heat } from '../util.js';
import { histogram } from '../chart.js';

// [C,H,W] as C maps; weights [O,I,kh,kw] as O maps of I × (kh·kw).
function mapsOf({ shape, data }) {
  if (shape.length === 4) return { count: shape[0], rows: shape[1], cols: shape[2] * shape[3], data, labels: ['filter', 'input channel', 'tap'] };
  if (shape.length === 3) return { count: shape[0], rows: shape[1], cols: shape[2], data, labels: ['channel', 'y', 'x'] };
  const n = data.length;
  return { count: 1, rows: 1, cols: n, data, labels: ['', '', 'index'] };
}

export function featureMaps(npy, { maxMaps = 64, tile = 96 } = {}) {
  const m = mapsOf(npy);
  const shown = Math.min(m.count, maxMaps);
  const perRow = Math.ceil(Math.sqrt(shown));
  const scale = Math.max(1, Math.floor(tile / Math.max(m.rows, m.cols)));
  const tw = m.cols * scale, th = m.rows * scale, gap = 2;
  const canvas = h('canvas', { id: 'dbg-maps', width: perRow * (tw + gap), height: Math.ceil(shown / perRow) * (th + gap) });
  let lo = Infinity, hi = -Infinity;
  for (const v of m.data) { if (v < lo) lo = v; if (v > hi) hi = v; }
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(canvas.width, canvas.height);
  const plane = m.rows * m.cols;
  for (let c = 0; c < shown; ++c) {
    const ox = (c % perRow) * (tw + gap), oy = Math.floor(c / perRow) * (th + gap);
    for (let y = 0; y < th; ++y)
      for (let x = 0; x < tw; ++x) {
        const v = m.data[c * plane + Math.floor(y / scale) * m.cols + Math.floor(x / scale)];
        const [r, g, b] = heat(hi > lo ? (v - lo) / (hi - lo) : 0.5);
        const p = ((oy + y) * canvas.width + ox + x) * 4;
        image.data[p] = r; image.data[p + 1] = g; image.data[p + 2] = b; image.data[p + 3] = 255;
      }
  }
  ctx.putImageData(image, 0, 0);
  const readout = h('div', { id: 'dbg-readout', class: 'readout' }, 'move over the maps for values');
  canvas.addEventListener('mousemove', (e) => {
    const r = canvas.getBoundingClientRect();
    const px = (e.clientX - r.left) * (canvas.width / r.width), py = (e.clientY - r.top) * (canvas.height / r.height);
    const c = Math.floor(py / (th + gap)) * perRow + Math.floor(px / (tw + gap));
    const x = Math.floor((px % (tw + gap)) / scale), y = Math.floor((py % (th + gap)) / scale);
    if (c >= shown || x >= m.cols || y >= m.rows) return;
    const v = m.data[c * plane + y * m.cols + x];
    readout.textContent = `${m.labels[0]} ${c}, ${m.labels[1]} ${y}, ${m.labels[2]} ${x}: ${num(v)}`;
  });
  const bar = colourBar(lo, hi);
  const note = shown < m.count ? `first ${shown} of ${m.count} maps` : `${m.count} map(s)`;
  return h('div', { class: 'maps' }, h('div', {}, canvas), bar, readout,
    h('p', { class: 'note' }, `${note}, ${m.rows} × ${m.cols} each; colours from ${num(lo)} to ${num(hi)}`));
}

function colourBar(lo, hi) {
  const canvas = h('canvas', { id: 'dbg-colorbar', width: 256, height: 14 });
  const ctx = canvas.getContext('2d');
  for (let x = 0; x < 256; ++x) {
    const [r, g, b] = heat(x / 255);
    ctx.fillStyle = `rgb(${r},${g},${b})`;
    ctx.fillRect(x, 0, 1, 14);
  }
  const mid = (lo + hi) / 2;
  return h('div', { class: 'colorbar' }, canvas,
    h('div', { class: 'colorbar-ticks' }, h('span', {}, num(lo)), h('span', {}, num(mid)), h('span', {}, num(hi))));
}

export function histogramOf(stats) {
  const hist = stats.histogram;
  if (!hist) return h('p', {}, 'no histogram');
  return histogram(hist.counts, hist.lo, hist.hi, { id: 'dbg-histogram', xLabel: `${stats.what || 'value'} value` });
}

// The int8 parameters of a tensor: one scale, or per-channel scales.
export function quantText(q) {
  if (!q) return '-';
  const range = (v) => {
    if (!Array.isArray(v)) return num(v);
    const finite = v.filter(Number.isFinite);
    return `${v.length} per-channel values, ${num(Math.min(...finite))} … ${num(Math.max(...finite))}`;
  };
  const parts = [];
  if (q.scale !== undefined) parts.push(`scale ${range(q.scale)}`);
  if (q.scales !== undefined) parts.push(`scales ${range(q.scales)}`);
  if (q.zero_point !== undefined) parts.push(`zero point ${range(q.zero_point)}`);
  if (q.clipped_percent !== undefined) parts.push(`clipped ${num(q.clipped_percent)}%`);
  for (const [k, v] of Object.entries(q)) if (!['scale', 'scales', 'zero_point', 'clipped_percent'].includes(k)) parts.push(`${k} ${typeof v === 'object' ? range(v) : num(v)}`);
  return parts.join(', ');
}

// A command's reply as a table of its figures (nested objects flattened).
export function replyTable(reply, id = 'dbg-result') {
  const rows = [];
  const walk = (prefix, v) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) for (const [k, x] of Object.entries(v)) walk(prefix ? `${prefix} ${k}` : k, x);
    else if (Array.isArray(v)) rows.push([prefix, v.length > 8 ? `${v.length} values` : v.map((x) => (typeof x === 'object' ? JSON.stringify(x) : num(x))).join(', ')]);
    else rows.push([prefix, typeof v === 'number' ? num(v) : String(v)]);
  };
  const { ok, cmd, ...rest } = reply;
  walk('', rest);
  return h('table', { id, class: 'reply' }, h('tr', {}, h('th', { colspan: 2 }, cmd || 'reply')), rows.map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, v))));
}
