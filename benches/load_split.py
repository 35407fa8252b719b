"""Load test of `splitans serve`: N concurrent edge clients for T seconds, every answer checked.

    python benches/load_split.py --clients 8 --seconds 60
    python benches/load_split.py --ray --replicas 2 --clients 4 --seconds 45 --kill-at 15

The server runs in a subprocess (`splitans serve`, or `splitans serve --ray --replicas N` with
Ray started embedded); each client is its own process with its own `EdgeClient`, running the
Fashion-MNIST ResNet's head up to ``layer2`` on test images and sending a fitted codec's blobs
(half the clients one unary call per image, half over streams of 32 images). Each answer is
compared with local inference on the same input — the same blob decoded here and the tail run
here: the top-1 class must match and the top-5 values agree within 1e-3 — and every request
must be answered: a request that ends in an error after the client's retries is lost.

``--kill-at S`` (with ``--ray``): S seconds in, SIGKILL one replica process (found from the
answers' replica field); the report shows the retried requests and the latency around the kill.

``--restart-at S``: S seconds in, SIGTERM the server (it drains and exits), then start a new one
on the same port; the clients keep their defaults (`EdgeClient(target, head, codec)`), so the
report counts what those defaults lose across a restart.

``--model PKG.MODULE:FACTORY --split POINT``: another model; its clients send the factory's
example inputs (the codec is fitted on them too) instead of Fashion-MNIST images.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "python"))
POINT = "layer2"


DEFAULT_MODEL = "splitans.eval.serving:fmnist_resnet"


def _setup(model_spec: str, point: str, bits: int):
    """(model, head, tail, codec, test inputs)."""
    import torch

    import splitans
    from splitans.runtime import split
    from splitans.runtime.service import load_model

    torch.set_num_threads(1)
    model = load_model(model_spec).model
    example = model.example_input
    head, tail = split(model, point, example)
    if model_spec == DEFAULT_MODEL:
        from splitans.eval import fmnist

        calib, x = fmnist.load_data("calibration")[0][:256], fmnist.load_data("test")[0]
    else:  # a model of the user's: its own example inputs, for the codec and as the test inputs
        calib = x = example
    with torch.no_grad():
        codec = splitans.Codec.fit(head(calib), bits=bits)
    return model, head, tail, codec, x


def client(k: int, target: str, seconds: float, model_spec: str, point: str, bits: int, stream: bool, out, ready, go):
    import torch

    from splitans.runtime import EdgeClient

    model, head, tail, codec, x = _setup(model_spec, point, bits)
    c = EdgeClient(target, head, codec)  # the client's defaults: what a user gets
    c.connect()
    ready.put(k)
    go.wait()
    rec = []  # (end time, latency ms, ok, replica)
    lost = wrong = 0
    i = k * 1000
    end = time.time() + seconds

    def check(r, req):
        with torch.no_grad():
            want = tail(torch.from_numpy(codec.decompress(req.payload))[None]).numpy()[0]
        top = np.argsort(-want, kind="stable")[:5]
        return r.error is None and r.top_k_index[0, 0] == top[0] and np.allclose(r.top_k_value[0], want[top], atol=1e-3)

    while time.time() < end:
        if stream:
            batch = [(j % len(x), x[j % len(x) : j % len(x) + 1]) for j in range(i, i + 32)]
            i += 32
            try:
                got = list(c.stream(xi for _, xi in batch))
            except Exception as e:  # every request of the stream is lost
                lost += len(batch)
                print(f"client {k}: stream failed: {e}", flush=True)
                continue
            seen = set()
            for r in got:
                j = batch[r.index][0]
                seen.add(r.index)
                with torch.no_grad():  # the same blob again (head and codec are deterministic)
                    blob = codec.compress(head(x[j : j + 1])[0])
                ok = check(r, SimpleNamespace(payload=blob))
                wrong += not ok
                rec.append((time.time(), r.timing.get("total_ms", 0.0), ok, r.replica, f"client {k} stream"))
            lost += len(batch) - len(seen)
        else:
            j = i % len(x)
            i += 1
            req, head_ms, enc_ms = c.encode(x[j : j + 1], j)
            try:
                r = c.send(req, j, head_ms, enc_ms)
            except Exception as e:
                lost += 1
                print(f"client {k}: request lost: {e}", flush=True)
                continue
            ok = check(r, req)
            wrong += not ok
            rec.append((time.time(), r.timing["total_ms"], ok, r.replica, f"client {k} unary"))
    out.put(dict(k=k, rec=rec, lost=lost, wrong=wrong, retried=c.retried, uploads=c.uploads))


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--bits", type=int, default=4)
    p.add_argument("--port", type=int, default=50400)
    p.add_argument("--ray", action="store_true")
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--kill-at", type=float, default=None, help="with --ray: SIGKILL a replica this many seconds in")
    p.add_argument("--max-delay-ms", type=float, default=2.0, help="the server's batching window")
    p.add_argument("--restart-at", type=float, default=None,
                   help="SIGTERM the server this many seconds in, then start a new one on the same port")
    p.add_argument("--model", default=DEFAULT_MODEL, help="PKG.MODULE:FACTORY (default: the Fashion-MNIST ResNet)")
    p.add_argument("--split", default=POINT, help=f"the split point (default {POINT})")
    args = p.parse_args()
    cmd = [sys.executable, "-m", "splitans", "serve", "--model", args.model, "--split", args.split,
           "--host", "127.0.0.1", "--port", str(args.port), "--max-delay-ms", str(args.max_delay_ms)] + (["--ray", "--replicas", str(args.replicas)] if args.ray else [])
    servers = [start(cmd)]
    try:
        return run(args, servers)
    finally:
        server = servers[-1]
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(60)
            except subprocess.TimeoutExpired:
                server.kill()


def start(cmd) -> subprocess.Popen:
    """`splitans serve` in a subprocess, returned once it says it serves."""
    import threading

    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    server = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while True:
        line = server.stdout.readline()
        if not line or line.startswith("serving "):  # the ready line (progress lines name the model)
            break
    if not line.startswith("serving "):
        raise SystemExit("server did not start: " + line)
    threading.Thread(target=server.stdout.read, daemon=True).start()
    return server


def run(args, servers) -> int:
    server = servers[0]
    cmd = server.args
    target = f"127.0.0.1:{args.port}"
    print(" ".join(cmd[1:]), flush=True)
    print(f"{args.clients} client processes x {args.seconds:g} s, load average {os.getloadavg()[0]:.2f}", flush=True)
    ctx = mp.get_context("spawn")
    out, ready, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=client, args=(k, target, args.seconds, args.model, args.split, args.bits, k % 2 == 1,
                                              out, ready, go))
             for k in range(args.clients)]
    for pr in procs:
        pr.start()
    for _ in procs:  # every client has loaded its model and agreed on the codec: start together
        ready.get(timeout=600)
    victim = None
    if args.kill_at is not None:  # find the replicas now, so that the kill comes on time
        from splitans.runtime import EdgeClient, split
        from splitans.runtime.service import load_model

        m = load_model(args.model).model
        probe = EdgeClient(target, split(m, args.split, m.example_input).head, strategy="float16")
        seen = {probe.infer(m.example_input[:1]).replica for _ in range(30)}
        victim = sorted(seen)[0]
        print(f"replicas: {', '.join(sorted(seen))}", flush=True)
    rss0 = rss_kb(server.pid)
    t0 = time.time()
    go.set()
    killed = None
    if victim is not None:
        time.sleep(args.kill_at)
        os.kill(int(victim.rsplit(":", 1)[1]), signal.SIGKILL)
        killed = (time.time(), victim)
        print(f"t={killed[0] - t0:.1f} s: SIGKILL replica {victim}", flush=True)
    restarted = None
    if args.restart_at is not None:
        time.sleep(args.restart_at)
        t_term = time.time()
        server.send_signal(signal.SIGTERM)
        server.wait(120)
        t_exit = time.time()
        servers.append(start(cmd))
        t_up = time.time()
        restarted = (t_term, t_exit, t_up)
        print(f"t={t_term - t0:.1f} s: SIGTERM; the server exited {t_exit - t_term:.1f} s later (status "
              f"{server.returncode}); the new one served {t_up - t_term:.1f} s after the SIGTERM", flush=True)
    try:
        results = [out.get(timeout=args.seconds + 300) for _ in procs]
    finally:
        for pr in procs:
            pr.join(5)
            if pr.is_alive():
                pr.kill()
    wall = time.time() - t0
    rss1 = rss_kb(servers[-1].pid)
    rec = sorted((r for res in results for r in res["rec"]), key=lambda r: r[0])
    lat = np.array([r[1] for r in rec])
    n = len(rec)
    lost = sum(r["lost"] for r in results)
    wrong = sum(r["wrong"] for r in results)
    retried = sum(r["retried"] for r in results)
    span = rec[-1][0] - rec[0][0] if rec else 0
    print(f"\nanswered {n:,} requests in {span:.1f} s: {n / span:,.1f} requests/s; latency p50 {np.percentile(lat, 50):.1f} ms, "
          f"p90 {np.percentile(lat, 90):.1f}, p99 {np.percentile(lat, 99):.1f}, max {lat.max():.1f} ms")
    print(f"lost {lost}, wrong {wrong}, retried {retried}; codec uploads {sum(r['uploads'] for r in results)}; "
          f"replicas answering: {len({r[3] for r in rec})}; server RSS {rss0 / 1024:.0f} -> {rss1 / 1024:.0f} MiB; "
          f"wall {wall:.1f} s; load average {os.getloadavg()[0]:.2f}")
    if killed:
        kt = killed[0]
        for lo, hi, what in ((-10, -1, "before the kill (-10..-1 s)"), (-1, 2, "around it (-1..+2 s)"),
                             (2, 10, "after it (+2..+10 s)")):
            sel = np.array([r[1] for r in rec if kt + lo <= r[0] < kt + hi])
            if len(sel):
                print(f"  {what}: {len(sel)} requests, p50 {np.percentile(sel, 50):.1f} ms, "
                      f"p99 {np.percentile(sel, 99):.1f} ms, max {sel.max():.1f} ms")
        before = {r[3] for r in rec if r[0] < kt}
        after = {r[3] for r in rec if r[0] > kt + 2}
        print(f"  replicas answering after the kill: {', '.join(sorted(after))}")
        for new in sorted({r[3] for r in rec if r[0] > kt} - before):
            first = min(r[0] for r in rec if r[3] == new)
            print(f"  replacement replica {new} (started by Ray Serve) answered first {first - kt:.1f} s after the kill")
    slow = sorted(rec, key=lambda r: -r[1])[:3]
    print("  slowest: " + "; ".join(f"{r[4]} {r[1]:,.0f} ms, answered at t={r[0] - t0:.1f} s" for r in slow))
    if restarted:
        t_term, _, t_up = restarted
        for lo, hi, what in ((t_term - 10, t_term, "before the SIGTERM (10 s)"), (t_term, t_up + 2, "down, and 2 s after"),
                             (t_up + 2, t_up + 12, "after (10 s)")):
            sel = np.array([r[1] for r in rec if lo <= r[0] < hi])
            if len(sel):
                print(f"  {what}: {len(sel)} answers, p50 {np.percentile(sel, 50):.1f} ms, max {sel.max():.1f} ms")
    return 0 if lost == 0 and wrong == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
