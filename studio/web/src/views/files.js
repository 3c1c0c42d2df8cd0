// Files: upload into folders, import a Darknet model, augment, delete.
import { api, fileUrl, waitForJob } from '../api.js';
import { h, say, options, formatCount } from '../util.js';
import { attempt, listFiles, nextGeneration, render, current } from './common.js';

export async function showFiles(gen = nextGeneration()) {
  const f = await listFiles();
  const dir = h('input', { id: 'upload-dir', value: 'models', size: 12 });
  const input = h('input', { id: 'upload-file', type: 'file', multiple: true });
  const cfg = h('select', { id: 'import-cfg' });
  const weights = h('select', { id: 'import-weights' });
  options(cfg, f.cfgs);
  options(weights, ['(synthetic weights)', ...f.weights]);
  // Each action redraws the list before it reports, so that what it reports
  // is on the page; but only while this view is still the one shown (an
  // import that ends after the user moved on does not paint over a view).
  const refresh = () => (current(gen) ? showFiles() : undefined);
  const upload = () => attempt(async () => {
    const count = input.files.length;
    if (!count) throw new Error('choose one or more files first');
    for (const file of input.files) {
      const name = file.name.replace(/[^A-Za-z0-9._+-]/g, '_');
      const path = `${dir.value.replace(/\/+$/, '')}/${name}`;
      say(`Uploading ${path} ...`);
      await api('POST', `/api/files?path=${encodeURIComponent(path)}&overwrite=1`, file);
    }
    await refresh();
    say(`Uploaded ${count} file(s).`);
  });
  const importModel = () => attempt(async () => {
    const body = { cfg: cfg.value };
    if (weights.selectedIndex > 0) body.weights = weights.value;
    const { job } = await api('POST', '/api/models/import', body);
    say(`Importing ${cfg.value} (job ${job}) ...`);
    const done = await waitForJob(job);
    if (done.status !== 'done') throw new Error(done.error);
    await refresh();
    say(`Imported ${done.result.model}.`);
  });
  const rows = f.all.map((e) => h('tr', { 'data-path': e.path },
    h('td', {}, e.directory ? e.path + '/' : h('a', { href: fileUrl(e.path, true) }, e.path)),
    h('td', {}, e.kind), h('td', {}, e.directory ? '' : formatCount(e.size) + 'B'),
    h('td', {},
      e.kind === 'image' ? h('button', { class: 'augment', onclick: () => attempt(async () => {
        const r = await api('POST', '/api/files/augment', { path: e.path });
        await refresh();
        say(`Augmented: ${r.files.join(', ')}`);
      }) }, 'Augment ×5') : '',
      h('button', { class: 'delete', onclick: () => attempt(async () => {
        if (!confirm(`Delete ${e.path}?`)) return;
        await api('DELETE', `/api/files?path=${encodeURIComponent(e.path)}`);
        refresh();
      }) }, 'Delete'))));
  const quota = f.quota ? `${formatCount(f.quota.used)}B of ${formatCount(f.quota.limit)}B used` : '';
  render(gen,
    h('section', { class: 'card' }, h('h2', {}, 'Upload'),
      h('label', {}, 'into folder ', dir), input,
      h('button', { id: 'upload-button', onclick: upload }, 'Upload')),
    h('section', { class: 'card' }, h('h2', {}, 'Import a Darknet model'),
      h('label', {}, 'cfg ', cfg), h('label', {}, 'weights ', weights),
      h('button', { id: 'import-button', onclick: importModel }, 'Import')),
    h('section', { class: 'card' }, h('h2', {}, 'Your files ', h('small', { id: 'quota' }, quota)),
      h('table', { id: 'file-table' }, h('tr', {}, h('th', {}, 'path'), h('th', {}, 'kind'), h('th', {}, 'size'), h('th', {}, '')), rows)));
}
