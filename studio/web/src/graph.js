// The layer graph: dagre lays out the Darknet layers top to bottom inside
// collapsible stages (runs of layers at one resolution); the view zooms,
// pans, fits, searches, shows a minimap, colours any per-layer figure onto
// the boxes and exports itself as SVG or PNG.
import dagre from 'dagre';
import { h, formatCount, num, goodBad, download, svgEl as el } from './util.js';

const SVG = 'http://www.w3.org/2000/svg';


export { formatCount };

export function modelStatistics(graph) {
  const s = { layers: graph.layers.length, params: 0, macs: 0, weightBytes: 0, precisions: {} };
  for (const l of graph.layers) {
    s.params += l.params || 0;
    s.macs += l.macs || 0;
    for (const b of Object.values(l.weight_bytes || {})) s.weightBytes += b;
    s.precisions[l.precision] = (s.precisions[l.precision] || 0) + 1;
  }
  return s;
}

// "DW" for a depthwise convolution, "G4" for one in 4 groups, "" otherwise.
export function convMarker(l, layers) {
  const groups = (l.attributes && l.attributes.groups) || 1;
  if (!/conv/.test(l.type) || groups <= 1) return '';
  const src = (l.inputs || [])[0];
  const inC = src >= 0 && layers[src] ? layers[src].output_shape[0] : null;
  return groups === inC ? 'DW' : `G${groups}`;
}

// Stages: runs of consecutive layers whose output has one resolution.
export function stagesOf(layers) {
  const stages = [];
  let current = null;
  for (const l of layers) {
    const key = (l.output_shape || []).slice(1).join('x');
    if (!current || current.key !== key) {
      current = { id: stages.length, key, first: l.index, last: l.index };
      stages.push(current);
    } else {
      current.last = l.index;
    }
  }
  return stages.filter((s) => s.last - s.first >= 2);
}

function kindLabel(l) {
  const a = l.attributes || {};
  if (/conv/.test(l.type)) {
    const size = Array.isArray(a.size) ? a.size.join('×') : a.size;
    const stride = Array.isArray(a.stride) && a.stride[0] > 1 ? `/${a.stride[0]}` : '';
    return `conv ${size || ''}${stride} ×${a.filters || (l.output_shape || [])[0]}`;
  }
  return l.type;
}

export class GraphView {
  // onSelect(layer) on a click; options.compact: no minimap and toolbar.
  constructor(container, { onSelect, compact = false, id = 'graph' } = {}) {
    this.onSelect = onSelect || (() => {});
    this.transform = { x: 0, y: 0, k: 1 };
    this.collapsed = new Set();
    this.values = null;
    this.classOf = null;
    this.search = h('input', { class: 'graph-search', placeholder: 'find layer: index, kind, cfg line', size: 26 });
    this.search.addEventListener('keydown', (e) => { if (e.key === 'Enter') this.findNext(); });
    this.search.addEventListener('input', () => this.highlight());
    const button = (label, title, fn, cls) => h('button', { title, class: cls || '', onclick: fn }, label);
    this.toolbar = h('div', { class: 'graph-toolbar' },
      button('Fit', 'fit the whole model', () => this.fit(), 'graph-fit'),
      button('+', 'zoom in', () => this.zoomBy(1.25), 'graph-zoom-in'),
      button('−', 'zoom out', () => this.zoomBy(0.8), 'graph-zoom-out'),
      this.search,
      button('Collapse stages', 'fold every stage into one box', () => this.collapseAll(true), 'graph-collapse'),
      button('Expand', 'unfold every stage', () => this.collapseAll(false), 'graph-expand'),
      button('SVG', 'export as SVG', () => this.exportSvg(), 'graph-export-svg'),
      button('PNG', 'export as PNG', () => this.exportPng(), 'graph-export-png'));
    this.svg = el('svg', { class: 'graph-svg', id: `${id}-svg` });
    this.root = el('g', {}, this.svg);
    this.minimap = el('svg', { class: 'graph-minimap', id: `${id}-minimap` });
    this.legend = h('div', { class: 'graph-legend' });
    this.canvas = h('div', { class: 'graph-canvas' }, this.svg, compact ? null : this.minimap);
    container.replaceChildren(compact ? h('div', { class: 'graph-toolbar' }, this.search, button('Fit', 'fit', () => this.fit(), 'graph-fit')) : this.toolbar,
      this.legend, this.canvas);
    this.installPanZoom();
  }

