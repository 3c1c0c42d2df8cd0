// The layer graph: dagre lays out the Darknet layers top to bottom; route and
// shortcut inputs are drawn as their own (dashed, coloured) edges.
import dagre from 'dagre';

const SVG = 'http://www.w3.org/2000/svg';

function el(name, attrs, parent) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

export function formatCount(n) {
  if (n >= 1e9) return (n / 1e9).toFixed(2) + ' G';
  if (n >= 1e6) return (n / 1e6).toFixed(2) + ' M';
  if (n >= 1e3) return (n / 1e3).toFixed(1) + ' k';
  return String(n);
}

// Renders `graph` (qsim-translate --export-json) into `container`.
// precisionOf(layer) gives the colour; onSelect(layer) is called on a click.
export function renderGraph(container, graph, { precisionOf, onSelect }) {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: 'TB', nodesep: 18, ranksep: 26, marginx: 10, marginy: 10 });
  g.setDefaultEdgeLabel(() => ({}));
  const layers = graph.layers;
  g.setNode('input', { width: 120, height: 30, label: 'input ' + ((graph.model && graph.model.input_shape) || []).join('x') });
  for (const l of layers) g.setNode(String(l.index), { width: 170, height: 40, layer: l });
  for (const l of layers) {
    (l.inputs || []).forEach((src, k) => {
      const from = src < 0 ? 'input' : String(src);
      let kind = 'seq';
      if (l.type === 'route') kind = 'route';
      else if (l.type === 'shortcut' && k > 0) kind = 'shortcut';
      else if (src >= 0 && src !== l.index - 1) kind = 'route';
      g.setEdge(from, String(l.index), { kind });
    });
  }
  dagre.layout(g);
  container.innerHTML = '';
  const { width, height } = g.graph();
  const svg = el('svg', { width, height, viewBox: `0 0 ${width} ${height}` }, container);
  const defs = el('defs', {}, svg);
  const marker = el('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 6, markerHeight: 6, orient: 'auto' }, defs);
  el('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#555' }, marker);
  for (const e of g.edges()) {
    const edge = g.edge(e);
    const d = edge.points.map((p, i) => (i ? 'L' : 'M') + p.x + ',' + p.y).join(' ');
    el('path', { d, class: edge.kind, 'marker-end': 'url(#arrow)' }, svg);
  }
  const rects = new Map();
  for (const id of g.nodes()) {
    const n = g.node(id);
    const group = el('g', { transform: `translate(${n.x - n.width / 2},${n.y - n.height / 2})` }, svg);
    const l = n.layer;
    const rect = el('rect', {
      width: n.width, height: n.height, rx: 4,
      class: l ? 'prec-' + precisionOf(l) : 'prec-other',
      'data-layer': l ? l.index : 'input',
    }, group);
    const t1 = el('text', { x: 6, y: 15 }, group);
    t1.textContent = l ? `${l.index} ${l.type}` : n.label;
    if (l) {
      const t2 = el('text', { x: 6, y: 31 }, group);
      t2.textContent = `${(l.output_shape || []).join('x')}  ${l.macs ? formatCount(l.macs) + 'MAC' : ''}`;
      rects.set(l.index, rect);
      rect.addEventListener('click', () => {
        for (const r of rects.values()) r.classList.remove('selected');
        rect.classList.add('selected');
        onSelect(l);
      });
    }
  }
  return {
    recolor() {
      for (const l of layers) rects.get(l.index).setAttribute('class', 'prec-' + precisionOf(l));
    },
  };
}

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
