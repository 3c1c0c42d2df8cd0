// End-to-end test of qsim-studio in a real browser: Debian's chromium driven
// by playwright-core. Starts its own qsim-studio on a free loopback port with
// a fresh data directory, then: register, log out, log in, upload a model
// and images, open the graph, run int8 inference, step to a layer, cross it,
// edit a weight and re-run, save, augment an image. Screenshots of every
// step are kept in $QSIM_E2E_ARTIFACTS (default e2e/artifacts).
//
//   QSIM_BIN=build/bin node studio/e2e/studio.e2e.mjs
//
// Exits 77 (skipped) when chromium or the built front end is missing.
import { spawn, execFileSync } from 'node:child_process';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const bin = path.resolve(process.env.QSIM_BIN || path.join(repo, 'build/bin'));
const chromium = process.env.QSIM_CHROMIUM || '/usr/bin/chromium';
const web = path.join(repo, 'studio/web/dist');
const artifacts = path.resolve(process.env.QSIM_E2E_ARTIFACTS || path.join(here, 'artifacts'));

function skip(why) { console.log(`SKIPPED: ${why}`); process.exit(77); }
if (!fs.existsSync(chromium)) skip(`${chromium} is not installed (apt install chromium)`);
if (!fs.existsSync(path.join(web, 'index.html'))) skip(`${web} is not built (cd studio && npm ci && npm run build)`);
let chromiumDriver;
try { chromiumDriver = (await import('playwright-core')).chromium; } catch { skip('playwright-core is not installed (cd studio && npm ci)'); }

fs.mkdirSync(artifacts, { recursive: true });
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'qsim-e2e-'));
const uploads = path.join(work, 'uploads');
fs.mkdirSync(uploads);

// What the user uploads: a model imported here (synthetic weights) and
// pictures (real ones when QSIM_DATA_DIR has them).
const model = path.join(uploads, 'tiny.mlirbc');
execFileSync(path.join(bin, 'qsim-translate'), ['--import-darknet', path.join(repo, 'examples/models/synthetic-yolov3-tiny.cfg'), '--random-weights=1', '-o', model]);
const images = [];
const capp = process.env.QSIM_DATA_DIR && path.join(process.env.QSIM_DATA_DIR, 'capp-aix-subset');
if (capp && fs.existsSync(capp)) {
  for (const f of fs.readdirSync(capp).filter((f) => f.endsWith('.jpg')).sort().slice(0, 3)) images.push(path.join(capp, f));
} else {
  for (let i = 0; i < 3; ++i) {
    const p = path.join(uploads, `picture${i}.ppm`);
    execFileSync('python3', [path.join(repo, 'test/Inputs/make-image.py'), p, String(300 + 20 * i), String(220 + 10 * i)]);
    images.push(p);
  }
}

const portFile = path.join(work, 'port');
const server = spawn(path.join(bin, 'qsim-studio'), ['--data', path.join(work, 'data'), '--listen', '127.0.0.1:0', '--port-file', portFile,
  '--web', web, '--password-memory-kb', '8192', '-q'], { stdio: ['ignore', 'inherit', 'inherit'] });
let browser;
const shot = async (page, name) => { await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true }); };

