#!/usr/bin/env python3
"""qsim-studio under abuse, on loopback: while an attacker holds slow
clients, many event streams, chunked floods and 500 idle connections, another
user logs in and lists her files every 100 ms; their latencies are measured
per phase (median, p95, max) with the server's resident memory.

Starts its own qsim-studio (fresh data directory, free loopback port, API
only), then runs the phases one after the other, each for --seconds, and
finally all at once. Every loop is bounded in time and count and stops by
itself. Python's standard library only.

  python3 bench/studio/abuse.py                  # 10 s per phase
  python3 bench/studio/abuse.py --seconds 20 --bin build/bin

The victim's password is hashed with the server's default argon2id cost
(64 MiB), as in production: a login is mostly that hash.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def http(port, method, path, body=None, cookie='', timeout=30):
    headers = {'Content-Type': 'application/json'} if body is not None else {}
    if cookie:
        headers['Cookie'] = cookie
    req = urllib.request.Request(f'http://127.0.0.1:{port}{path}', method=method, headers=headers,
                                 data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            return res.status, res.read(), res.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


def register(port, name):
    status, text, headers = http(port, 'POST', '/api/register', {'name': name, 'password': 'secret-' + name})
    assert status == 201, (status, text)
    return headers.get_all('Set-Cookie')[0].split(';')[0]


class Phase:
    """Attack threads that run until `stop` is set."""

    def __init__(self, port, cookie):
        self.port, self.cookie, self.stop = port, cookie, threading.Event()
        self.threads, self.sockets, self.refused = [], [], 0

    def spawn(self, fn, n=1):
        for _ in range(n):
            t = threading.Thread(target=fn, daemon=True)
            t.start()
            self.threads.append(t)

    def connect(self):
        try:
            s = socket.create_connection(('127.0.0.1', self.port), timeout=5)
            self.sockets.append(s)
            return s
        except OSError:
            self.refused += 1
            return None

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=10)
        for s in self.sockets:
            try:
                s.close()
            except OSError:
                pass


def slow_clients(p, count=300):
    """Slowloris: partial headers, one more byte every 2 s; reconnects when
    the server closes them."""
    def run():
        socks = []
        while not p.stop.is_set():
            while len(socks) < count // 4 and not p.stop.is_set():
                s = p.connect()
                if s is None:
                    break
                s.sendall(b'POST /api/login HTTP/1.1\r\nHost: x\r\nX-Slow: ')
                socks.append(s)
            for s in list(socks):
                try:
                    s.send(b'a')
                except OSError:
                    socks.remove(s)
            p.stop.wait(2)
    p.spawn(run, 4)


def many_streams(p, count=200):
    """The attacker's account opens event streams and keeps them open."""
    def run():
        socks = []
        while not p.stop.is_set():
            while len(socks) < count // 2 and not p.stop.is_set():
                s = p.connect()
                if s is None:
                    break
                s.sendall(f'GET /api/events HTTP/1.1\r\nHost: x\r\nCookie: {p.cookie}\r\n\r\n'.encode())
                s.setblocking(False)
                socks.append(s)
            for s in list(socks):  # read what comes; a closed stream is replaced
                try:
                    if s.recv(65536) == b'':
                        socks.remove(s)
                except BlockingIOError:
                    pass
                except OSError:
                    socks.remove(s)
            p.stop.wait(0.5)
    p.spawn(run, 2)


def chunked_floods(p):
    """Endless chunked bodies to /api/login (anonymous) and /api/files
    (logged in, no CSRF token), as fast as the server takes them."""
    chunk = b'10000\r\n' + b'x' * 65536 + b'\r\n'

    def run(target):
        while not p.stop.is_set():
            s = p.connect()
            if s is None:
                p.stop.wait(0.1)
                continue
            try:
                s.sendall(target + b'Transfer-Encoding: chunked\r\n\r\n')
                for _ in range(1000):  # at most 64 MB per connection
                    if p.stop.is_set():
                        break
                    s.sendall(chunk)
            except OSError:
                pass
            s.close()
            p.sockets.remove(s)
    login = b'POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
    upload = (f'POST /api/files?path=flood.bin HTTP/1.1\r\nHost: x\r\nCookie: {p.cookie}\r\n'
              'Content-Type: application/octet-stream\r\n').encode()
    p.spawn(lambda: run(login), 3)
    p.spawn(lambda: run(upload), 3)


