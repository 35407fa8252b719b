"""One client holds idle InferStream calls; are the other clients still served? (issue 23, item 2)

    python benches/idle_streams.py --streams 32 --seconds 10

Starts `splitans serve` (a subprocess on 127.0.0.1; the Fashion-MNIST ResNet after ``layer2``
unless --model/--split say otherwise), opens --streams InferStream calls on one channel that
send nothing (the idle client), waits 2 s, then for --seconds lets 4 other clients (each its own
channel) send unary Infer calls back to back and one 8-request stream each second. It prints how
many of the other clients' requests were answered, the statuses of the rest, and what the idle
client's calls got. Requests are raw float32 activations of the shape the server announces, so
the script speaks only the first protocol version and runs against any server. Each client has
a connection of its own (``grpc.use_local_subchannel_pool``), as separate processes would: gRPC
otherwise shares one connection among a process's channels to the same target, and the server
sees one client.
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "python"))


OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, point: str, port: int, extra=()) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "splitans", "serve", "--model", model, "--split", point, "--host", "127.0.0.1",
           "--port", str(port), *extra]
    p = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    if not line.startswith("serving "):
        p.kill()
        raise SystemExit("the server did not start: " + line + p.stdout.read())
    threading.Thread(target=p.stdout.read, daemon=True).start()
    return p


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--streams", type=int, default=32, help="idle InferStream calls the one client holds")
    p.add_argument("--seconds", type=float, default=10.0, help="how long the other clients send meanwhile")
    p.add_argument("--model", default="splitans.eval.serving:fmnist_resnet", help="PKG.MODULE:FACTORY")
    p.add_argument("--split", default="layer2")
    args = p.parse_args()
    import grpc
    import numpy as np

    from splitans.runtime.proto import pb2, pb2_grpc

    port = free_port()
    server = start_server(args.model, args.split, port)
    target = f"127.0.0.1:{port}"
    try:
        info = pb2_grpc.SplitInferenceStub(grpc.insecure_channel(target)).Info(pb2.InfoRequest(), timeout=30)
        shape = [1, *info.activation_shape]
        payload = np.zeros(shape, np.float32).tobytes()

        def request(i):
            return pb2.InferRequest(request_id=str(i), encoding=pb2.FLOAT32, shape=shape, payload=payload)

        # The idle client: its calls wait on `release` before sending anything.
        release = threading.Event()

        def idle():
            release.wait()
            return
            yield  # a generator that sends nothing

        hog = grpc.insecure_channel(target, options=OWN_CONNECTION)
        hog_stub = pb2_grpc.SplitInferenceStub(hog)
        calls = [hog_stub.InferStream(idle()) for _ in range(args.streams)]
        time.sleep(2.0)
        refused_early = collections.Counter(c.code().name for c in calls if c.done())
        names = {c.value[0]: c.name for c in grpc.StatusCode}
        said = {}  # one message per status the other clients got
        codes = collections.Counter()
        stream_codes = collections.Counter()
        lock = threading.Lock()
        stop = time.time() + args.seconds

        def unary_client():
            stub = pb2_grpc.SplitInferenceStub(grpc.insecure_channel(target, options=OWN_CONNECTION))
            i = 0
            while time.time() < stop:
                try:
                    stub.Infer(request(i), timeout=10)
                    code = "OK"
                except grpc.RpcError as e:
                    code = e.code().name
                    with lock:
                        said.setdefault(code, e.details())
                    time.sleep(0.05)
                with lock:
                    codes[code] += 1
                i += 1

        def stream_client():
            stub = pb2_grpc.SplitInferenceStub(grpc.insecure_channel(target, options=OWN_CONNECTION))
            while time.time() < stop:
                t = time.time()
                try:
                    got = list(stub.InferStream(iter([request(i) for i in range(8)]), timeout=10))
                    with lock:
                        for r in got:
                            stream_codes["OK" if not r.error_code else names.get(r.error_code, str(r.error_code))] += 1
                        stream_codes["unanswered"] += 8 - len(got)
                except grpc.RpcError as e:
                    with lock:
                        stream_codes[e.code().name] += 8
                        said.setdefault(e.code().name, e.details())
                time.sleep(max(0.0, 1.0 - (time.time() - t)))

        threads = [threading.Thread(target=unary_client) for _ in range(4)] + \
                  [threading.Thread(target=stream_client) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        held = sum(not c.done() for c in calls)
        release.set()
        time.sleep(1.0)
        ended = collections.Counter(c.code().name if c.done() else "still open" for c in calls)
        total, ok = sum(codes.values()), codes["OK"]
        s_total, s_ok = sum(stream_codes.values()), stream_codes["OK"]
        print(" ".join(server.args[1:]))
        print(f"idle client: {args.streams} InferStream calls on one channel; refused within 2 s: "
              f"{dict(refused_early) or 'none'}; still held after {args.seconds:g} s: {held}; "
              f"after release: {dict(ended)}")
        print(f"other clients, unary: {ok:,} of {total:,} answered ({ok / max(total, 1):.1%}); "
              f"statuses {dict(codes)}")
        print(f"other clients, streams: {s_ok:,} of {s_total:,} requests answered ({s_ok / max(s_total, 1):.1%}); "
              f"statuses {dict(stream_codes)}")
        for code, message in said.items():
            print(f"  {code}: {message}")
        hog.close()
        return 0 if ok == total and s_ok == s_total else 1
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())
