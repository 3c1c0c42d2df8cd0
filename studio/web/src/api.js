// The studio's JSON API and its event stream (server-sent events).

let csrfToken = null;

export function setCsrf(token) { csrfToken = token; }

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

export async function api(method, path, body) {
  const headers = {};
  const init = { method, headers, credentials: 'same-origin' };
  if (method !== 'GET' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  if (body instanceof Blob) {
    init.body = body;
    headers['Content-Type'] = 'application/octet-stream';
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { error: text }; }
  if (!res.ok) throw new ApiError(res.status, (data && data.error) || `HTTP ${res.status}`);
  return data;
}

export function fileUrl(path, download) {
  return `/api/files/content?path=${encodeURIComponent(path)}` +
    (download ? '&download=1' : `&t=${Date.now()}`);
}

// One EventSource per page; listeners by event type.
const listeners = { job: [], progress: [], session: [] };
let source = null;

export function onEvent(type, fn) { listeners[type].push(fn); }

export function startEvents() {
  if (source) return;
  source = new EventSource('/api/events');
  for (const type of Object.keys(listeners)) {
    source.addEventListener(type, (e) => {
      const data = JSON.parse(e.data);
      for (const fn of listeners[type]) fn(data);
    });
  }
}

export function stopEvents() {
  if (source) source.close();
  source = null;
}

// Resolves with the job once it has ended (events, with a slow poll as a
// safety net for a dropped stream).
export function waitForJob(id, onProgress) {
  return new Promise((resolve) => {
    let done = false;
    const finish = (job) => { if (!done) { done = true; clearInterval(timer); resolve(job); } };
    const ended = (job) => job && !['queued', 'running'].includes(job.status);
    onEvent('job', (job) => { if (job.id === id && ended(job)) finish(job); });
    if (onProgress) onEvent('progress', (p) => { if (p.job === id) onProgress(p); });
    const timer = setInterval(async () => {
      try { const job = await api('GET', `/api/jobs/${id}`); if (ended(job)) finish(job); } catch { /* retry */ }
    }, 2000);
  });
}
