// Jobs: every job with when it started, how long it ran, its arguments in
// words, a link to its result; pause, resume and stop jobs; end sessions.
import { api, fileUrl } from '../api.js';
import { h, say, when, duration } from '../util.js';
import { attempt, nextGeneration, render, current } from './common.js';
import { forgetSession } from './debugger.js';

export function describeArgs(job) {
  const a = job.args || {};
  switch (job.kind) {
    case 'inference': return `${a.model} on ${a.image}, ${a.mode}` + (a.calib ? `, calibrated on ${a.calib}/` : '') + (a.precision ? ` (${a.precision})` : '');
    case 'quantize': return `${a.model} → ${a.output}, ${a.mode}, ${a.method} on ${a.calib_images} images of ${a.calib}/` + (a.mode === 'mixed' ? ` (${a.plan})` : '');
    case 'train': return `${a.student} → ${a.output}, teacher ${a.teacher}, ${a.steps} steps of ${a.batch} images of ${a.images}/` + (a.lr ? `, lr ${a.lr}` : '');
    case 'import': return `${a.cfg} ${a.weights ? '+ ' + a.weights : '(synthetic weights)'} → ${a.output}`;
    case 'session': return `${a.model}${a.image ? ' on ' + a.image : ''}, ${a.mode}` + (a.calib ? `, calibrated on ${a.calib}/` : '');
    default: return JSON.stringify(a);
  }
}

function resultLink(job) {
  if (job.kind === 'train' && job.result) return h('a', { href: '#train', class: 'result-link' }, `${job.args.output} (curve)`);
  if (job.status !== 'done' || !job.result) return '';
  if (job.kind === 'inference') return h('a', { href: `#inference/run/${job.id}`, class: 'result-link' }, 'open the run');
  if (job.kind === 'quantize' || job.kind === 'import') {
    const path = job.args.output;
    return h('a', { href: fileUrl(path, true), class: 'result-link' }, path);
  }
  return '';
}

export async function showJobs(gen = nextGeneration()) {
  const { jobs } = await api('GET', '/api/jobs');
  const now = Math.floor(Date.now() / 1000);
  const log = h('pre', { id: 'job-log' });
  const refresh = () => (current(gen) ? showJobs() : undefined);
  const act = (id, action) => attempt(async () => { await api('POST', `/api/jobs/${id}/${action}`); refresh(); });
  const endSession = (id) => attempt(async () => {
    await api('DELETE', `/api/sessions/${id}`);
    forgetSession(id);
    say(`Session ${id} ended.`);
    refresh();
  });
  const actions = (j) => {
    if (j.status !== 'running') return '';
    if (j.kind === 'session') return h('button', { class: 'end-session', onclick: () => endSession(j.id) }, 'End session');
    return [h('button', { onclick: () => act(j.id, 'pause') }, 'Pause'), h('button', { onclick: () => act(j.id, 'resume') }, 'Resume'),
      h('button', { onclick: () => act(j.id, 'stop') }, 'Stop')];
  };
  render(gen, h('section', { class: 'card' }, h('h2', {}, 'Jobs'),
    h('table', { id: 'job-table' }, h('tr', {}, ['id', 'kind', 'status', 'started', 'took', 'arguments', 'result', 'error', ''].map((t) => h('th', {}, t))),
      jobs.map((j) => h('tr', { 'data-job': j.id, 'data-kind': j.kind, 'data-status': j.status },
        h('td', {}, j.id), h('td', {}, j.kind), h('td', { class: 'status' }, j.status), h('td', {}, when(j.created)),
        h('td', {}, j.finished ? duration(j.finished - j.created) : `${duration(now - j.created)} so far`),
        h('td', {}, describeArgs(j)), h('td', {}, resultLink(j)), h('td', { class: 'bad' }, (j.error || '').slice(0, 300)),
        h('td', {}, actions(j),
          h('button', { onclick: () => attempt(async () => { log.textContent = (await api('GET', `/api/jobs/${j.id}/log`)).log; }) }, 'Log'))))),
    log));
}
