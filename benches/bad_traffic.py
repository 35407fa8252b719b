"""Bad traffic against `splitans serve`: every answer has the right status, the server stays up,
and its memory stays bounded.

    python benches/bad_traffic.py --requests 10000

Starts a server (subprocess; Fashion-MNIST ResNet after ``layer2``, 1 MiB max message) and
sends, from 4 threads, an even mix of: garbage self-contained blobs, truncated fitted-codec
blobs, blobs under an unknown codec id, a blob of another codec under its id, raw activations
of the wrong size or shape, garbage images, oversized messages (1.5 MiB), garbage codec uploads,
and streams that the client cancels after the first answer (mid-stream disconnects). It checks
each status against the expected one, measures the server's RSS (``/proc/PID/status``) before and
after, repeats the whole run to see whether memory keeps growing, then checks that good requests
still get right answers and that the health service still says SERVING.
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "python"))


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=10000, help="bad requests per round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--port", type=int, default=50500)
    args = p.parse_args()
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "splitans", "serve", "--model", "splitans.eval.serving:fmnist_resnet", "--split",
           "layer2", "--host", "127.0.0.1", "--port", str(args.port), "--max-message-mb", "1"]
    server = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = server.stdout.readline()
    if "serving" not in line:
        raise SystemExit("server did not start: " + line + server.stdout.read())
    threading.Thread(target=server.stdout.read, daemon=True).start()
    try:
        return run(args, server)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()


def run(args, server) -> int:
    import grpc
    import numpy as np
    import torch
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    import splitans
    from splitans.eval import serving
    from splitans.runtime import EdgeClient, split
    from splitans.runtime.proto import pb2, pb2_grpc

    torch.set_num_threads(1)
    target = f"127.0.0.1:{args.port}"
    model = serving.fmnist_resnet()
    head, tail = split(model, "layer2", model.example_input)
    x = model.example_input
    with torch.no_grad():
        codec = splitans.Codec.fit(head(x), bits=4)
        other = splitans.Codec.fit(head(x), bits=3)
        want = model(x).argmax(1).numpy()
    good = EdgeClient(target, head, codec)
    good.connect()
    stub = pb2_grpc.SplitInferenceStub(grpc.insecure_channel(target))
    stub.PutCodec(pb2.CodecBytes(codec_id=other.id, data=other.to_bytes()))
    with torch.no_grad():
        blob = codec.compress(head(x[:1])[0])
    rng = np.random.default_rng(0)
    S = grpc.StatusCode
    kinds = {
        "garbage splitans blob": (lambda: pb2.InferRequest(encoding=pb2.SPLITANS, payload=rng.bytes(int(rng.integers(1, 4000)))),
                                  S.INVALID_ARGUMENT),
        "truncated codec blob": (lambda: pb2.InferRequest(encoding=pb2.CODEC, codec_id=codec.id,
                                                          payload=blob[: int(rng.integers(0, len(blob)))]), S.INVALID_ARGUMENT),
        "unknown codec id": (lambda: pb2.InferRequest(encoding=pb2.CODEC, codec_id=rng.bytes(32).hex(), payload=blob),
                             S.FAILED_PRECONDITION),
        "blob of another codec": (lambda: pb2.InferRequest(encoding=pb2.CODEC, codec_id=other.id, payload=blob),
                                  S.INVALID_ARGUMENT),
        "raw of the wrong size": (lambda: pb2.InferRequest(encoding=pb2.FLOAT16, shape=[1, 32, 14, 14],
                                                           payload=rng.bytes(int(rng.integers(0, 12000)))), S.INVALID_ARGUMENT),
        "wrong shape": (lambda: pb2.InferRequest(encoding=pb2.FLOAT32, shape=[1, 32, 14, 15], payload=bytes(4 * 32 * 14 * 15)),
                        S.INVALID_ARGUMENT),
        "garbage image": (lambda: pb2.InferRequest(encoding=pb2.IMAGE, payload=b"\xff\xd8\xff" + rng.bytes(500)),
                          S.INVALID_ARGUMENT),
        "oversized message": (lambda: pb2.InferRequest(encoding=pb2.SPLITANS, payload=bytes(3 << 19)), S.RESOURCE_EXHAUSTED),
        "garbage codec upload": (None, S.INVALID_ARGUMENT),
        "disconnect mid-stream": (None, S.CANCELLED),
    }
    names = list(kinds)
    counts = collections.Counter()
    bad = collections.Counter()

    def one(name):
        make, expected = kinds[name]
        try:
            if name == "garbage codec upload":
                stub.PutCodec(pb2.CodecBytes(data=rng.bytes(300)), timeout=30)
                code = S.OK
            elif name == "disconnect mid-stream":
                reqs = [good.encode(x[i % len(x) : i % len(x) + 1], i)[0] for i in range(4)]
                call = stub.InferStream(iter(reqs * 50), timeout=30)
                next(call)
                call.cancel()
                try:
                    next(call)
                    code = S.OK
                except grpc.RpcError as e:
                    code = e.code()
            else:
                stub.Infer(make(), timeout=30)
                code = S.OK
        except grpc.RpcError as e:
            code = e.code()
        counts[name] += 1
        if code != expected:
            bad[(name, code.name)] += 1

    def worker(n, offset):
        for i in range(n):
            one(names[(offset + i) % len(names)])

    print(" ".join(server.args[1:]))
    for _ in range(100):  # warm-up: the allocator's first pages are not a leak
        one(names[_ % len(names)])
    results = []
    for round_ in range(args.rounds):
        before = rss_mb(server.pid)
        t = time.time()
        threads = [threading.Thread(target=worker, args=(args.requests // 4, k)) for k in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        after = rss_mb(server.pid)
        results.append((before, after))
        print(f"round {round_ + 1}: {args.requests:,} bad requests in {time.time() - t:.1f} s; server RSS "
              f"{before:.1f} -> {after:.1f} MiB ({after - before:+.1f}); server alive: {server.poll() is None}", flush=True)
    print("per kind (all rounds): " + ", ".join(f"{k} {counts[k]:,}" for k in names))
    print("unexpected statuses: " + (", ".join(f"{k} -> {c}: {n}" for (k, c), n in bad.items()) or "none"))
    ok = [int(r.top_k_index[0, 0]) for r in good.infer_many([x[i : i + 1] for i in range(len(x))])]
    right = sum(int(a == b) for a, b in zip(ok, want))
    status = health_pb2_grpc.HealthStub(grpc.insecure_channel(target)).Check(
        health_pb2.HealthCheckRequest(service="splitans.runtime.v1.SplitInference")).status
    print(f"after: {right}/{len(x)} good requests answered with the local model's class; health "
          f"{health_pb2.HealthCheckResponse.ServingStatus.Name(status)}")
    return 0 if not bad and right == len(x) and server.poll() is None else 1


if __name__ == "__main__":
    sys.exit(main())