def idle_connections(p, count=500):
    """500 connections that connect and send nothing; replaced when closed."""
    def run():
        socks = []
        while not p.stop.is_set():
            while len(socks) < count // 5 and not p.stop.is_set():
                s = p.connect()
                if s is None:
                    break
                s.setblocking(False)
                socks.append(s)
            for s in list(socks):
                try:
                    if s.recv(1) == b'':
                        socks.remove(s)
                except BlockingIOError:
                    pass
                except OSError:
                    socks.remove(s)
            p.stop.wait(0.5)
    p.spawn(run, 5)


def probe(port, seconds, samples):
    """The victim: log in and list files every 100 ms."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        try:
            status, text, headers = http(port, 'POST', '/api/login', {'name': 'carol', 'password': 'secret-carol'})
            t1 = time.monotonic()
            cookie = headers.get_all('Set-Cookie')[0].split(';')[0] if status == 200 else ''
            status2, _, _ = http(port, 'GET', '/api/files', cookie=cookie)
            t2 = time.monotonic()
            samples.append((t1 - t0, t2 - t1, status, status2))
        except Exception as e:  # no answer within the timeout
            samples.append((time.monotonic() - t0, float('nan'), 0, str(e)))
        time.sleep(max(0.0, 0.1 - (time.monotonic() - t0)))


def rss_mib(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return 0.0


def summary(values):
    values = sorted(values)
    if not values:
        return '-'
    p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
    return f'{1000 * statistics.median(values):.1f} / {1000 * p95:.1f} / {1000 * values[-1]:.1f}'


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--bin', default=os.path.join(ROOT, 'build/bin'))
    ap.add_argument('--seconds', type=float, default=10)
    ap.add_argument('--password-memory-kb', type=int, default=19456,
                    help="argon2id memory per hash (the server's default: 19 MiB; 0: libsodium's 64 MiB)")
    args = ap.parse_args()
    data = tempfile.mkdtemp(prefix='qsim-abuse-')
    port_file = os.path.join(data, 'port')
    server = subprocess.Popen([os.path.join(args.bin, 'qsim-studio'), '--data', os.path.join(data, 'data'),
                               '--web', '', '--listen', '127.0.0.1:0', '--port-file', port_file, '-q',
                               '--password-memory-kb', str(args.password_memory_kb)],
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if os.path.exists(port_file):
                break
            time.sleep(0.05)
        port = int(open(port_file).read())
        register(port, 'carol')
        attacker = register(port, 'mallory')
        phases = [('idle (no attack)', []), ('300 slow clients', [slow_clients]),
                  ('200 event streams of one user', [many_streams]), ('chunked floods (6 senders)', [chunked_floods]),
                  ('500 idle connections', [idle_connections]),
                  ('all of the above at once', [slow_clients, many_streams, chunked_floods, idle_connections])]
        rows = []
        for name, attacks in phases:
            p = Phase(port, attacker)
            for attack in attacks:
                attack(p)
            time.sleep(1.5)  # let the attack build up
            samples, peak = [], [0.0]
            done = threading.Event()

            def watch():
                while not done.is_set():
                    peak[0] = max(peak[0], rss_mib(server.pid))
                    done.wait(0.2)
            w = threading.Thread(target=watch)
            w.start()
            probe(port, args.seconds, samples)
            done.set()
            w.join()
            open_sockets = len(p.sockets) + p.refused  # connections made
            p.finish()
            ok = sum(1 for s in samples if s[2] == 200 and s[3] == 200)
            rows.append((name, len(samples), ok, summary([s[0] for s in samples if s[2] == 200]),
                         summary([s[1] for s in samples if s[3] == 200]), open_sockets, peak[0]))
            print(f'{name}: {ok}/{len(samples)} ok, login {rows[-1][3]} ms, files {rows[-1][4]} ms, '
                  f'attacker connections {open_sockets}, RSS peak {peak[0]:.1f} MiB', flush=True)
            time.sleep(1)
        print('\n| phase | probes ok | login ms (median / p95 / max) | file list ms (median / p95 / max) '
              '| attacker connections made | server RSS peak MiB |')
        print('|---|---|---|---|---|---|')
        for r in rows:
            print(f'| {r[0]} | {r[2]}/{r[1]} | {r[3]} | {r[4]} | {r[5]} | {r[6]:.1f} |')
        return 0 if all(r[2] == r[1] for r in rows) else 1
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == '__main__':
    sys.exit(main())
