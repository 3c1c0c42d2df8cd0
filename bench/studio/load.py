#!/usr/bin/env python3
"""Load test of qsim-studio on loopback: N users at once, each with a step
session and an inference job (plus uploads, graph, stats, cross, ...).

Starts its own qsim-studio (fresh data directory, free port), runs the users
concurrently in threads (Python's standard library only), then checks that
every request was answered, nothing was lost (each user's files and jobs are
all there) and samples the server's resident memory throughout.

  python3 bench/studio/load.py                # 10 users, 2 rounds
  python3 bench/studio/load.py --users 10 --rounds 3 --bin build/bin

Uses yolov3-tiny-aix2022 and CAPP/coco images from $QSIM_MODELS_DIR /
$QSIM_DATA_DIR when set, else the synthetic model and generated images.
"""
import argparse
import http.cookiejar
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class User:
    def __init__(self, base, name, log):
        self.base, self.name, self.log = base, name, log
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.csrf = None

    def request(self, method, path, body=None, raw=None, expect=(200, 201, 202)):
        headers = {}
        data = None
        if raw is not None:
            data, headers['Content-Type'] = raw, 'application/octet-stream'
        elif body is not None:
            data, headers['Content-Type'] = json.dumps(body).encode(), 'application/json'
        if self.csrf and method != 'GET':
            headers['X-CSRF-Token'] = self.csrf
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        t0 = time.monotonic()
        try:
            with self.opener.open(req, timeout=600) as res:
                status, text = res.status, res.read()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read()
        except Exception as e:  # no answer at all
            status, text = 0, str(e).encode()
        self.log.append((path.split('?')[0], time.monotonic() - t0, status))
        if status not in expect:
            raise RuntimeError(f'{self.name}: {method} {path}: {status} {text[:300]!r}')
        ctype_json = text[:1] in (b'{', b'[')
        return json.loads(text) if ctype_json else text

    def wait_job(self, job):
        while True:
            j = self.request('GET', f'/api/jobs/{job}')
            if j['status'] not in ('queued', 'running'):
                return j
            time.sleep(0.25)


def user_round(base, name, files, model_path, log, results, round_index):
    u = User(base, name, log)
    if round_index == 0:
        r = u.request('POST', '/api/register', {'name': name, 'password': 'password-' + name})
        u.csrf = r['csrf']
        for rel, local in files:
            with open(local, 'rb') as f:
                u.request('POST', f'/api/files?path={rel}&overwrite=1', raw=f.read())
    else:
        r = u.request('POST', '/api/login', {'name': name, 'password': 'password-' + name})
    u.csrf = r['csrf']
    image = [rel for rel, _ in files if rel.startswith('images/')][0]
    u.request('GET', f'/api/models/graph?path={model_path}')
    job = u.request('POST', '/api/jobs/inference',
                    {'model': model_path, 'image': image, 'mode': 'int8', 'calib': 'calib', 'calib_images': 4})['job']
    s = u.request('POST', '/api/sessions', {'model': model_path, 'image': image, 'mode': 'int8',
                                            'calib': 'calib', 'calib_images': 4})['session']
    cmd = f'/api/sessions/{s}/command'
    steps = [{'cmd': 'run-to', 'layer': 8}, {'cmd': 'stats', 'layer': 8, 'what': 'output'},
             {'cmd': 'compare', 'layer': 8}, {'cmd': 'cross', 'layer': 8, 'precision': 'fp32'},
             {'cmd': 'dump', 'layer': 8, 'what': 'output', 'file': f'session/r{round_index}-l8.png'},
             {'cmd': 'continue'}]
    for c in steps:
        reply = u.request('POST', cmd, c)
        if not reply.get('ok'):
            raise RuntimeError(f'{name}: {c}: {reply}')
    u.request('DELETE', f'/api/sessions/{s}')
    j = u.wait_job(job)
    if j['status'] != 'done' or len(j['result']['layers']) == 0:
        raise RuntimeError(f'{name}: inference job {job}: {j["status"]} {j["error"][:300]}')
    # Nothing lost: every upload, the dump, and this round's two jobs.
    listed = {f['path'] for f in u.request('GET', '/api/files')['files']}
    missing = [rel for rel, _ in files if rel not in listed]
    if f'session/r{round_index}-l8.png' not in listed:
        missing.append(f'session/r{round_index}-l8.png')
    jobs = u.request('GET', '/api/jobs')['jobs']
    if missing or len(jobs) != 2 * (round_index + 1):
        raise RuntimeError(f'{name}: lost data: missing {missing}, {len(jobs)} jobs')
    results.append((name, j['result']['layers'][8].get('sqnr_db')))


