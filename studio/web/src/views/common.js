// What the views share: drawing only the latest view, running actions with
// their errors shown, the file list, graphs, and guarding against replies
// that arrive after a newer request.
import { api, ApiError } from '../api.js';
import { say } from '../util.js';

const main = () => document.getElementById('main');
let generation = 0;
let onLoggedOut = () => {};

export function setLoggedOutHandler(fn) { onLoggedOut = fn; }
export function nextGeneration() { return ++generation; }
// Views load data before they draw; only the latest view asked for may draw
// (a slow response must not paint over the login form or a newer view).
export function render(gen, ...nodes) {
  if (gen === generation) main().replaceChildren(...nodes);
  return gen === generation;
}
export function current(gen) { return gen === generation; }

// A reply that arrived after a newer request of the same kind.
export class Stale extends Error {}

// Wraps requests of one kind: a reply is used only if no newer request of
// that kind was made meanwhile; an older one rejects with Stale.
export function latestOnly() {
  let counter = 0;
  return (promise) => {
    const mine = ++counter;
    return promise.then((v) => { if (mine !== counter) throw new Stale(); return v; },
      (e) => { if (mine !== counter) throw new Stale(); throw e; });
  };
}

// Runs an action, showing its error (the server's message) instead of failing.
export async function attempt(fn) {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof Stale) return undefined;
    if (e instanceof ApiError && e.status === 401) onLoggedOut();
    say(e.message, true);
    return undefined;
  }
}

export async function listFiles() {
  const { files, quota } = await api('GET', '/api/files');
  const of = (kind) => files.filter((f) => f.kind === kind).map((f) => f.path);
  return {
    all: files, quota,
    models: of('model'), images: of('image'), cfgs: of('cfg'), weights: of('weights'), names: of('names'),
    dirs: files.filter((f) => f.directory).map((f) => f.path),
  };
}

// Pictures to run on: those under images/ first (calib/ holds calibration).
export function preferImages(select, images) {
  const first = images.find((p) => p.startsWith('images/'));
  if (first) select.value = first;
}

export function preferCalib(select, dirs) {
  if (dirs.includes('calib')) select.value = 'calib';
}

export function graphOf(path) {
  return api('GET', `/api/models/graph?path=${encodeURIComponent(path)}`);
}

// Finished jobs of a kind with their results (fetched once each).
const results = new Map();
export async function finishedJobs(kind) {
  const { jobs } = await api('GET', '/api/jobs');
  const done = jobs.filter((j) => j.kind === kind && j.status === 'done' && j.result);
  return Promise.all(done.map(async (j) => {
    if (!results.has(j.id)) results.set(j.id, await api('GET', `/api/jobs/${j.id}`));
    return results.get(j.id);
  }));
}

// Class names of a .names file of the workspace (one per line).
const namesCache = new Map();
export async function classNames(path) {
  if (!path) return null;
  if (!namesCache.has(path)) {
    const res = await fetch(`/api/files/content?path=${encodeURIComponent(path)}`, { credentials: 'same-origin' });
    namesCache.set(path, res.ok ? (await res.text()).split('\n').map((s) => s.trim()).filter(Boolean) : null);
  }
  return namesCache.get(path);
}