  setGraph(graph) {
    this.graph = graph;
    this.layers = graph.layers;
    this.stages = stagesOf(this.layers);
    this.collapsed.clear();
    if (this.layers.length > 120) this.stages.forEach((s) => this.collapsed.add(s.id));
    this.layout();
    this.fit();
  }

  stageOf(index) {
    return this.stages.find((s) => index >= s.first && index <= s.last);
  }

  // The node that stands for a layer: itself, or its collapsed stage.
  nodeOf(index) {
    if (index < 0) return 'input';
    const s = this.stageOf(index);
    return s && this.collapsed.has(s.id) ? `s${s.id}` : String(index);
  }

  buildLayout() {
    const g = new dagre.graphlib.Graph({ compound: true });
    g.setGraph({ rankdir: 'TB', nodesep: 16, ranksep: 24, marginx: 20, marginy: 20 });
    g.setDefaultEdgeLabel(() => ({}));
    g.setNode('input', { width: 130, height: 30, kind: 'input' });
    for (const s of this.stages) {
      if (this.collapsed.has(s.id)) {
        const count = s.last - s.first + 1;
        const macs = this.layers.slice(s.first, s.last + 1).reduce((a, l) => a + (l.macs || 0), 0);
        g.setNode(`s${s.id}`, { width: 190, height: 44, kind: 'stage', stage: s, count, macs });
      } else {
        g.setNode(`c${s.id}`, { kind: 'cluster', stage: s });
      }
    }
    for (const l of this.layers) {
      if (this.nodeOf(l.index) !== String(l.index)) continue;
      g.setNode(String(l.index), { width: 172, height: 40, kind: 'layer', layer: l });
      const s = this.stageOf(l.index);
      if (s) g.setParent(String(l.index), `c${s.id}`);
    }
    const seen = new Set();
    for (const l of this.layers) {
      const to = this.nodeOf(l.index);
      (l.inputs || []).forEach((src, k) => {
        const from = this.nodeOf(src);
        if (from === to || seen.has(from + '>' + to)) return;
        seen.add(from + '>' + to);
        let kind = 'seq';
        if (l.type === 'route' || (src >= 0 && src !== l.index - 1)) kind = 'route';
        if (l.type === 'shortcut' && k > 0) kind = 'shortcut';
        const shape = src < 0 ? (this.graph.model || {}).input_shape : (this.layers[src].output_shape || []);
        g.setEdge(from, to, { kind, shape: (shape || []).join('×') });
      });
    }
    dagre.layout(g);
    return g;
  }

  layout() {
    const g = this.buildLayout();
    this.g = g;
    this.root.replaceChildren();
    this.rects = new Map();
    const clusters = el('g', {}, this.root), edges = el('g', {}, this.root), nodes = el('g', {}, this.root);
    for (const id of g.nodes()) {
      const n = g.node(id);
      if (n.kind === 'cluster') this.drawCluster(clusters, n);
    }
    for (const e of g.edges()) this.drawEdge(edges, g.edge(e));
    for (const id of g.nodes()) {
      const n = g.node(id);
      if (n.kind !== 'cluster') this.drawNode(nodes, id, n);
    }
    const { width, height } = g.graph();
    this.size = { width, height };
    this.drawMinimap();
    this.recolor();
    this.highlight();
    this.apply();
  }

  drawCluster(parent, n) {
    const s = n.stage;
    const group = el('g', { class: 'stage', 'data-stage': s.id }, parent);
    el('rect', { x: n.x - n.width / 2, y: n.y - n.height / 2, width: n.width, height: n.height, rx: 6 }, group);
    const label = el('text', { x: n.x - n.width / 2 + 6, y: n.y - n.height / 2 + 12, class: 'stage-label' }, group,
      `▾ layers ${s.first}–${s.last} at ${s.key.replace('x', '×')}`);
    label.addEventListener('click', () => { this.collapsed.add(s.id); this.layout(); });
  }

  drawEdge(parent, edge) {
    const d = edge.points.map((p, i) => (i ? 'L' : 'M') + p.x + ',' + p.y).join(' ');
    el('path', { d, class: 'edge ' + edge.kind, 'marker-end': 'url(#arrow)' }, parent);
    const mid = edge.points[Math.floor(edge.points.length / 2)];
    if (edge.shape) el('text', { x: mid.x + 4, y: mid.y, class: 'edge-shape' }, parent, edge.shape);
  }