def rss_kib(pid):
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--users', type=int, default=10)
    ap.add_argument('--rounds', type=int, default=2)
    ap.add_argument('--bin', default=os.path.join(ROOT, 'build/bin'))
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix='qsim-load-')
    models = os.environ.get('QSIM_MODELS_DIR', '')
    data = os.environ.get('QSIM_DATA_DIR', '')
    cfg = os.path.join(models, 'darknet/yolov3-tiny-aix2022.cfg')
    weights = os.path.join(models, 'weights/yolov3-tiny-aix2022.weights')
    model = os.path.join(work, 'model.mlirbc')
    if os.path.isfile(cfg) and os.path.isfile(weights):
        what = 'yolov3-tiny-aix2022 (trained weights)'
        subprocess.run([os.path.join(args.bin, 'qsim-translate'), '--import-darknet', cfg, '--weights', weights, '-o', model], check=True)
    else:
        what = 'synthetic yolov3-tiny (QSIM_MODELS_DIR unset)'
        subprocess.run([os.path.join(args.bin, 'qsim-translate'), '--import-darknet',
                        os.path.join(ROOT, 'examples/models/synthetic-yolov3-tiny.cfg'), '--random-weights=1', '-o', model], check=True)
    files = [('models/model.mlirbc', model)]
    capp = os.path.join(data, 'capp-aix-subset')
    coco = os.path.join(data, 'coco128/images/train2017')
    if os.path.isdir(capp) and os.path.isdir(coco):
        files += [('images/' + n, os.path.join(capp, n)) for n in sorted(os.listdir(capp)) if n.endswith('.jpg')][:2]
        files += [('calib/' + n, os.path.join(coco, n)) for n in sorted(os.listdir(coco)) if n.endswith('.jpg')][:4]
    else:
        for i in range(6):
            p = os.path.join(work, f'img{i}.ppm')
            subprocess.run([sys.executable, os.path.join(ROOT, 'test/Inputs/make-image.py'), p, str(300 + 10 * i), str(240)], check=True)
            files.append(((f'images/img{i}.ppm' if i < 2 else f'calib/img{i}.ppm'), p))

    port_file = os.path.join(work, 'port')
    server = subprocess.Popen([os.path.join(args.bin, 'qsim-studio'), '--data', os.path.join(work, 'data'), '--web', '',
                               '--listen', '127.0.0.1:0', '--port-file', port_file, '-q'])
    try:
        for _ in range(200):
            if os.path.exists(port_file):
                break
            time.sleep(0.05)
        base = f'http://127.0.0.1:{open(port_file).read().strip()}'
        samples = []
        sampling = True

        def sample():
            while sampling:
                v = rss_kib(server.pid)
                if v:
                    samples.append(v)
                time.sleep(0.2)

        sampler = threading.Thread(target=sample)
        sampler.start()
        print(f'model: {what}; {args.users} users x {args.rounds} rounds, each: graph, inference job, '
              f'step session (run-to, stats, compare, cross, dump, continue), checks')
        idle = rss_kib(server.pid)
        round_stats = []
        all_log, failures = [], []
        for r in range(args.rounds):
            log, results, errors = [], [], []
            t0 = time.monotonic()

            def run(i):
                try:
                    user_round(base, f'user{i:02d}', files, 'models/model.mlirbc', log, results, r)
                except Exception as e:
                    errors.append(str(e))

            threads = [threading.Thread(target=run, args=(i,)) for i in range(args.users)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.monotonic() - t0
            round_stats.append((wall, len(log), max(samples) if samples else 0, rss_kib(server.pid)))
            all_log += log
            failures += errors
            print(f'round {r + 1}: {wall:.1f} s, {len(log)} requests, {len(errors)} failed, '
                  f'server RSS now {rss_kib(server.pid) / 1024:.1f} MiB')
        sampling = False
        sampler.join()
        unanswered = sum(1 for _, _, s in all_log if s == 0)
        lat = sorted(d for _, d, _ in all_log)
        quick = sorted(d for p, d, _ in all_log if p in ('/api/files', '/api/me') or p.startswith('/api/jobs/'))
        print(f'requests: {len(all_log)}, unanswered: {unanswered}, failures: {len(failures)}')
        print(f'latency all requests: median {statistics.median(lat) * 1000:.1f} ms, '
              f'p95 {lat[int(0.95 * (len(lat) - 1))] * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms')
        print(f'latency file/job listings: median {statistics.median(quick) * 1000:.1f} ms, '
              f'p95 {quick[int(0.95 * (len(quick) - 1))] * 1000:.1f} ms')
        print(f'server RSS: idle {idle / 1024:.1f} MiB, peak {max(samples) / 1024:.1f} MiB, '
              f'after each round ' + ', '.join(f'{s[3] / 1024:.1f}' for s in round_stats) + ' MiB')
        for f in failures[:10]:
            print('FAILED:', f)
        return 1 if failures or unanswered else 0
    finally:
        server.terminate()
        server.wait()
        subprocess.run(['rm', '-rf', work])


if __name__ == '__main__':
    sys.exit(main())
