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


def _setup(bits: int):
    import torch

    import splitans
    from splitans.eval import fmnist, serving
    from splitans.runtime import split

    torch.set_num_threads(1)
    model = serving.fmnist_resnet()
    head, tail = split(model, POINT, model.example_input)
    calib = fmnist.load_data("calibration")[0][:256]
    with torch.no_grad():
        codec = splitans.Codec.fit(head(calib), bits=bits)
    return model, head, tail, codec


def client(k: int, target: str, seconds: float, bits: int, stream: bool, out, ready, go):
    import torch

    from splitans.eval import fmnist
    from splitans.runtime import EdgeClient

    model, head, tail, codec = _setup(bits)
    x, _ = fmnist.load_data("test")
    c = EdgeClient(target, head, codec, retries=10, backoff=0.05, timeout=30)
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
                rec.append((time.time(), r.timing.get("total_ms", 0.0), ok, r.replica))
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
            rec.append((time.time(), r.timing["total_ms"], ok, r.replica))
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
    args = p.parse_args()
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "splitans", "serve", "--model", "splitans.eval.serving:fmnist_resnet", "--split", POINT,
           "--host", "127.0.0.1", "--port", str(args.port), "--max-delay-ms", str(args.max_delay_ms)] + (["--ray", "--replicas", str(args.replicas)] if args.ray else [])
    server = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while True:
        line = server.stdout.readline()
        if not line or "serving" in line:
            break
    if "serving" not in line:
        raise SystemExit("server did not start: " + line)
    import threading

    threading.Thread(target=server.stdout.read, daemon=True).start()
    try:
        return run(args, server)
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(60)
            except subprocess.TimeoutExpired:
                server.kill()


def run(args, server) -> int:
    cmd = server.args
    target = f"127.0.0.1:{args.port}"
    print(" ".join(cmd[1:]), flush=True)
    print(f"{args.clients} client processes x {args.seconds:g} s, load average {os.getloadavg()[0]:.2f}", flush=True)
    ctx = mp.get_context("spawn")
    out, ready, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=client, args=(k, target, args.seconds, args.bits, k % 2 == 1, out, ready, go))
             for k in range(args.clients)]
    for pr in procs:
        pr.start()
    for _ in procs:  # every client has loaded its model and agreed on the codec: start together
        ready.get(timeout=600)
    victim = None
    if args.kill_at is not None:  # find the replicas now, so that the kill comes on time
        from splitans.eval import serving
        from splitans.runtime import EdgeClient, split

        m = serving.fmnist_resnet()
        probe = EdgeClient(target, split(m, POINT, m.example_input).head, strategy="float16")
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
    try:
        results = [out.get(timeout=args.seconds + 300) for _ in procs]
    finally:
        for pr in procs:
            pr.join(5)
            if pr.is_alive():
                pr.kill()
    wall = time.time() - t0
    rss1 = rss_kb(server.pid)
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
    return 0 if lost == 0 and wrong == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