  drawNode(parent, id, n) {
    const group = el('g', { transform: `translate(${n.x - n.width / 2},${n.y - n.height / 2})` }, parent);
    if (n.kind === 'input') {
      el('rect', { width: n.width, height: n.height, rx: 4, class: 'node-input', 'data-layer': 'input' }, group);
      el('text', { x: 6, y: 19 }, group, 'input ' + ((this.graph.model && this.graph.model.input_shape) || []).join('×'));
      return;
    }
    if (n.kind === 'stage') {
      const s = n.stage;
      const rect = el('rect', { width: n.width, height: n.height, rx: 8, class: 'node-stage', 'data-stage': s.id }, group);
      el('text', { x: 8, y: 17 }, group, `▸ layers ${s.first}–${s.last} (${n.count})`);
      el('text', { x: 8, y: 33, class: 'sub' }, group, `${s.key.replace('x', '×')}  ${formatCount(n.macs)}MAC`);
      rect.addEventListener('click', () => { this.collapsed.delete(s.id); this.layout(); });
      return;
    }
    const l = n.layer;
    const rect = el('rect', { width: n.width, height: n.height, rx: 4, 'data-layer': l.index }, group);
    el('text', { x: 6, y: 15 }, group, `${l.index} ${kindLabel(l)}`);
    el('text', { x: 6, y: 31, class: 'sub' }, group,
      `${(l.output_shape || []).join('×')}  ${l.macs ? formatCount(l.macs) + 'MAC' : ''}`);
    const marker = convMarker(l, this.layers);
    if (marker) {
      el('rect', { x: n.width - 30, y: 3, width: 26, height: 14, rx: 3, class: 'badge' }, group);
      el('text', { x: n.width - 27, y: 14, class: 'badge-text' }, group, marker);
    }
    const title = el('title', {}, rect);
    title.textContent = `layer ${l.index} ${l.type}` + (this.values && this.values.has(l.index) ? `: ${this.valueText(this.values.get(l.index))}` : '');
    this.rects.set(l.index, { rect, title });
    rect.addEventListener('click', () => this.select(l.index));
  }

  drawMinimap() {
    const { width, height } = this.size;
    this.minimap.setAttribute('viewBox', `0 0 ${width} ${height}`);
    this.minimap.replaceChildren();
    for (const id of this.g.nodes()) {
      const n = this.g.node(id);
      if (n.kind === 'cluster') continue;
      el('rect', { x: n.x - n.width / 2, y: n.y - n.height / 2, width: n.width, height: n.height, class: 'mini-node', 'data-node': id }, this.minimap);
    }
    this.viewport = el('rect', { class: 'mini-viewport' }, this.minimap);
    const jump = (e) => {
      const r = this.minimap.getBoundingClientRect();
      const scale = Math.max(width / r.width, height / r.height);
      const gx = (e.clientX - r.left) * scale, gy = (e.clientY - r.top) * scale;
      const c = this.svg.getBoundingClientRect();
      this.transform.x = c.width / 2 - gx * this.transform.k;
      this.transform.y = c.height / 2 - gy * this.transform.k;
      this.apply();
    };
    this.minimap.onmousedown = (e) => { jump(e); this.minimap.onmousemove = (m) => m.buttons && jump(m); };
  }

  apply() {
    const { x, y, k } = this.transform;
    this.root.setAttribute('transform', `translate(${x},${y}) scale(${k})`);
    this.svg.classList.toggle('far', k < 0.45);
    if (this.viewport) {
      const c = this.svg.getBoundingClientRect();
      this.viewport.setAttribute('x', -x / k);
      this.viewport.setAttribute('y', -y / k);
      this.viewport.setAttribute('width', c.width / k);
      this.viewport.setAttribute('height', c.height / k);
    }
    if (!this.svg.querySelector('defs')) {
      const defs = el('defs', {}, null);
      const marker = el('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 6, markerHeight: 6, orient: 'auto' }, defs);
      el('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#555' }, marker);
      this.svg.insertBefore(defs, this.root);
    }
  }

