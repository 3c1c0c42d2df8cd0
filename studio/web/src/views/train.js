// Training: fine-tune a student model towards a teacher on an image folder
// (qsim-train as a job): live step, loss and ETA, the loss curve drawn as it
// trains, Stop (the weights of the steps done are kept as a model), and the
// trainings done before with their curves, also after a reload.
import { api, fileUrl, onEvent } from '../api.js';
import { h, say, options, num, duration } from '../util.js';
import { lineChart } from '../chart.js';
import { attempt, listFiles, nextGeneration, render, current } from './common.js';

// The training followed on this page: {id, steps, points: [[step, loss]],
// eta, status, result, error}. Events update it whichever view is shown.
let live = null;
let redraw = () => {};

onEvent('progress', (p) => {
  if (!live || p.job !== live.id || p.what !== 'training') return;
  if (!live.points.length || p.done > live.points[live.points.length - 1][0]) live.points.push([p.done, p.loss]);
  live.steps = p.total;
  live.eta = p.eta_seconds;
  redraw();
});
onEvent('job', (job) => {
  if (!live || job.id !== live.id || ['queued', 'running'].includes(job.status)) return;
  Object.assign(live, { status: job.status, result: job.result, error: job.error });
  if (job.result && job.result.curve) live.points = job.result.curve;
  if (job.status === 'done') say(`Trained: ${job.result.model}.`);
  else say(`Training job ${job.id} ${job.status}${job.result ? `: ${job.result.model} holds the ${job.result.steps_done} steps done` : ''}.`, job.status === 'failed');
  redraw();
});

// The steps done so far of a running job (its log has a line per step),
// for a page that was reloaded while it trained.
async function curveFromLog(id) {
  const { log } = await api('GET', `/api/jobs/${id}/log`);
  const points = [];
  for (const m of log.matchAll(/^step (\d+)\/(\d+): loss ([^,]+)/gm)) points.push([Number(m[1]), Number(m[3])]);
  return points;
}

function statusText(t) {
  const last = t.points[t.points.length - 1];
  const step = last ? `step ${last[0]}/${t.steps}` : `starting (${t.steps} steps)`;
  const loss = last ? ` · loss ${num(last[1])}` : '';
  if (t.status === 'running') return `job ${t.id}: ${step}${loss}` + (last ? ` · ETA ${duration(Math.round(t.eta || 0))}` : '');
  return `job ${t.id} ${t.status}: ${step}${loss}` + (t.error ? ` (${t.error.split('\n')[0]})` : '');
}

function curveChart(series) {
  return lineChart(series, { id: 't-curve', width: 720, height: 260, xLabel: 'step', yLabel: 'loss', xName: 'step' });
}

