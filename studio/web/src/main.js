// qsim-studio's browser UI: plain DOM, one view per hash (#files, #model,
// #inference[/run/N], #debugger, #quantize, #train, #jobs); views in views/.
import { api, setCsrf, startEvents, stopEvents, onEvent } from './api.js';
import { h, say } from './util.js';
import { attempt, nextGeneration, setLoggedOutHandler } from './views/common.js';
import { showFiles } from './views/files.js';
import { showModel } from './views/model.js';
import { showInference } from './views/inference.js';
import { showDebugger, currentSession, forgetSession } from './views/debugger.js';
import { showQuantize } from './views/quantize.js';
import { showTrain } from './views/train.js';
import { showJobs } from './views/jobs.js';

const main = document.getElementById('main');
let me = null;

function showLogin() {
  me = null;
  nextGeneration();
  stopEvents();
  document.getElementById('nav').hidden = true;
  document.getElementById('logout').hidden = true;
  document.getElementById('who').textContent = '';
  const name = h('input', { id: 'login-name', placeholder: 'user name', autocomplete: 'username' });
  const password = h('input', { id: 'login-password', type: 'password', placeholder: 'password', autocomplete: 'current-password' });
  const go = (path) => attempt(async () => {
    const r = await api('POST', path, { name: name.value, password: password.value });
    loggedIn(r);
  });
  main.replaceChildren(h('section', { class: 'card' },
    h('h2', {}, 'Log in to qsim-studio'),
    name, password,
    h('button', { id: 'login-button', onclick: () => go('/api/login') }, 'Log in'),
    h('button', { id: 'register-button', onclick: () => go('/api/register') }, 'Register'),
    h('p', {}, 'A new account needs a name of 3 to 32 lower-case letters, digits, "_" or "-" and a password of at least 8 characters.')));
}
setLoggedOutHandler(() => { if (me) showLogin(); });

function loggedIn(r) {
  me = r.name;
  setCsrf(r.csrf);
  say(`Logged in as ${r.name}.`);
  document.getElementById('nav').hidden = false;
  document.getElementById('logout').hidden = false;
  document.getElementById('who').textContent = r.name;
  startEvents();
  route();
}

document.getElementById('logout').addEventListener('click', () => attempt(async () => {
  await api('POST', '/api/logout');
  forgetSession();
  say('Logged out.');
  showLogin();
}));

const views = { files: showFiles, model: showModel, inference: showInference, debugger: showDebugger, quantize: showQuantize, train: showTrain, jobs: showJobs };

function route() {
  if (!me) return showLogin();
  const [name, sub, id] = (location.hash.slice(1) || 'files').split('/');
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.getAttribute('href') === '#' + name);
  const view = views[name] || showFiles;
  attempt(() => (name === 'inference' && sub === 'run' ? view(nextGeneration(), Number(id)) : view()));
}

window.addEventListener('hashchange', route);
onEvent('session', (e) => {
  const s = currentSession();
  if (s && e.session === s.id && e.ended) {
    forgetSession(e.session);
    say(`Session ${e.session} ended: ${e.reason}`, e.reason !== 'ended');
  }
});
api('GET', '/api/me').then(loggedIn, showLogin);