  installPanZoom() {
    this.svg.addEventListener('wheel', (e) => {
      e.preventDefault();
      const r = this.svg.getBoundingClientRect();
      this.zoomBy(e.deltaY < 0 ? 1.15 : 1 / 1.15, e.clientX - r.left, e.clientY - r.top);
    }, { passive: false });
    let drag = null;
    this.svg.addEventListener('mousedown', (e) => {
      if (e.target.closest('[data-layer],[data-stage]')) return;
      drag = { x: e.clientX, y: e.clientY, tx: this.transform.x, ty: this.transform.y };
      this.svg.classList.add('dragging');
    });
    window.addEventListener('mousemove', (e) => {
      if (!drag) return;
      this.transform.x = drag.tx + e.clientX - drag.x;
      this.transform.y = drag.ty + e.clientY - drag.y;
      this.apply();
    });
    window.addEventListener('mouseup', () => { drag = null; this.svg.classList.remove('dragging'); });
  }

  zoomBy(f, cx, cy) {
    const r = this.svg.getBoundingClientRect();
    if (cx === undefined) { cx = r.width / 2; cy = r.height / 2; }
    const t = this.transform, k = Math.max(0.05, Math.min(4, t.k * f));
    t.x = cx - ((cx - t.x) * k) / t.k;
    t.y = cy - ((cy - t.y) * k) / t.k;
    t.k = k;
    this.apply();
  }

  fit() {
    const r = this.svg.getBoundingClientRect();
    const { width, height } = this.size;
    const k = Math.min((r.width || 800) / width, (r.height || 600) / height, 1.2);
    this.transform = { k, x: ((r.width || 800) - width * k) / 2, y: Math.max(0, ((r.height || 600) - height * k) / 2) };
    this.apply();
  }

  centerOn(index) {
    const s = this.stageOf(index);
    if (s && this.collapsed.has(s.id)) { this.collapsed.delete(s.id); this.layout(); }
    const n = this.g.node(String(index));
    if (!n) return;
    const r = this.svg.getBoundingClientRect();
    const k = Math.max(this.transform.k, 0.9);
    this.transform = { k, x: r.width / 2 - n.x * k, y: r.height / 2 - n.y * k };
    this.apply();
  }

  select(index) {
    for (const { rect } of this.rects.values()) rect.classList.remove('selected');
    const entry = this.rects.get(index);
    if (entry) entry.rect.classList.add('selected');
    this.selected = index;
    this.onSelect(this.layers[index]);
  }

  matches() {
    const q = this.search.value.trim().toLowerCase();
    if (!q) return [];
    return this.layers.filter((l) => String(l.index) === q || l.type.toLowerCase().includes(q) ||
      kindLabel(l).toLowerCase().includes(q) || (l.location && `line ${l.location.line}` === q) ||
      convMarker(l, this.layers).toLowerCase() === q).map((l) => l.index);
  }

  highlight() {
    const found = new Set(this.matches());
    for (const [index, { rect }] of this.rects) rect.classList.toggle('match', found.has(index));
    for (const rect of this.root.querySelectorAll('rect[data-stage]')) {
      const s = this.stages[Number(rect.getAttribute('data-stage'))];
      rect.classList.toggle('match', [...found].some((i) => s && i >= s.first && i <= s.last));
    }
    this.search.title = found.size ? `${found.size} layer(s) match` : '';
  }

  findNext() {
    const m = this.matches();
    if (!m.length) return;
    const next = m.find((i) => i > (this.cursor ?? -1)) ?? m[0];
    this.cursor = next;
    this.centerOn(next);
    this.highlight();
    this.select(next);
  }

  collapseAll(collapse) {
    this.collapsed = new Set(collapse ? this.stages.map((s) => s.id) : []);
    this.layout();
    this.fit();
  }

  // Colours a per-layer figure onto the boxes: values is a Map(index ->
  // number or "inf"); higherIsBetter picks the direction of the scale.
  colorBy(values, { label = '', higherIsBetter = false, format = num } = {}) {
    this.values = values;
    this.valueText = format;
    this.metric = { label, higherIsBetter };
    this.recolor();
  }

  setClasses(classOf) {
    this.classOf = classOf;
    this.recolor();
  }