export async function showTrain(gen = nextGeneration()) {
  const f = await listFiles();
  const { jobs } = await api('GET', '/api/jobs');
  const trainings = jobs.filter((j) => j.kind === 'train');
  const student = h('select', { id: 't-student' }), teacher = h('select', { id: 't-teacher' }), images = h('select', { id: 't-images' });
  options(student, f.models); options(teacher, f.models); options(images, f.dirs);
  if (f.dirs.includes('images')) images.value = 'images';
  const steps = h('input', { id: 't-steps', type: 'number', value: 200, min: 1, style: 'width:6em' });
  const batch = h('input', { id: 't-batch', type: 'number', value: 8, min: 1, max: 256, style: 'width:4em' });
  const lr = h('input', { id: 't-lr', size: 8, placeholder: 'from [net]' });
  const output = h('input', { id: 't-output', size: 30, placeholder: '<student>-trained.mlirbc' });
  const bar = h('progress', { id: 't-progress', max: 1, value: 0 });
  const status = h('p', { id: 't-status' });
  const curveBox = h('div', { id: 't-curve-box' });
  const result = h('div', { id: 't-result' });
  const stop = h('button', { id: 't-stop', disabled: true }, 'Stop');
  const shown = new Set(); // earlier trainings overlaid on the chart
  const earlier = new Map();

  redraw = () => {
    if (!current(gen)) return;
    const series = [];
    if (live) series.push({ name: `job ${live.id}`, points: live.points });
    for (const id of shown) if (earlier.has(id) && (!live || id !== live.id)) series.push({ name: `job ${id}`, points: earlier.get(id).result.curve });
    curveBox.replaceChildren(series.length ? curveChart(series) : '');
    if (!live) return;
    const last = live.points[live.points.length - 1];
    bar.max = live.steps || 1;
    bar.value = last ? last[0] : 0;
    status.textContent = statusText(live);
    stop.disabled = live.status !== 'running';
    if (live.status !== 'running' && listedEnd !== live.id) {
      listedEnd = live.id;
      refreshHistory();
    }
    const r = live.result;
    result.replaceChildren(r ? h('p', {}, 'Model: ', h('a', { id: 't-model', href: fileUrl(r.model, true) }, r.model),
      ` · ${r.steps_done} of ${r.steps} steps${r.stopped ? ' (stopped)' : ''} in ${num(r.seconds, 3)} s · loss ${num(r.loss_first)} → ${num(r.loss_last)}`) : '');
  };
  stop.addEventListener('click', () => attempt(async () => {
    await api('POST', `/api/jobs/${live.id}/stop`);
    say(`Stopping training job ${live.id} after its current step ...`);
  }));
  const start = () => attempt(async () => {
    const body = { student: student.value, teacher: teacher.value, images: images.value, steps: Number(steps.value), batch: Number(batch.value) };
    if (lr.value.trim()) body.lr = Number(lr.value);
    if (output.value.trim()) body.output = output.value.trim();
    const { job } = await api('POST', '/api/jobs/train', body);
    live = { id: job, steps: body.steps, points: [], status: 'running' };
    say(`Training job ${job} running ...`);
    redraw();
  });

  const history = h('table', { id: 't-history' });
  const fillHistory = (list) => history.replaceChildren(h('tr', {}, ['job', 'status', 'student → model', 'steps', 'loss', 'curve'].map((t) => h('th', {}, t))),
    ...list.map((j) => h('tr', { 'data-job': j.id, 'data-status': j.status },
      h('td', {}, j.id), h('td', {}, j.status), h('td', {}, `${j.args.student} (teacher ${j.args.teacher}) → ${j.args.output}`),
      h('td', { class: 'steps' }, j.args.steps), h('td', { class: 'loss' }, ''),
      h('td', {}, j.result ? h('input', { type: 'checkbox', class: 'overlay', onchange: (e) => attempt(async () => {
        if (!earlier.has(j.id)) earlier.set(j.id, await api('GET', `/api/jobs/${j.id}`));
        const r = earlier.get(j.id).result;
        e.target.closest('tr').querySelector('.loss').textContent = `${num(r.loss_first)} → ${num(r.loss_last)} (${r.steps_done} steps)`;
        if (e.target.checked) shown.add(j.id); else shown.delete(j.id);
        redraw();
      }) }) : ''))));
  fillHistory(trainings);
  // The list again once the followed training has ended.
  let listedEnd = live && live.status !== 'running' ? live.id : null;
  const refreshHistory = () => attempt(async () => {
    const all = (await api('GET', '/api/jobs')).jobs;
    if (current(gen)) fillHistory(all.filter((j) => j.kind === 'train'));
  });

  // After a reload: follow the newest training again (running or not).
  const newest = trainings[0];
  if (newest && (!live || live.id !== newest.id) && (newest.status === 'running' || newest.result)) {
    const job = await api('GET', `/api/jobs/${newest.id}`);
    live = { id: job.id, steps: job.args.steps, status: job.status, result: job.result, error: job.error,
      points: job.result ? job.result.curve : await curveFromLog(job.id) };
  }
  if (!render(gen,
    h('section', { class: 'card' }, h('h2', {}, 'Train a model'),
      h('p', {}, 'The student learns the teacher\'s outputs on the images (distillation, no labels needed): a lightened, pruned or edited model recovers what it lost. qsim-train, see docs/training.md.'),
      h('label', {}, 'student ', student), h('label', {}, 'teacher ', teacher), h('label', {}, 'images ', images), h('br'),
      h('label', {}, 'steps ', steps), h('label', {}, 'batch ', batch), h('label', {}, 'learning rate ', lr), h('label', {}, 'output ', output),
      h('button', { id: 't-start', onclick: start }, 'Train'), stop, h('br'), bar, status, curveBox, result),
    h('section', { class: 'card' }, h('h2', {}, 'Trainings'), history))) return;
  redraw();
}
