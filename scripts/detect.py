#!/usr/bin/env python3
"""Failure detection on real loopback processes: crash to every neighbour's
verdict, and false verdicts under a short SIGSTOP.

    N=10 KILLS=30 PAUSES=30 PAUSE_MS=300 BUSY=2 python3 scripts/detect.py

Starts N nodes of BIN (default target/release/ryx-node) with JSON logs, then
  - KILLS times: SIGKILL a random node and time, from the kill, each of its
    neighbours' "neighbour down" log line naming it as failed (every
    neighbour's verdict: the largest; a neighbour that dropped it first for
    a better link is left out, a kill that some neighbour never dropped is
    counted apart); the node is restarted (a new id) and the run waits for
    the graph to settle again;
  - PAUSES times: SIGSTOP a random node for PAUSE_MS, SIGCONT it, and count
    the neighbours that declared it dead (false verdicts).
BUSY processes spin on the CPU meanwhile (0: an idle machine). Prints the
distribution of the crash figures and the false verdicts. Every process it
starts is ended by pid; every wait has a deadline.
"""
import json, os, random, signal, subprocess, sys, tempfile, time, urllib.request
from datetime import datetime

BIN = os.environ.get("BIN", "target/release/ryx-node")
N = int(os.environ.get("N", "10"))
KILLS = int(os.environ.get("KILLS", "30"))
PAUSES = int(os.environ.get("PAUSES", "30"))
PAUSE_MS = int(os.environ.get("PAUSE_MS", "300"))
BUSY = int(os.environ.get("BUSY", "0"))
SEED = int(os.environ.get("SEED", "1"))
EXTRA = sys.argv[1:]

rng = random.Random(SEED)
# SIGTERM (timeout, kill) still ends the nodes: the `finally` below runs.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
logdir = tempfile.mkdtemp(prefix="ryx-detect-")
procs, logs, ports = {}, {}, {}


def free_port():
    import socket
    # A port free for both UDP and TCP (the node serves HTTP on its port).
    for _ in range(100):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        p = u.getsockname()[1]
        t = socket.socket()
        try:
            t.bind(("127.0.0.1", p))
            return p
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise SystemExit("no free port")


disc = free_port()


def start(i):
    if i not in ports:
        ports[i] = free_port()
    path = os.path.join(logdir, f"node-{i}-{time.time_ns()}.log")
    with open(path, "w") as f:
        procs[i] = subprocess.Popen(
            [BIN, "--port", str(ports[i]), "--discovery-port", str(disc), "--cluster-id", f"detect{disc}",
             "--log-format", "json", *EXTRA],
            stdout=subprocess.DEVNULL, stderr=f)
    logs[i] = path


def status(i, timeout=1.0):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ports[i]}/v1/status", timeout=timeout) as r:
            return json.load(r)
    except Exception:
        return None


def settled(deadline):
    """Until every node has at least min(4, N-1) neighbours, or the deadline."""
    want = min(4, N - 1)
    while time.time() < deadline:
        ss = [status(i) for i in procs]
        if all(s and len(s["neighbors"]) >= want for s in ss):
            return True
        time.sleep(0.2)
    return False


def downs(i, victim, since):
    """Times (epoch s) of node i's "neighbour down" lines naming victim."""
    out = []
    try:
        with open(logs[i]) as f:
            for line in f:
                if '"neighbour down"' not in line or victim not in line:
                    continue
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                fl = e.get("fields", {})
                if fl.get("id") != victim:
                    continue
                ts = datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp()
                if ts >= since:
                    out.append((ts, fl.get("reason")))
    except OSError:
        pass
    return out


def victim():
    """A node at random and its id (None if it does not answer)."""
    v = rng.randrange(N)
    s = status(v)
    return v, s["node_id"] if s else None


def pct(v, q):
    s = sorted(v)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


busy = []
try:
    for i in range(N):
        start(i)
    if not settled(time.time() + 60):
        raise SystemExit("the cluster did not settle in 60 s")
    time.sleep(5)
    for _ in range(BUSY):
        busy.append(subprocess.Popen([sys.executable, "-c", "import time\nt=time.time()+3600\nwhile time.time()<t: pass"]))
    crash, missing, other = [], 0, 0
    for k in range(KILLS):
        v, vid = victim()
        if not vid:
            continue
        # The nodes that list the victim as a neighbour when it dies.
        who = [i for i in procs if i != v and (st := status(i, 0.5)) and vid in [n["node_id"] for n in st["neighbors"]]]
        t0 = time.time()
        procs[v].send_signal(signal.SIGKILL)
        procs[v].wait()
        deadline = t0 + 10
        got, gone = {}, set()
        while time.time() < deadline and len(got) + len(gone) < len(who):
            time.sleep(0.1)
            for i in who:
                if i not in got and i not in gone:
                    d = downs(i, vid, t0)
                    if d and d[0][1] == "Failed":
                        got[i] = d[0][0] - t0
                    elif d:
                        # Dropped first for a better link: not the
                        # detector's verdict; left out of this kill's figure.
                        other += 1
                        gone.add(i)
        if len(got) + len(gone) < len(who):
            missing += 1
            print(f"  never dropped by: {[i for i in who if i not in got and i not in gone]}", flush=True)
        elif got:
            crash.append(max(got.values()))
            print(f"kill {k + 1}: {len(got)}/{len(who)} neighbours, last verdict {max(got.values()) * 1000:.0f} ms, "
                  f"first {min(got.values()) * 1000:.0f} ms", flush=True)
        start(v)
        settled(time.time() + 30)
        time.sleep(2)
    false_v, paused, stops = 0, 0, []
    for k in range(PAUSES):
        v, vid = victim()
        if not vid:
            continue
        t0 = time.time()
        procs[v].send_signal(signal.SIGSTOP)
        time.sleep(PAUSE_MS / 1000)
        procs[v].send_signal(signal.SIGCONT)
        stops.append(time.time() - t0)
        paused += 1
        time.sleep(2)
        at = [t - t0 for i in procs if i != v for t, r in downs(i, vid, t0) if r == "Failed"]
        false_v += len(at)
        when = ", ".join(f"{a * 1000:.0f}" for a in at)
        print(f"pause {k + 1}: {len(at)} neighbours dropped it" + (f" (ms after the stop: {when})" if at else ""), flush=True)
        settled(time.time() + 30)
    print(f"\nlogs in {logdir}")
    print(f"{N} nodes, busy spinners {BUSY}, args {' '.join(EXTRA) or '(defaults)'}")
    if crash:
        ms = [c * 1000 for c in crash]
        print(f"crash -> every neighbour's verdict over {len(ms)} kills: p50 {pct(ms, .5):.0f} ms, "
              f"p90 {pct(ms, .9):.0f} ms, p99 {pct(ms, .99):.0f} ms, max {max(ms):.0f} ms; "
              f"kills with a neighbour that never dropped it (left out): {missing}; "
              f"neighbours that dropped it for a better link first (left out): {other}")
    longest = f" (stopped {min(stops) * 1000:.0f}-{max(stops) * 1000:.0f} ms)" if stops else ""
    print(f"{PAUSE_MS} ms SIGSTOP: {false_v} false verdicts over {paused} pauses{longest}")
finally:
    for b in busy:
        b.kill()
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)
            p.kill()
        p.wait()