try {
  for (let i = 0; i < 200 && !fs.existsSync(portFile); ++i) await new Promise((r) => setTimeout(r, 50));
  const port = fs.readFileSync(portFile, 'utf8').trim();
  const base = `http://127.0.0.1:${port}/`;
  browser = await chromiumDriver.launch({
    executablePath: chromium, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.setDefaultTimeout(120000);
  const notice = page.locator('#notice');
  const expectNotice = async (re) => { await page.waitForFunction((s) => new RegExp(s).test(document.getElementById('notice').textContent), re.source); };

  // Register, log out, log in.
  await page.goto(base);
  await page.fill('#login-name', 'alice');
  await page.fill('#login-password', 'correct horse battery');
  await shot(page, '01-login');
  await page.click('#register-button');
  await expectNotice(/Logged in as alice/);
  await page.click('#logout');
  await expectNotice(/Logged out/);
  await page.fill('#login-name', 'alice');
  await page.fill('#login-password', 'wrong password!');
  await page.click('#login-button');
  await expectNotice(/wrong user name or password/);
  await page.fill('#login-password', 'correct horse battery');
  await page.click('#login-button');
  await expectNotice(/Logged in as alice/);
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'qsim_session');
  assert.ok(session && session.httpOnly && session.sameSite === 'Strict', 'the login cookie is HttpOnly and SameSite=Strict');

  // Upload the model, the images and calibration images.
  const upload = async (dir, files) => {
    await page.fill('#upload-dir', dir);
    await page.setInputFiles('#upload-file', files);
    await page.click('#upload-button');
    await expectNotice(new RegExp(`Uploaded ${files.length} file`));
  };
  await upload('models', [model]);
  await upload('images', images);
  await upload('calib', images);
  await page.waitForSelector('tr[data-path="models/tiny.mlirbc"]');
  await shot(page, '02-files');

  // The graph.
  await page.click('a[href="#model"]');
  await page.waitForSelector('#graph svg rect[data-layer="21"]');
  const boxes = await page.locator('#graph svg rect[data-layer]').count();
  assert.equal(boxes, 23, 'input + 22 layers drawn');
  assert.ok(await page.locator('#graph path.route').count() >= 2, 'route edges are drawn');
  await page.click('#graph svg rect[data-layer="15"]');
  await page.waitForSelector('#layer-details');
  assert.match(await page.locator('#layer-details').innerText(), /15 \(route\)|15 \(convolutional\)/);
  await shot(page, '03-graph');

  // int8 inference with per-layer SQNR, drawn detections.
  await page.click('a[href="#inference"]');
  await page.selectOption('#inf-model', 'models/tiny.mlirbc');
  await page.selectOption('#inf-mode', 'int8');
  await page.selectOption('#inf-calib', 'calib');
  await page.click('#inf-run');
  await page.waitForSelector('section.run');
  const sqnrRows = await page.locator('section.run table.sqnr tr').count();
  assert.equal(sqnrRows, 23, 'one SQNR row per layer');
  const firstSqnr = await page.locator('section.run table.sqnr tr:nth-child(2) td:nth-child(4)').innerText();
  assert.ok(Number(firstSqnr) > 10, `layer 0 int8 SQNR ${firstSqnr} dB`);
  await page.selectOption('#inf-mode', 'fp16');
  await page.click('#inf-run');
  await page.waitForFunction(() => document.querySelectorAll('section.run').length === 2);
  await page.click('#cmp-show');
  await page.waitForSelector('#compare-table');
  await shot(page, '04-inference');

  // Step debugger: run to layer 4, look at it, cross it to fp32, edit a
  // weight, re-run, save.
  await page.click('a[href="#debugger"]');
  await page.selectOption('#dbg-mode', 'int8');
  await page.selectOption('#dbg-calib', 'calib');
  await page.click('#dbg-start');
  await expectNotice(/Session \d+ ready/);
  await page.fill('#dbg-layer', '4');
  await page.click('#dbg-runto');
  await page.waitForFunction(() => /next layer 5/.test(document.getElementById('dbg-status').textContent));
  await page.click('#dbg-show');
  await page.waitForSelector('#dbg-stats');
  await page.waitForFunction(() => document.getElementById('dbg-tensor-img').naturalWidth > 0 && document.getElementById('dbg-hist-img').naturalWidth > 0);
  await shot(page, '05-step-layer4');
  await page.selectOption('#dbg-cross-prec', 'fp32');
  await page.click('#dbg-cross');
  await page.waitForFunction(() => /"vs_float"/.test(document.getElementById('dbg-log').textContent));
  assert.match(await page.locator('#dbg-log').innerText(), /"cross_precision": "fp32"/);
  await shot(page, '06-cross');
  await page.fill('#dbg-w-index', '0');
  await page.fill('#dbg-w-value', '0.75');
  await page.click('#dbg-set-weight');
  await page.waitForFunction(() => /"changed"/.test(document.getElementById('dbg-log').textContent));
  await page.click('#dbg-rerun');
  await page.waitForFunction(() => /"change"/.test(document.getElementById('dbg-log').textContent));
  const rerun = JSON.parse(await page.locator('#dbg-log').innerText());
  assert.ok(rerun.change.changed_values > 0, 'the edited weight changed the layer output');
  await shot(page, '07-edit-rerun');
  await page.fill('#dbg-save-file', 'models/tiny-edited.mlirbc');
  await page.click('#dbg-save');
  await page.waitForFunction(() => /"edits": 1/.test(document.getElementById('dbg-log').textContent));
  await page.click('#dbg-end');
  await expectNotice(/Session ended/);

  // Augmentation: one image becomes five.
  await page.click('a[href="#files"]');
  const first = `images/${path.basename(images[0])}`;
  await page.locator(`tr[data-path="${first}"] button.augment`).click();
  await expectNotice(/Augmented/);
  const stem = first.replace(/\.[^.]+$/, '');
  for (const v of ['original', 'rotated', 'blurred', 'flipped', 'flopped'])
    await page.waitForSelector(`tr[data-path^="${stem}-${v}."]`);
  await page.waitForSelector('tr[data-path="models/tiny-edited.mlirbc"]');
  await shot(page, '08-augmented');
  console.log(`PASSED: studio end-to-end (screenshots in ${artifacts})`);
} catch (e) {
  console.error('FAILED:', e);
  try { const pages = browser ? browser.contexts().flatMap((c) => c.pages()) : []; if (pages[0]) await shot(pages[0], 'failure'); } catch { /* no page */ }
  process.exitCode = 1;
} finally {
  if (browser) await browser.close();
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  fs.rmSync(work, { recursive: true, force: true });
}
