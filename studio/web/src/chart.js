// Plain SVG charts with axes: per-layer series (several runs overlaid) and
// histograms.
import { num, svgEl as el } from './util.js';


export const palette = ['#1e88e5', '#e53935', '#43a047', '#8e24aa', '#fb8c00', '#00897b', '#6d4c41', '#3949ab'];

function ticks(lo, hi, n = 5) {
  if (!(hi > lo)) return [lo];
  const step = Math.pow(10, Math.floor(Math.log10((hi - lo) / n)));
  const nice = [1, 2, 5, 10].map((m) => m * step).find((s) => (hi - lo) / s <= n) || step * 10;
  const out = [];
  for (let v = Math.ceil(lo / nice) * nice; v <= hi + 1e-9; v += nice) out.push(Number(v.toPrecision(6)));
  return out;
}

function axes(svg, box, xr, yr, { xLabel, yLabel, xTicks, yTicks }) {
  const { l, t, w, h } = box;
  const x = (v) => l + ((v - xr[0]) / (xr[1] - xr[0] || 1)) * w;
  const y = (v) => t + h - ((v - yr[0]) / (yr[1] - yr[0] || 1)) * h;
  el('line', { x1: l, y1: t + h, x2: l + w, y2: t + h, class: 'axis' }, svg);
  el('line', { x1: l, y1: t, x2: l, y2: t + h, class: 'axis' }, svg);
  for (const v of xTicks || ticks(xr[0], xr[1], 10)) {
    el('line', { x1: x(v), y1: t + h, x2: x(v), y2: t + h + 4, class: 'axis' }, svg);
    el('text', { x: x(v), y: t + h + 15, 'text-anchor': 'middle', class: 'tick' }, svg, num(v, 3));
  }
  for (const v of yTicks || ticks(yr[0], yr[1], 5)) {
    el('line', { x1: l - 4, y1: y(v), x2: l + w, y2: y(v), class: 'grid' }, svg);
    el('text', { x: l - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'tick' }, svg, num(v, 3));
  }
  if (xLabel) el('text', { x: l + w / 2, y: t + h + 32, 'text-anchor': 'middle', class: 'label' }, svg, xLabel);
  if (yLabel) el('text', { x: 12, y: t + h / 2, transform: `rotate(-90 12 ${t + h / 2})`, 'text-anchor': 'middle', class: 'label' }, svg, yLabel);
  return { x, y };
}

// series: [{name, points: [[x, y], ...]}]; infinite y values are drawn at
// the top edge with a marker.
// xName names an x value in the tooltips; long series are drawn without
// dots.
export function lineChart(series, { width = 640, height = 240, xLabel, yLabel, id, xName = 'layer' } = {}) {
  const svg = el('svg', { width, height, class: 'chart', ...(id ? { id } : {}) });
  const all = series.flatMap((s) => s.points).filter(([, v]) => Number.isFinite(v));
  const xs = series.flatMap((s) => s.points.map(([x]) => x));
  if (!xs.length) { el('text', { x: 20, y: 20 }, svg, 'no data'); return svg; }
  const yMin = Math.min(0, ...all.map(([, v]) => v)), yMax = Math.max(...all.map(([, v]) => v), yMin + 1);
  const box = { l: 52, t: 10, w: width - 70, h: height - 50 };
  const { x, y } = axes(svg, box, [Math.min(...xs), Math.max(...xs)], [yMin, yMax * 1.05], { xLabel, yLabel });
  series.forEach((s, k) => {
    const colour = palette[k % palette.length];
    const pts = s.points.map(([a, v]) => [x(a), Number.isFinite(v) ? y(v) : box.t]);
    el('path', { d: pts.map(([a, b], i) => `${i ? 'L' : 'M'}${a},${b}`).join(' '), stroke: colour, fill: 'none', 'stroke-width': 1.5 }, svg);
    if (s.points.length > 200) return el('text', { x: box.l + 8 + 150 * k, y: box.t + 12, fill: colour, class: 'legend' }, svg, s.name);
    s.points.forEach(([a, v], i) => {
      const dot = el('circle', { cx: pts[i][0], cy: pts[i][1], r: Number.isFinite(v) ? 2.5 : 4, fill: Number.isFinite(v) ? colour : 'white', stroke: colour }, svg);
      el('title', {}, dot, `${s.name}: ${xName} ${a}: ${num(v)}`);
    });
    el('text', { x: box.l + 8 + 150 * k, y: box.t + 12, fill: colour, class: 'legend' }, svg, s.name);
  });
  return svg;
}

// A histogram of `counts` over [lo, hi] with value and count axes.
export function histogram(counts, lo, hi, { width = 420, height = 200, xLabel = 'value', id } = {}) {
  const svg = el('svg', { width, height, class: 'chart', ...(id ? { id } : {}) });
  const box = { l: 52, t: 10, w: width - 66, h: height - 50 };
  const top = Math.max(1, ...counts);
  const { x, y } = axes(svg, box, [lo, hi], [0, top], { xLabel, yLabel: 'count' });
  const bw = (hi - lo) / counts.length;
  counts.forEach((c, i) => {
    const bar = el('rect', { x: x(lo + i * bw), y: y(c), width: Math.max(1, x(lo + (i + 1) * bw) - x(lo + i * bw) - 1), height: box.t + box.h - y(c), class: 'bar' }, svg);
    el('title', {}, bar, `[${num(lo + i * bw)}, ${num(lo + (i + 1) * bw)}): ${c}`);
  });
  return svg;
}
