"""Bad traffic against `splitans serve`: every answer has the right status, a good client is
served throughout, the server stays up, and its memory stays bounded.

    python benches/bad_traffic.py --requests 10000
    python benches/bad_traffic.py --requests 10000 --tls --model PKG.MODULE:FACTORY --split POINT

Starts a server (subprocess; the Fashion-MNIST ResNet after ``layer2`` unless --model/--split say
otherwise, 1 MiB max message, bearer tokens for two clients, alice and bob, from a token file;
with --tls, a certificate made here) and sends, from 4 threads, an even mix of: calls without a
token and with a wrong one (every method), garbage self-contained blobs, truncated fitted-codec
blobs, blobs under an unknown codec id or handle, alice's codec used by bob (by id and by
handle), a blob of another codec under its id, raw activations of the wrong size or shape,
garbage images, oversized messages (1.5 MiB), messages that are not protobuf, garbage codec
uploads, and streams that the client cancels after the first answer (mid-stream disconnects).
Meanwhile a good client (alice) sends one request after another and checks every answer against
local inference. It checks each status against the expected one, measures the server's RSS
(``/proc/PID/status``) before and after each round, repeats the whole run to see whether memory
keeps growing, and checks that the health service still says SERVING.
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
    p.add_argument("--tls", action="store_true", help="serve over TLS (a certificate made here)")
    p.add_argument("--model", default="splitans.eval.serving:fmnist_resnet", help="PKG.MODULE:FACTORY")
    p.add_argument("--split", default="layer2")
    args = p.parse_args()
    import secrets
    import tempfile

    folder = tempfile.mkdtemp(prefix="bad_traffic_")
    tokens = {"alice": secrets.token_urlsafe(24), "bob": secrets.token_urlsafe(24)}
    with open(os.path.join(folder, "tokens"), "w") as f:
        f.write("".join(f"{k} {v}\n" for k, v in tokens.items()))
    extra = ["--token-file", os.path.join(folder, "tokens")]
    ca = None
    if args.tls:
        ca, cert, key = make_certificate(folder)
        extra += ["--tls-cert", cert, "--tls-key", key]
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "splitans", "serve", "--model", args.model, "--split", args.split, "--host",
           "127.0.0.1", "--port", str(args.port), "--max-message-mb", "1", *extra]
    server = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while True:
        line = server.stdout.readline()
        if not line or line.startswith("serving "):  # the ready line (progress lines name the model)
            break
    if not line.startswith("serving "):
        raise SystemExit("server did not start: " + line + server.stdout.read())
    print(line.strip())
    threading.Thread(target=server.stdout.read, daemon=True).start()
    try:
        return run(args, server, tokens, ca)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()


def make_certificate(folder: str):
    """(CA PEM bytes, certificate path, key path) for 127.0.0.1, made with `cryptography`."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bad_traffic CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False).sign(ca_key, hashes.SHA256()))
    paths = (os.path.join(folder, "server.pem"), os.path.join(folder, "server.key"))
    with open(paths[0], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return ca.public_bytes(serialization.Encoding.PEM), paths[0], paths[1]


def run(args, server, tokens, ca) -> int:
    import grpc
    import numpy as np
    import torch
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    import splitans
    from splitans.runtime import EdgeClient, split
    from splitans.runtime.proto import SERVICE_NAME, pb2, pb2_grpc
    from splitans.runtime.registry import handle_of
    from splitans.runtime.service import load_model

    torch.set_num_threads(1)
    target = f"127.0.0.1:{args.port}"

    def channel():
        return grpc.secure_channel(target, grpc.ssl_channel_credentials(ca)) if ca else grpc.insecure_channel(target)

    model = load_model(args.model).model
    x = model.example_input
    head, tail = split(model, args.split, x)
    with torch.no_grad():
        acts = head(x)
        codec = splitans.Codec.fit(acts, bits=4)
        other = splitans.Codec.fit(acts, bits=3)
        want = model(x).argmax(1).numpy()
    tls = dict(root_certs=ca) if ca else {}
    good = EdgeClient(target, head, codec, token=tokens["alice"], **tls)
    good.connect()
    alice = (("authorization", f"Bearer {tokens['alice']}"),)
    bob = (("authorization", f"Bearer {tokens['bob']}"),)
    wrong = (("authorization", "Bearer " + "x" * 32),)
    ch = channel()
    stub = pb2_grpc.SplitInferenceStub(ch)
    stub.PutCodec(pb2.CodecBytes(codec_id=other.id, data=other.to_bytes()), metadata=alice)
    with torch.no_grad():
        blob = codec.compress(head(x[:1])[0])
    act_bytes = int(np.prod(acts.shape[1:]))
    shape = [1, *acts.shape[1:]]
    rng = np.random.default_rng(0)
    S = grpc.StatusCode
    raw = {m: ch.unary_unary(f"/{SERVICE_NAME}/{m}") for m in ("Infer", "Info", "PutCodec")}

    def infer(req, md=alice):
        return lambda: stub.Infer(req, timeout=30, metadata=md)

    # Calls without a token, over every method in turn.
    methods = [lambda: stub.Info(pb2.InfoRequest(), timeout=30),
               lambda: stub.Infer(pb2.InferRequest(codec_handle=handle_of(codec.id), payload=blob), timeout=30),
               lambda: stub.GetCodec(pb2.GetCodecRequest(), timeout=30),
               lambda: stub.PutCodec(pb2.CodecBytes(data=codec.to_bytes()), timeout=30),
               lambda: list(stub.InferStream(iter([pb2.InferRequest()]), timeout=30))]
    kinds = {
        "no token": (lambda: methods[int(rng.integers(0, len(methods)))](), S.UNAUTHENTICATED),
        "wrong token": (infer(pb2.InferRequest(codec_handle=handle_of(codec.id), payload=blob), wrong), S.UNAUTHENTICATED),
        "wrong token, PutCodec": (lambda: stub.PutCodec(pb2.CodecBytes(data=codec.to_bytes()), timeout=30, metadata=wrong),
                                  S.UNAUTHENTICATED),
        "garbage splitans blob": (infer(pb2.InferRequest(encoding=pb2.SPLITANS, payload=rng.bytes(int(rng.integers(1, 4000))))),
                                  S.INVALID_ARGUMENT),
        "truncated codec blob": (lambda: stub.Infer(pb2.InferRequest(codec_handle=handle_of(codec.id),
                                                                     payload=blob[: int(rng.integers(0, len(blob)))]),
                                                    timeout=30, metadata=alice), S.INVALID_ARGUMENT),
        "unknown codec id": (lambda: stub.Infer(pb2.InferRequest(encoding=pb2.CODEC, codec_id=rng.bytes(32).hex(),
                                                                 payload=blob), timeout=30, metadata=alice),
                             S.FAILED_PRECONDITION),
        "unknown codec handle": (lambda: stub.Infer(pb2.InferRequest(codec_handle=int(rng.integers(0, 2**63)), payload=blob),
                                                    timeout=30, metadata=alice), S.FAILED_PRECONDITION),
        "alice's codec used by bob": (lambda: stub.Infer(pb2.InferRequest(codec_handle=handle_of(codec.id), payload=blob)
                                                         if rng.integers(0, 2) else
                                                         pb2.InferRequest(encoding=pb2.CODEC, codec_id=codec.id, payload=blob),
                                                         timeout=30, metadata=bob), S.FAILED_PRECONDITION),
        "blob of another codec": (infer(pb2.InferRequest(encoding=pb2.CODEC, codec_id=other.id, payload=blob)),
                                  S.INVALID_ARGUMENT),
        "raw of the wrong size": (lambda: stub.Infer(pb2.InferRequest(encoding=pb2.FLOAT16, shape=shape,
                                                                      payload=rng.bytes(int(rng.integers(0, 2 * act_bytes - 1)))),
                                                     timeout=30, metadata=alice), S.INVALID_ARGUMENT),
        "wrong shape": (infer(pb2.InferRequest(encoding=pb2.FLOAT32, shape=[1, *shape[1:-1], shape[-1] + 1],
                                               payload=bytes(4 * act_bytes // shape[-1] * (shape[-1] + 1)))),
                        S.INVALID_ARGUMENT),
        "garbage image": (infer(pb2.InferRequest(encoding=pb2.IMAGE, payload=b"\xff\xd8\xff" + rng.bytes(500))),
                          S.INVALID_ARGUMENT),
        "oversized message": (infer(pb2.InferRequest(encoding=pb2.SPLITANS, payload=bytes(3 << 19))), S.RESOURCE_EXHAUSTED),
        "not protobuf": (lambda: raw[["Infer", "Info", "PutCodec"][int(rng.integers(0, 3))]](
            b"\xff" + rng.bytes(int(rng.integers(0, 64))), timeout=30, metadata=alice), S.INVALID_ARGUMENT),
        "garbage codec upload": (lambda: stub.PutCodec(pb2.CodecBytes(data=rng.bytes(300)), timeout=30, metadata=alice),
                                 S.INVALID_ARGUMENT),
        "disconnect mid-stream": (None, S.CANCELLED),
    }
    names = list(kinds)
    counts = collections.Counter()
    bad = collections.Counter()
    said = {}  # the first message of each unexpected status
    lock = threading.Lock()

    def one(name):
        make, expected = kinds[name]
        message = ""
        try:
            if name == "disconnect mid-stream":
                reqs = [good.encode(x[i % len(x) : i % len(x) + 1], i)[0] for i in range(4)]
                for i, r in enumerate(reqs):
                    r.seq = i + 1
                call = stub.InferStream(iter(reqs * 50), timeout=30, metadata=alice)
                next(call)
                call.cancel()
                try:
                    next(call)
                    code = S.OK
                except grpc.RpcError as e:
                    code = e.code()
            else:
                make()
                code = S.OK
        except grpc.RpcError as e:
            code = e.code()
            message = e.details()
        with lock:
            counts[name] += 1
            if code != expected:
                bad[(name, code.name)] += 1
                said.setdefault(code.name, message)

    def worker(n, offset):
        for i in range(n):
            one(names[(offset + i) % len(names)])

    # The good client, throughout.
    stop = threading.Event()
    served = collections.Counter()

    def good_client():
        i = 0
        while not stop.is_set():
            j = i % len(x)
            try:
                r = good.infer(x[j : j + 1])
                served["right" if int(r.top_k_index[0, 0]) == want[j] else "wrong"] += 1
            except Exception as e:  # counted, and shown
                served[f"error {type(e).__name__}: {str(e)[:80]}"] += 1
            i += 1

    print(" ".join(server.args[1:]))
    for _ in range(100):  # warm-up: the allocator's first pages are not a leak
        one(names[_ % len(names)])
    counts.clear()
    bad.clear()
    results = []
    goodie = threading.Thread(target=good_client)
    goodie.start()
    for round_ in range(args.rounds):
        before = rss_mb(server.pid)
        t = time.time()
        threads = [threading.Thread(target=worker, args=(args.requests // 4, k * 7)) for k in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        after = rss_mb(server.pid)
        results.append((before, after))
        print(f"round {round_ + 1}: {args.requests:,} bad requests in {time.time() - t:.1f} s; server RSS "
              f"{before:.1f} -> {after:.1f} MiB ({after - before:+.1f}); server alive: {server.poll() is None}; "
              f"good client so far: {dict(served)}", flush=True)
    stop.set()
    goodie.join()
    print("\n| kind | sent | expected status | as expected |\n|---|---:|---|---:|")
    for k in names:
        miss = sum(n for (kind, _), n in bad.items() if kind == k)
        print(f"| {k} | {counts[k]:,} | {kinds[k][1].name} | {counts[k] - miss:,} |")
    print("\nunexpected statuses: " + (", ".join(f"{k} -> {c}: {n}" for (k, c), n in bad.items()) or "none"))
    for code, message in said.items():
        print(f"  {code}: {message}")
    status = health_pb2_grpc.HealthStub(channel()).Check(
        health_pb2.HealthCheckRequest(service=SERVICE_NAME)).status
    print(f"good client during the rounds: {served['right']:,} answers, all the local model's class: "
          f"{set(served) == {'right'}} ({dict(served)}); health {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}")
    return 0 if not bad and set(served) == {"right"} and server.poll() is None else 1


if __name__ == "__main__":
    sys.exit(main())
