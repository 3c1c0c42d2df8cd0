// Small DOM and formatting helpers shared by the views.

export function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== false && v !== undefined && v !== null) e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

// An SVG element with attributes (and text), appended to parent.
export function svgEl(name, attrs, parent, text) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}

const notice = () => document.getElementById('notice');
export function say(text, isError) {
  notice().textContent = text;
  notice().className = isError ? 'error' : '';
}

export function options(select, values, keep) {
  const previous = keep ? select.value : null;
  select.replaceChildren(...values.map((v) => (Array.isArray(v) ? h('option', { value: v[0] }, v[1]) : h('option', { value: v }, v))));
  if (previous && [...select.options].some((o) => o.value === previous)) select.value = previous;
}

export function formatCount(n) {
  if (n === undefined || n === null || Number.isNaN(n)) return '-';
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(2) + ' G';
  if (a >= 1e6) return (n / 1e6).toFixed(2) + ' M';
  if (a >= 1e3) return (n / 1e3).toFixed(1) + ' k';
  return String(Math.round(n * 100) / 100);
}

// A number with sensible precision: 4 significant digits, no exponent for
// ordinary magnitudes; "∞" for the SQNR of identical tensors.
export function num(v, digits = 4) {
  if (v === undefined || v === null || v === '') return '-';
  if (v === 'inf' || v === Infinity) return '∞';
  if (v === '-inf' || v === -Infinity) return '-∞';
  if (typeof v !== 'number') return String(v);
  if (v === 0) return '0';
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return v.toLocaleString('en-US');
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(2);
  return String(Number(v.toPrecision(digits)));
}

// A value as a number for arithmetic: "inf" (identical tensors) is Infinity.
export function asNumber(v) {
  if (v === 'inf' || v === Infinity) return Infinity;
  if (v === '-inf' || v === -Infinity) return -Infinity;
  return typeof v === 'number' ? v : null;
}

// The difference b - a of two SQNRs in dB, with ∞ handled: equal infinities
// are no change, a finite value against ∞ is an infinite change.
export function sqnrDelta(a, b) {
  const x = asNumber(a), y = asNumber(b);
  if (x === null || y === null) return null;
  if (x === y) return 0;
  return y - x;
}

export function when(seconds) {
  if (!seconds) return '-';
  const d = new Date(seconds * 1000);
  return d.toLocaleString(undefined, { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || seconds < 0) return '-';
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

export function download(name, data, type) {
  const blob = data instanceof Blob ? data : new Blob([data], { type });
  const a = h('a', { href: URL.createObjectURL(blob), download: name });
  document.body.append(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

export function toCsv(rows) {
  const cell = (v) => {
    const s = v === null || v === undefined ? '' : String(v);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return rows.map((r) => r.map(cell).join(',')).join('\n') + '\n';
}

// Colour of t in [0, 1] from bad (red) through yellow to good (green).
export function goodBad(t) {
  const stops = [[215, 48, 39], [254, 224, 139], [26, 152, 80]];
  const x = Math.max(0, Math.min(1, t)) * 2;
  const i = Math.min(1, Math.floor(x)), f = x - i;
  const c = stops[i].map((v, k) => Math.round(v + (stops[i + 1][k] - v) * f));
  return `rgb(${c.join(',')})`;
}

// A sequential colour map for feature maps (dark blue → yellow).
export function heat(t) {
  const stops = [[13, 8, 135], [126, 3, 168], [204, 71, 120], [248, 149, 64], [240, 249, 33]];
  const x = Math.max(0, Math.min(1, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x)), f = x - i;
  return stops[i].map((v, k) => Math.round(v + (stops[i + 1][k] - v) * f));
}
