// Model diff: the layers of two models aligned (longest common subsequence
// of layer kinds), each pair classified: same, precision changed, pruned
// (fewer filters), factorized (a convolution split into several), changed;
// layers only in one model are removed or added.

function signature(l) {
  return /conv/.test(l.type) ? 'conv' : l.type;
}

function align(a, b) {
  const n = a.length, m = b.length;
  const dp = Array.from({ length: n + 1 }, () => new Uint16Array(m + 1));
  for (let i = n - 1; i >= 0; --i)
    for (let j = m - 1; j >= 0; --j)
      dp[i][j] = signature(a[i]) === signature(b[j]) ? dp[i + 1][j + 1] + 1 : Math.max(dp[i + 1][j], dp[i][j + 1]);
  const rows = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && signature(a[i]) === signature(b[j]) && dp[i][j] === dp[i + 1][j + 1] + 1) rows.push({ a: a[i++], b: b[j++] });
    else if (j < m && (i === n || dp[i][j + 1] >= dp[i + 1][j])) rows.push({ a: null, b: b[j++] });
    else rows.push({ a: a[i++], b: null });
  }
  return rows;
}

function sameShape(x, y) {
  return JSON.stringify(x.output_shape) === JSON.stringify(y.output_shape);
}

function classify(rows) {
  rows.forEach((r, k) => {
    if (!r.a) { r.status = 'added'; return; }
    if (!r.b) { r.status = 'removed'; return; }
    const sa = JSON.stringify((r.a.attributes || {}).size), sb = JSON.stringify((r.b.attributes || {}).size);
    const nextAdded = rows[k + 1] && !rows[k + 1].a && /conv/.test(rows[k + 1].b.type);
    const prevAdded = rows[k - 1] && !rows[k - 1].a && /conv/.test(rows[k - 1].b.type);
    if (/conv/.test(r.a.type) && (sa !== sb || nextAdded || prevAdded)) r.status = 'factorized';
    else if (/conv/.test(r.a.type) && r.b.output_shape[0] < r.a.output_shape[0]) r.status = 'pruned';
    else if (r.a.precision !== r.b.precision) r.status = 'precision';
    else if (!sameShape(r.a, r.b) || r.a.params !== r.b.params) r.status = 'changed';
    else r.status = 'same';
  });
  // The convolutions added next to a factorized one are part of it.
  rows.forEach((r, k) => {
    if (r.status === 'added' && /conv/.test(r.b.type) &&
      [rows[k - 1], rows[k + 1]].some((n) => n && n.status === 'factorized')) r.status = 'factorized';
  });
  return rows;
}

export function diffModels(graphA, graphB) {
  const rows = classify(align(graphA.layers, graphB.layers));
  const total = (g, key) => g.layers.reduce((s, l) => s + (l[key] || 0), 0);
  const bytes = (g) => g.layers.reduce((s, l) => s + Object.values(l.weight_bytes || {}).reduce((x, y) => x + y, 0), 0);
  const counts = {};
  for (const r of rows) counts[r.status] = (counts[r.status] || 0) + 1;
  return {
    rows, counts,
    totals: {
      layers: [graphA.layers.length, graphB.layers.length],
      macs: [total(graphA, 'macs'), total(graphB, 'macs')],
      params: [total(graphA, 'params'), total(graphB, 'params')],
      bytes: [bytes(graphA), bytes(graphB)],
    },
  };
}