  recolor() {
    if (!this.rects) return;
    const finite = this.values ? [...this.values.values()].map(Number).filter(Number.isFinite) : [];
    const lo = Math.min(...finite), hi = Math.max(...finite);
    for (const [index, { rect, title }] of this.rects) {
      const l = this.layers[index];
      let cls = 'prec-' + (['fp32', 'fp16', 'int8'].includes(l.precision) ? l.precision : 'other');
      rect.style.fill = '';
      if (this.values) {
        cls = 'metric';
        const v = this.values.get(index);
        const x = v === 'inf' ? Infinity : Number(v);
        if (v === undefined || v === null || Number.isNaN(x)) rect.style.fill = '#e0e0e0';
        else {
          let t = Number.isFinite(x) ? (hi > lo ? (x - lo) / (hi - lo) : 0.5) : (x > 0 ? 1 : 0);
          if (!this.metric.higherIsBetter) t = 1 - t;
          rect.style.fill = goodBad(t);
        }
        title.textContent = `layer ${index} ${l.type}: ${this.metric.label} ${v === undefined ? '-' : this.valueText(v)}`;
      }
      if (this.classOf) cls += ' ' + (this.classOf(l) || '');
      rect.setAttribute('class', cls + (this.selected === index ? ' selected' : ''));
    }
    this.drawLegend(lo, hi);
  }

  drawLegend(lo, hi) {
    if (!this.values) {
      this.legend.replaceChildren(h('span', { class: 'prec-fp32 chip' }, 'fp32'), h('span', { class: 'prec-fp16 chip' }, 'fp16'),
        h('span', { class: 'prec-int8 chip' }, 'int8'), ' edges: black next layer, blue dashed route, red dotted shortcut; DW depthwise, Gn grouped');
      return;
    }
    const { label, higherIsBetter } = this.metric;
    const stops = [0, 0.5, 1].map((t) => goodBad(higherIsBetter ? t : 1 - t)).join(',');
    this.legend.replaceChildren(h('span', {}, `${label}: `), h('span', { class: 'chip' }, Number.isFinite(lo) ? this.valueText(lo) : '-'),
      h('span', { class: 'gradient', style: `background: linear-gradient(to right, ${stops})` }),
      h('span', { class: 'chip' }, Number.isFinite(hi) ? this.valueText(hi) : '-'),
      ` (${higherIsBetter ? 'green is better' : 'red is more'}; grey: no value)`);
  }

  // The whole graph as a standalone SVG document (styles inlined).
  svgText() {
    const { width, height } = this.size;
    const copy = this.svg.cloneNode(true);
    copy.setAttribute('xmlns', SVG);
    copy.setAttribute('width', width);
    copy.setAttribute('height', height);
    copy.setAttribute('viewBox', `0 0 ${width} ${height}`);
    copy.querySelector('g').removeAttribute('transform');
    copy.classList.remove('far');
    const style = document.createElementNS(SVG, 'style');
    style.textContent = EXPORT_STYLE;
    copy.insertBefore(style, copy.firstChild);
    return new XMLSerializer().serializeToString(copy);
  }

  exportSvg() { download('model-graph.svg', this.svgText(), 'image/svg+xml'); }

  exportPng() {
    const { width, height } = this.size;
    const scale = Math.min(2, 16000 / Math.max(width, height));
    const img = new Image();
    img.onload = () => {
      const canvas = h('canvas', { width: Math.ceil(width * scale), height: Math.ceil(height * scale) });
      const ctx = canvas.getContext('2d');
      ctx.fillStyle = 'white';
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
      canvas.toBlob((blob) => download('model-graph.png', blob));
    };
    img.src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(this.svgText());
  }
}

const EXPORT_STYLE = `text{font:11px sans-serif}text.sub{fill:#333}rect{stroke:#333;stroke-width:1}
.prec-fp32{fill:#90caf9}.prec-fp16{fill:#ffe082}.prec-int8{fill:#a5d6a7}.prec-other{fill:#e0e0e0}
.stage rect{fill:#f4f6fa;stroke:#b0bac8;stroke-dasharray:4 3}.node-stage{fill:#dfe6f0}.node-input{fill:#fff}
path.edge{fill:none;stroke:#555}path.route{stroke:#1e88e5;stroke-dasharray:5 3}path.shortcut{stroke:#e53935;stroke-dasharray:2 2}
.edge-shape{font-size:9px;fill:#666}.badge{fill:#6a1b9a;stroke:none}.badge-text{fill:#fff;font-size:9px}
.mini-node,.mini-viewport{display:none}.added{stroke:#2e7d32;stroke-width:3}.removed{stroke:#c62828;stroke-width:3}
.changed{stroke:#ef6c00;stroke-width:3}`;
