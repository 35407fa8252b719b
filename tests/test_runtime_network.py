"""splitans.runtime on an open network (issue 23): TLS and mutual TLS with certificates made
here, bearer tokens, codecs owned by the client that uploaded them, loopback by default, idle
streams that cannot shut other clients out, a fair queue, retries under a deadline that outlast
a restart, the 8-byte codec handle of protocol version 2 beside version-1 clients, refusals by
reason, and models served without example inputs. Every server is real (gRPC on loopback)."""

import io
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

from strict import need_module

torch = need_module("torch", "pip install '.[test]'", module_level=True)
grpc = need_module("grpc", "pip install '.[test]'", module_level=True)
need_module("grpc_health", "pip install '.[test]'", module_level=True)
need_module("cryptography", "pip install '.[test]'", module_level=True)
from torch import nn  # noqa: E402

import runtime_models  # noqa: E402
import splitans  # noqa: E402
from certs import CA  # noqa: E402
from splitans.runtime import EdgeClient, RemoteError  # noqa: E402
from splitans.runtime.auth import is_loopback, read_tokens  # noqa: E402
from splitans.runtime.proto import SERVICE_NAME, pb2, pb2_grpc  # noqa: E402
from splitans.runtime.registry import handle_of  # noqa: E402
from splitans.runtime.server import InsecureServerWarning, LocalBackend, Policy, Server  # noqa: E402
from splitans.runtime.service import Batcher, Item, LoadedModel, RequestError, TailService, load_model  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))
S = grpc.StatusCode


class _Sleep(nn.Module):
    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def forward(self, x):
        time.sleep(self.seconds)
        return x


def _model(slow=0.0, factory=runtime_models.tiny):
    net = factory()
    if not slow:
        return net
    m = nn.Sequential(net[0], net[1], _Sleep(slow), net[2], net[3]).eval()
    m.example_input = net.example_input
    return m


def _server(*, slow=0.0, factory=runtime_models.tiny, host="localhost", port=0, codecs=(), tls=None, tokens=None,
            max_batch=16, queue_size=64, **policy):
    m = _model(slow, factory)
    loaded = LoadedModel(m, m.example_input, getattr(m, "preprocess", None), "runtime_models:tiny")
    service = TailService(loaded, runtime_models.SPLIT)
    return Server(LocalBackend(service, max_batch=max_batch, queue_size=queue_size), port=port, host=host,
                  policy=Policy(**policy), codecs=codecs, tls=tls, tokens=tokens)


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _head():
    net = runtime_models.tiny()
    return nn.Sequential(net[0], net[1]).eval()


def _codec(seed=2, bits=6):
    with torch.no_grad():
        return splitans.Codec.fit(_head()(runtime_models.inputs(48, seed=seed)).numpy(), bits=bits)


def _want(codec, x):
    """The model's logits for `x` with the activation through `codec`, as the server computes."""
    net = runtime_models.tiny()
    with torch.no_grad():
        a = _head()(x).numpy()
        return net[3](net[2](torch.from_numpy(codec.round_trip(a)))).numpy()


def _refusal(fn):
    """(code, reason, message) of the RpcError `fn` raises."""
    with pytest.raises(grpc.RpcError) as e:
        fn()
    err = RemoteError.of(e.value)
    return err.code, err.reason, err.message


@pytest.fixture(scope="module")
def codec():
    return _codec()


# ------------------------------------------------------------------------------ TLS


def test_tls_server_and_client(codec):
    ca = CA()
    pem = ca.issue("localhost", server=True)
    srv = _server(tls=(pem.cert, pem.key))
    try:
        target = f"localhost:{srv.port}"
        x = runtime_models.inputs(3, seed=4)
        client = EdgeClient(target, _head(), codec, root_certs=ca.pem, return_logits=True, deadline=20)
        for i in range(3):
            np.testing.assert_allclose(client.infer(x[i : i + 1]).logits, _want(codec, x[i : i + 1]), rtol=1e-4, atol=1e-4)
        # The port speaks TLS only: a plaintext client, and one that trusts another CA, get nowhere.
        for other in (EdgeClient(target, strategy="float32", deadline=1.5),
                      EdgeClient(target, strategy="float32", root_certs=CA("another CA").pem, deadline=1.5)):
            with pytest.raises(RemoteError) as e:
                other.connect()
            assert e.value.code == S.UNAVAILABLE
        # The health service answers over TLS too, without a token.
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        with grpc.secure_channel(target, grpc.ssl_channel_credentials(ca.pem)) as ch:
            got = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=10)
            assert got.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        srv.stop(1)


def test_mutual_tls_admits_only_clients_the_ca_signed(codec):
    ca, clients = CA(), CA("clients' CA")
    pem = ca.issue("localhost", server=True)
    srv = _server(tls=(pem.cert, pem.key, clients.pem))
    try:
        target = f"localhost:{srv.port}"
        alice, bob = clients.issue("alice", server=False), clients.issue("bob", server=False)
        mallory = CA("a CA of its own").issue("mallory", server=False)
        for cert in (None, mallory):  # no certificate, or one the clients' CA did not sign
            c = EdgeClient(target, strategy="float32", root_certs=ca.pem, deadline=1.5,
                           client_cert=cert and cert.cert, client_key=cert and cert.key)
            with pytest.raises(RemoteError) as e:
                c.connect()
            assert e.value.code == S.UNAVAILABLE
        a = EdgeClient(target, _head(), codec, root_certs=ca.pem, client_cert=alice.cert, client_key=alice.key)
        x = runtime_models.inputs(1, seed=5)
        assert a.infer(x).top_k_index[0, 0] == _want(codec, x).argmax()
        assert a.uploads == 1  # "auto": a client with a certificate is authenticated, and may upload
        # Identified by its certificate: bob does not see alice's codec.
        b = EdgeClient(target, strategy="float32", root_certs=ca.pem, client_cert=bob.cert, client_key=bob.key)
        assert codec.id not in b.connect().codec_ids
        assert srv.registry.ids("cert:alice") == [codec.id]
    finally:
        srv.stop(1)


# ------------------------------------------------------------------------------ tokens


def test_bearer_tokens_are_checked_before_the_service(codec):
    tokens = {"alice": secrets.token_urlsafe(24), "bob": secrets.token_urlsafe(24)}
    srv = _server(tokens=tokens)
    try:
        target = f"localhost:{srv.port}"
        ch = grpc.insecure_channel(target)
        stub = pb2_grpc.SplitInferenceStub(ch)
        req = pb2.InferRequest(encoding=pb2.FLOAT32, shape=[1, *runtime_models.ACTIVATION],
                               payload=bytes(4 * 256))
        calls = {"Info": lambda md: stub.Info(pb2.InfoRequest(), timeout=5, metadata=md),
                 "Infer": lambda md: stub.Infer(req, timeout=5, metadata=md),
                 "InferStream": lambda md: list(stub.InferStream(iter([req]), timeout=5, metadata=md)),
                 "GetCodec": lambda md: stub.GetCodec(pb2.GetCodecRequest(), timeout=5, metadata=md),
                 "PutCodec": lambda md: stub.PutCodec(pb2.CodecBytes(data=codec.to_bytes()), timeout=5, metadata=md)}
        wrong = secrets.token_urlsafe(24)
        for name, call in calls.items():
            for md, says in ((None, "needs a bearer token"), ((("authorization", f"Bearer {wrong}"),), "not one"),
                             ((("authorization", tokens["alice"]),), "not one")):  # without "Bearer "
                code, _, message = _refusal(lambda: call(md))
                assert code == S.UNAUTHENTICATED and says in message, (name, md, message)
        assert srv.servicer.bad_requests == 0  # refused before the service saw them
        # The health service stays open, for load balancers.
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        got = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert got.status == health_pb2.HealthCheckResponse.SERVING
        # With the token: served. A wrong token is not retried.
        x = runtime_models.inputs(1, seed=6)
        good = EdgeClient(target, _head(), codec, token=tokens["bob"])
        assert good.infer(x).top_k_index[0, 0] == _want(codec, x).argmax()
        bad = EdgeClient(target, _head(), codec, token=wrong)
        t = time.monotonic()
        with pytest.raises(RemoteError) as e:
            bad.connect()
        assert e.value.code == S.UNAUTHENTICATED and bad.retried == 0 and time.monotonic() - t < 5
    finally:
        srv.stop(1)


def test_token_files(tmp_path, monkeypatch):
    from splitans.runtime.auth import read_token, token_from_env

    t1, t2 = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    (tmp_path / "tokens").write_text(f"# the edge fleet\nalice {t1}\n\n{t2}\n")
    assert read_tokens(tmp_path / "tokens") == {"alice": t1, "line4": t2}
    (tmp_path / "short").write_text("abc\n")
    with pytest.raises(ValueError, match="at least 16"):
        read_tokens(tmp_path / "short")
    (tmp_path / "one").write_text(f"{t1}\n")
    assert read_token(tmp_path / "one") == t1
    with pytest.raises(ValueError, match="one token"):
        read_token(tmp_path / "tokens")
    monkeypatch.setenv("SPLITANS_TEST_TOKEN", t2)
    assert token_from_env("SPLITANS_TEST_TOKEN") == t2
    monkeypatch.delenv("SPLITANS_TEST_TOKEN")
    with pytest.raises(ValueError, match="SPLITANS_TEST_TOKEN"):
        token_from_env("SPLITANS_TEST_TOKEN")


def test_cli_serve_and_edge_over_tls_with_a_token(tmp_path):
    ca = CA()
    pem = ca.issue("localhost", server=True)
    (tmp_path / "server.pem").write_bytes(pem.cert)
    (tmp_path / "server.key").write_bytes(pem.key)
    (tmp_path / "ca.pem").write_bytes(ca.pem)
    token = secrets.token_urlsafe(24)
    (tmp_path / "tokens").write_text(f"edge1 {token}\n")
    (tmp_path / "token").write_text(f"{token}\n")
    port = _free_port()
    srv = _serve_process(port, "--tls-cert", str(tmp_path / "server.pem"), "--tls-key", str(tmp_path / "server.key"),
                         "--token-file", str(tmp_path / "tokens"))
    try:
        parent = os.path.dirname(os.path.dirname(os.path.abspath(splitans.__file__)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, parent, os.environ.get("PYTHONPATH", "")]))
        edge = [sys.executable, "-m", "splitans", "edge", "--target", f"localhost:{port}", "--model",
                "runtime_models:tiny", "--split", runtime_models.SPLIT, "--inputs", "examples", "--fit-codec", "4",
                "--tls-ca", str(tmp_path / "ca.pem"), "--deadline", "5"]
        out = subprocess.run(edge + ["--token-file", str(tmp_path / "token"), "--check"], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and "4 requests" in out.stdout and "0 differ" in out.stdout, out.stdout + out.stderr
        assert "(uploaded)" in out.stdout  # a client with a token may upload
        out = subprocess.run(edge, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 3 and "UNAUTHENTICATED" in out.stderr, out.stdout + out.stderr
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.communicate(timeout=30)


@pytest.mark.parametrize("served", ["runtime_models:tiny", "runtime_models:tiny_retrained"])
def test_edge_check_compares_with_the_same_encoding_done_locally(tmp_path, served):
    """--check judges the server against the head, the same encoding and the tail run here: a
    lossy codec's own changes of the top-1 are counted apart (not "differ"), and a server
    answering with another tail differs."""
    x = runtime_models.inputs(64, seed=3).numpy()
    np.save(tmp_path / "x.npy", x)
    codec = _codec(bits=2)
    (tmp_path / "c.codec").write_bytes(codec.to_bytes())
    local = _want(codec, torch.from_numpy(x)).argmax(1)
    with torch.no_grad():
        whole = runtime_models.tiny()(torch.from_numpy(x)).numpy().argmax(1)
        other = runtime_models.tiny_retrained()
        served_top = other[3](other[2](torch.from_numpy(codec.round_trip(_head()(torch.from_numpy(x)).numpy()))))
    lossy, wrong = int((local != whole).sum()), int((served_top.numpy().argmax(1) != local).sum())
    assert lossy > 0 and wrong > 0  # the cases below tell the counts apart
    port = _free_port()
    srv = _serve_process(port, model=served)
    try:
        parent = os.path.dirname(os.path.dirname(os.path.abspath(splitans.__file__)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, parent, os.environ.get("PYTHONPATH", "")]))
        out = subprocess.run([sys.executable, "-m", "splitans", "edge", "--target", f"localhost:{port}", "--model",
                              "runtime_models:tiny", "--split", runtime_models.SPLIT, "--inputs",
                              str(tmp_path / "x.npy"), "--codec", str(tmp_path / "c.codec"), "--check"], env=env,
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.communicate(timeout=60)
    summary = out.stdout.splitlines()[-1]
    differ = 0 if served.endswith(":tiny") else wrong
    assert out.returncode == (1 if differ else 0), out.stdout + out.stderr
    assert (f"; {differ} differ from local inference through the same encoding; {lossy} of the local answers differ "
            "from the uncompressed model's") in summary, summary
    assert sum(line.endswith("DIFFERS") or ", DIFFERS)" in line for line in out.stdout.splitlines()) == differ


# ------------------------------------------------------------------------------ codec ownership


def test_a_client_cannot_see_use_or_evict_another_clients_codecs():
    tokens = {name: secrets.token_urlsafe(24) for name in ("alice", "bob", "carol")}
    codecs = [_codec(seed=10 + i, bits=3 + i % 4) for i in range(6)]
    a_codec, b_codecs, c_codec = codecs[0], codecs[1:5], codecs[5]
    srv = _server(tokens=tokens, codecs_per_client=2, max_codecs=3)
    try:
        target = f"localhost:{srv.port}"
        x = runtime_models.inputs(1, seed=8)
        alice = EdgeClient(target, _head(), a_codec, token=tokens["alice"], return_logits=True)
        np.testing.assert_allclose(alice.infer(x).logits, _want(a_codec, x), rtol=1e-4, atol=1e-4)
        md = (("authorization", f"Bearer {tokens['bob']}"),)
        stub = pb2_grpc.SplitInferenceStub(grpc.insecure_channel(target))
        assert a_codec.id not in stub.Info(pb2.InfoRequest(), metadata=md).codec_ids
        code, reason, _ = _refusal(lambda: stub.GetCodec(pb2.GetCodecRequest(codec_id=a_codec.id), metadata=md))
        assert (code, reason) == (S.NOT_FOUND, "CODEC_UNKNOWN")
        blob = a_codec.compress(_head()(x)[0].detach().numpy())
        for req in (pb2.InferRequest(encoding=pb2.CODEC, codec_id=a_codec.id, payload=blob),
                    pb2.InferRequest(codec_handle=handle_of(a_codec.id), payload=blob)):
            code, reason, _ = _refusal(lambda: stub.Infer(req, metadata=md))
            assert (code, reason) == (S.FAILED_PRECONDITION, "CODEC_UNKNOWN")
        # Bob uploads four: he holds two at most, making room among his own.
        for c in b_codecs:
            stub.PutCodec(pb2.CodecBytes(codec_id=c.id, data=c.to_bytes()), metadata=md)
        assert srv.registry.ids("token:bob") == sorted(c.id for c in b_codecs[2:])
        assert srv.registry.ids("token:alice") == [a_codec.id] and srv.registry.uploaded() == 3
        # Carol finds the server full of others' codecs: refused, and nobody's is evicted.
        carol = EdgeClient(target, _head(), c_codec, token=tokens["carol"], deadline=3)
        with pytest.raises(RemoteError) as e:
            carol.connect()
        assert (e.value.code, e.value.reason) == (S.RESOURCE_EXHAUSTED, "CODEC_QUOTA")
        r = alice.infer(x)
        assert alice.uploads == 1 and r.top_k_index[0, 0] == _want(a_codec, x).argmax()
        # The same bytes uploaded by bob: shared; bob dropping it leaves alice's.
        stub.PutCodec(pb2.CodecBytes(codec_id=a_codec.id, data=a_codec.to_bytes()), metadata=md)
        assert a_codec.id in stub.Info(pb2.InfoRequest(), metadata=md).codec_ids
        for c in b_codecs[:2]:
            stub.PutCodec(pb2.CodecBytes(codec_id=c.id, data=c.to_bytes()), metadata=md)
        assert a_codec.id not in srv.registry.ids("token:bob") and a_codec.id in srv.registry.ids("token:alice")
        alice.infer(x)
        assert alice.uploads == 1
    finally:
        srv.stop(1)


def test_codec_uploads_only_where_allowed(codec):
    data = pb2.CodecBytes(codec_id=codec.id, data=codec.to_bytes())
    for mode, want in (("auto", None), ("on", None), ("off", "this server takes no codec uploads"),
                       ("authenticated", "authenticated clients only")):
        srv = _server(codec_upload=mode)
        try:
            stub = pb2_grpc.SplitInferenceStub(grpc.insecure_channel(f"localhost:{srv.port}"))
            if want is None:  # a loopback-only server without authentication: every client is local
                assert stub.PutCodec(data, timeout=5).codec_handle == handle_of(codec.id)
            else:
                code, reason, message = _refusal(lambda: stub.PutCodec(data, timeout=5))
                assert (code, reason) == (S.PERMISSION_DENIED, "UPLOAD_REFUSED") and want in message
        finally:
            srv.stop(1)


def test_loopback_by_default_and_a_warning_beyond_it(codec):
    import inspect

    from splitans.cli import build_parser
    from splitans.runtime import serve

    assert inspect.signature(serve).parameters["host"].default == "localhost"
    assert inspect.signature(Server).parameters["host"].default == "localhost"
    assert build_parser().parse_args(["serve", "--model", "m:f", "--split", "x"]).host == "localhost"
    assert all(map(is_loopback, ["localhost", "127.0.0.1", "127.3.2.1", "::1", "[::1]"]))
    assert not any(map(is_loopback, ["0.0.0.0", "[::]", "::", "10.0.0.1", "example.org"]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        srv = _server(host="0.0.0.0")
    try:
        said = [str(w.message) for w in caught if issubclass(w.category, InsecureServerWarning)]
        assert any("plaintext" in m for m in said) and any("without authentication" in m for m in said), said
        # Open to the network without authentication: "auto" takes no uploads.
        assert srv.codec_upload == "off"
        stub = pb2_grpc.SplitInferenceStub(grpc.insecure_channel(f"127.0.0.1:{srv.port}"))
        code, reason, _ = _refusal(lambda: stub.PutCodec(pb2.CodecBytes(data=codec.to_bytes()), timeout=5))
        assert (code, reason) == (S.PERMISSION_DENIED, "UPLOAD_REFUSED")
    finally:
        srv.stop(1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        srv = _server()
        srv.stop(1)
    assert not [w for w in caught if issubclass(w.category, InsecureServerWarning)]


# ------------------------------------------------------------------------------ malformed


def test_malformed_messages_are_invalid_argument():
    srv = _server()
    try:
        ch = grpc.insecure_channel(f"localhost:{srv.port}")
        garbage = [b"\xff", b"\x0a\xff\xff\xff\xff\x0f", b"\x0a\x02\xc3\x28", b"\x22\x10abc"]
        for method in ("Infer", "Info", "GetCodec", "PutCodec"):
            call = ch.unary_unary(f"/{SERVICE_NAME}/{method}")
            for g in garbage:
                if method == "Info" and g == b"\x0a\x02\xc3\x28":
                    continue  # InfoRequest has no field 1: an unknown field, which protobuf keeps
                code, reason, message = _refusal(lambda: call(g, timeout=5))
                assert (code, reason) == (S.INVALID_ARGUMENT, "MALFORMED"), (method, g, code, message)
        good = pb2.InferRequest(encoding=pb2.FLOAT32, shape=[1, *runtime_models.ACTIVATION], payload=bytes(4 * 256),
                                seq=1).SerializeToString()
        stream = ch.stream_stream(f"/{SERVICE_NAME}/InferStream")
        got = []
        with pytest.raises(grpc.RpcError) as e:
            for answer in stream(iter([good, b"\xff"]), timeout=10):
                got.append(pb2.InferResponse.FromString(answer))
        assert RemoteError.of(e.value).reason == "MALFORMED" and e.value.code() == S.INVALID_ARGUMENT
        assert [r.seq for r in got] == [1] and not got[0].error_code  # the good one was answered first
        # And the server still serves.
        client = EdgeClient(f"localhost:{srv.port}", strategy="float32")
        assert client.infer(torch.zeros(1, *runtime_models.ACTIVATION)).top_k_index.shape == (1, 5)
    finally:
        srv.stop(1)


# ------------------------------------------------------------------------------ fairness


def _idle_streams(stub, n, timeout=30):
    release = threading.Event()

    def idle():
        release.wait()
        return
        yield

    return [stub.InferStream(idle(), timeout=timeout) for _ in range(n)], release


def test_idle_streams_of_one_client_leave_the_others_served():
    """The reproducer of issue 23: 32 InferStream calls held idle by one client shut every other
    client out (RESOURCE_EXHAUSTED) for as long as they were held."""
    srv = _server()
    try:
        target = f"localhost:{srv.port}"
        hog = grpc.insecure_channel(target)
        calls, release = _idle_streams(pb2_grpc.SplitInferenceStub(hog), 32)
        time.sleep(1.0)
        x = runtime_models.inputs(8, seed=9)
        want = runtime_models.tiny()(x).argmax(1).numpy()
        results, errors = [], []

        def unary(k):
            try:
                c = EdgeClient(target, _head(), strategy="float32", deadline=20)
                results.extend((i, c.infer(x[i : i + 1]).top_k_index[0, 0]) for i in range(8))
            except Exception as e:  # reported below
                errors.append(e)

        def streaming(k):
            try:
                c = EdgeClient(target, _head(), strategy="float32", deadline=20)
                results.extend((r.index, r.top_k_index[0, 0]) for r in c.stream(x[i : i + 1] for i in range(8)))
            except Exception as e:
                errors.append(e)

        threads = [threading.Thread(target=f, args=(k,)) for k in range(3) for f in (unary, streaming)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors and len(results) == 48 and all(want[i] == top for i, top in results), errors
        # The idle client holds at most its share of streams; the rest of its calls were refused.
        assert 0 < max(srv.servicer._streams.values()) <= 8
        # (Or refused by HTTP/2 itself, REFUSED_STREAM: the connection's cap counts a stream the
        # server has ended until the client closes its half too.)
        refused = [RemoteError.of(c) for c in calls if c.done()]
        assert any(e.reason == "OVERLOADED" for e in refused), refused
        assert all(e.reason == "OVERLOADED" or "REFUSED_STREAM" in e.message or "error code 7" in e.message
                   for e in refused), refused
        release.set()
        hog.close()
    finally:
        srv.stop(1)


def test_calls_beyond_the_connection_cap_wait_their_turn():
    srv = _server(streams_per_connection=2)
    try:
        ch = grpc.insecure_channel(f"localhost:{srv.port}")
        calls, release = _idle_streams(pb2_grpc.SplitInferenceStub(ch), 4)
        most = 0
        for _ in range(50):
            most = max(most, sum(srv.servicer._streams.values()))
            time.sleep(0.02)
        assert most == 2  # HTTP/2: two in, two waiting in the client
        assert not any(c.done() for c in calls)
        release.set()
        # The first two end normally; the waiting two then go in, or are refused by HTTP/2 while
        # the server still counts the first two (REFUSED_STREAM: never seen, safe to send again).
        ends = []
        for c in calls:
            try:
                assert list(c) == []
                ends.append("OK")
            except grpc.RpcError as e:
                assert e.code() == S.UNAVAILABLE and "error code 7" in e.details(), e
                ends.append("REFUSED_STREAM")
        assert ends.count("OK") >= 2
        # An EdgeClient sending 8 requests at once on one connection gets every answer.
        client = EdgeClient(f"localhost:{srv.port}", strategy="float32")
        x = torch.zeros(8, *runtime_models.ACTIVATION)
        out = []
        threads = [threading.Thread(target=lambda i=i: out.append(client.infer(x[i : i + 1]))) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(out) == 8
    finally:
        srv.stop(1)


def test_a_stream_that_sends_nothing_is_closed_and_the_client_reopens():
    srv = _server(stream_idle_s=0.5)
    try:
        stub = pb2_grpc.SplitInferenceStub(grpc.insecure_channel(f"localhost:{srv.port}"))
        calls, release = _idle_streams(stub, 1)
        t = time.monotonic()
        with pytest.raises(grpc.RpcError) as e:
            list(calls[0])
        assert e.value.code() == S.UNAVAILABLE and RemoteError.of(e.value).reason == "STREAM_IDLE"
        assert time.monotonic() - t < 5
        release.set()
        # The client's stream with a slow source: closed while idle, reopened, nothing lost.
        x = runtime_models.inputs(4, seed=11)

        def slow():
            for i in range(4):
                time.sleep(0.8 if i else 0)
                yield x[i : i + 1]

        client = EdgeClient(f"localhost:{srv.port}", _head(), strategy="float32")
        got = sorted(client.stream(slow()), key=lambda r: r.index)
        assert [r.index for r in got] == [0, 1, 2, 3]
        assert [r.top_k_index[0, 0] for r in got] == list(runtime_models.tiny()(x).argmax(1).numpy())
    finally:
        srv.stop(1)


def test_policy_sets_the_keepalive_and_idle_options():
    opts = dict(Policy(keepalive_s=45, keepalive_timeout_s=5, connection_idle_s=120, streams_per_connection=7,
                       min_client_ping_s=9).grpc_options())
    assert opts["grpc.keepalive_time_ms"] == 45000 and opts["grpc.keepalive_timeout_ms"] == 5000
    assert opts["grpc.max_connection_idle_ms"] == 120000 and opts["grpc.max_concurrent_streams"] == 7
    assert opts["grpc.http2.min_recv_ping_interval_without_data_ms"] == 9000 and opts["grpc.http2.max_ping_strikes"] > 0
    for bad in (dict(workers=0), dict(stream_idle_s=0), dict(codec_upload="sometimes")):
        with pytest.raises(ValueError):
            Policy(**bad)


def test_the_queue_fills_fairly():
    m = _model(slow=0.15)
    service = TailService(LoadedModel(m, m.example_input, None, "runtime_models:tiny"), runtime_models.SPLIT)
    batcher = Batcher(service, max_batch=1, queue_size=6)
    order, lock = [], threading.Lock()

    def item(client, n):
        def done(it):
            with lock:
                order.append((client, n))

        return Item("tail", torch.zeros(1, *runtime_models.ACTIVATION), None, callback=done, client=client)

    try:
        hog = [batcher.submit(item("hog", 0))]
        time.sleep(0.05)  # the first runs; the queue is empty again
        hog += [batcher.submit(item("hog", n)) for n in range(1, 7)]  # fills the queue
        with pytest.raises(RequestError) as e:
            batcher.submit(item("hog", 7))
        assert (e.value.code, e.value.reason) == ("RESOURCE_EXHAUSTED", "OVERLOADED")
        # Another client still gets its share (6 / 2 clients), no more.
        other = [batcher.submit(item("other", n)) for n in range(3)]
        with pytest.raises(RequestError):
            batcher.submit(item("other", 3))
        for it in hog + other:
            assert it.done.wait(10) and it.error is None
        # Taken round-robin: the other client's three ran among the hog's first, not after all six.
        assert order[:7] == [("hog", 0), ("hog", 1), ("other", 0), ("hog", 2), ("other", 1), ("hog", 3), ("other", 2)]
    finally:
        batcher.close()


# ------------------------------------------------------------------------------ retries


def test_retries_run_under_a_deadline_not_a_count(codec):
    port = _free_port()
    client = EdgeClient(f"localhost:{port}", strategy="float32", deadline=1.5)
    t = time.monotonic()
    with pytest.raises(RemoteError) as e:
        client.connect()
    took = time.monotonic() - t
    assert e.value.code == S.UNAVAILABLE and 1.3 < took < 4 and client.retried >= 3, (took, client.retried)
    # The defaults outlast a server that comes up 3 s later (the old 5 retries spanned 1.55 s).
    x = runtime_models.inputs(1, seed=12)
    client = EdgeClient(f"localhost:{port}", _head(), codec)
    holder = {}
    starter = threading.Timer(3.0, lambda: holder.setdefault("srv", _server(port=port)))
    starter.start()
    try:
        r = client.infer(x)
        assert client.retried >= 3 and r.top_k_index[0, 0] == _want(codec, x).argmax()
    finally:
        starter.join()
        holder["srv"].stop(1)


def test_no_retry_for_a_request_that_cannot_succeed(codec):
    srv = _server(max_message_bytes=64 << 10)
    try:
        client = EdgeClient(f"localhost:{srv.port}", strategy="float32", backoff=2.0)
        for req, code in ((pb2.InferRequest(encoding=pb2.FLOAT32, shape=[1, 3, 3], payload=b"\0" * 36), S.INVALID_ARGUMENT),
                          (pb2.InferRequest(encoding=pb2.FLOAT32, shape=[1, *runtime_models.ACTIVATION],
                                            payload=b"\0" * (80 << 10)), S.RESOURCE_EXHAUSTED)):
            t = time.monotonic()
            with pytest.raises(RemoteError) as e:
                client.send(req)
            assert e.value.code == code and client.retried == 0 and time.monotonic() - t < 1.5  # no back-off slept
    finally:
        srv.stop(1)


def test_calls_cancelled_by_a_stopping_server_are_sent_again(codec):
    port = _free_port()
    srv = _server(port=port, slow=0.6)
    x = runtime_models.inputs(1, seed=13)
    client = EdgeClient(f"localhost:{port}", _head(), strategy="float32")
    client.connect()
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", client.infer(x)))
    t.start()
    time.sleep(0.2)  # the call is in the tail now
    srv.stop(grace=0)  # no grace: the call in flight is cancelled
    srv = _server(port=port)
    try:
        t.join(30)
        assert out["r"].top_k_index[0, 0] == runtime_models.tiny()(x).argmax() and client.retried >= 1
    finally:
        srv.stop(1)


class _CancelsOnce(pb2_grpc.SplitInferenceServicer):
    """A server whose first Infer ends CANCELLED, as a call that races a shutdown does."""

    def __init__(self):
        self.calls = 0

    def Info(self, request, context):
        return pb2.InfoResponse(protocol_version=2, activation_shape=list(runtime_models.ACTIVATION))

    def Infer(self, request, context):
        self.calls += 1
        if self.calls == 1:
            context.abort(S.CANCELLED, "cancelled while the server stopped")
        return pb2.InferResponse(top_k_index=[3], top_k_value=[1.0], output_shape=[1, 5])


def test_a_cancelled_call_is_sent_again():
    from concurrent import futures

    servicer = _CancelsOnce()
    server = grpc.server(futures.ThreadPoolExecutor(2))
    pb2_grpc.add_SplitInferenceServicer_to_server(servicer, server)
    port = server.add_insecure_port("localhost:0")
    server.start()
    try:
        client = EdgeClient(f"localhost:{port}", strategy="float32")
        assert client.infer(torch.zeros(1, *runtime_models.ACTIVATION)).top_k_index[0, 0] == 3
        assert servicer.calls == 2 and client.retried == 1
    finally:
        server.stop(0)


def test_a_stopping_server_ends_its_streams_with_draining_at_once():
    srv = _server()
    stub = pb2_grpc.SplitInferenceStub(grpc.insecure_channel(f"localhost:{srv.port}"))
    calls, release = _idle_streams(stub, 2)
    time.sleep(0.5)
    t = time.monotonic()
    stopper = threading.Thread(target=srv.stop, kwargs=dict(grace=20))
    stopper.start()
    for c in calls:
        with pytest.raises(grpc.RpcError) as e:
            list(c)
        assert e.value.code() == S.UNAVAILABLE and RemoteError.of(e.value).reason == "DRAINING"
    stopper.join(30)
    assert time.monotonic() - t < 5  # not the 20 s of grace: the streams ended, the stop followed
    release.set()


def _serve_process(port, *extra, model="runtime_models:tiny"):
    parent = os.path.dirname(os.path.dirname(os.path.abspath(splitans.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (HERE, parent, os.environ.get("PYTHONPATH")) if p))
    p = subprocess.Popen([sys.executable, "-m", "splitans", "serve", "--model", model, "--split",
                          runtime_models.SPLIT, "--port", str(port), "--grace", "5", *extra], env=env, cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    assert line.startswith("serving "), line + p.stdout.read()
    return p


def _tgkill(pid: int, tid: int, sig: int) -> None:
    """Sends `sig` to one thread of another process (Linux's tgkill; os.kill lets the kernel pick)."""
    import ctypes
    import platform

    number = {"x86_64": 234, "aarch64": 131}.get(platform.machine())
    if number is None:
        pytest.skip(f"tgkill's system call number on {platform.machine()} is not written here")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(number, pid, tid, sig) != 0:
        raise OSError(ctypes.get_errno(), "tgkill")


def test_sigterm_stops_the_server_whichever_thread_the_kernel_hands_it_to():
    """A process-directed signal goes to any thread that does not block it; gRPC's and torch's
    threads do not. The server stops at once when one of them takes the SIGTERM (it waited for a
    second signal: the CI run that lost 30 s and failed)."""
    port = _free_port()
    p = _serve_process(port)
    try:
        others = sorted(int(t) for t in os.listdir(f"/proc/{p.pid}/task") if int(t) != p.pid)
        assert others, "the server runs no thread but its main one"
        t = time.monotonic()
        _tgkill(p.pid, others[-1], signal.SIGTERM)
        rest = p.communicate(timeout=15)[0]
        assert p.returncode == 0 and "stopped" in rest, rest
        assert time.monotonic() - t < 10
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()


def test_sigterm_drains_and_a_restart_under_load_loses_nothing(codec):
    """A server restarted (SIGTERM, then a new process on the same port) under load from clients
    with their default settings: every request answered, and right."""
    port = _free_port()
    servers = [_serve_process(port)]
    target = f"localhost:{port}"
    x = runtime_models.inputs(16, seed=14)
    want = _want(codec, x).argmax(1)
    stop = threading.Event()
    counts = {"answered": 0, "lost": 0, "wrong": 0, "streams": 0}
    lock = threading.Lock()
    clients = []

    def unary(k):
        c = EdgeClient(target, _head(), codec)
        clients.append(c)
        i = k
        while not stop.is_set():
            j = i % 16
            try:
                r = c.infer(x[j : j + 1])
                with lock:
                    counts["answered"] += 1
                    counts["wrong"] += int(r.top_k_index[0, 0] != want[j])
            except RemoteError:
                with lock:
                    counts["lost"] += 1
            i += 1

    def streaming():
        c = EdgeClient(target, _head(), codec)
        clients.append(c)
        while not stop.is_set():
            try:
                got = list(c.stream(x[j : j + 1] for j in range(16)))
                with lock:
                    counts["answered"] += len(got)
                    counts["lost"] += 16 - len(got)
                    counts["wrong"] += sum(int(r.error is not None or r.top_k_index[0, 0] != want[r.index]) for r in got)
                    counts["streams"] += 1
            except RemoteError:
                with lock:
                    counts["lost"] += 16

    threads = [threading.Thread(target=unary, args=(k,)) for k in range(3)] + [threading.Thread(target=streaming)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)
        before = counts["answered"]
        servers[0].send_signal(signal.SIGTERM)
        rest = servers[0].communicate(timeout=30)[0]
        assert servers[0].returncode == 0 and "stopped" in rest
        servers.append(_serve_process(port))
        time.sleep(2.0)
    finally:
        stop.set()
        for t in threads:
            t.join(90)
        for p in servers:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.communicate(timeout=30)
    assert before > 0 and counts["answered"] > before and counts["streams"] >= 2, counts
    assert counts["lost"] == 0 and counts["wrong"] == 0, counts
    # The new process held no uploaded codec: the clients agreed it again (by reason).
    assert sum(c.uploads for c in clients) >= 2 and sum(c.retried for c in clients) >= 1


# ------------------------------------------------------------------------------ the codec handle


def test_a_known_codec_costs_at_most_16_bytes_beyond_the_blob(codec):
    seen = []

    class Recorder(grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
        def intercept_unary_unary(self, continuation, details, request):
            if details.method.endswith("/Infer"):
                seen.append(request)
            return continuation(details, request)

        def intercept_stream_stream(self, continuation, details, request_iterator):
            def recorded():
                for r in request_iterator:
                    seen.append(r)
                    yield r

            return continuation(details, recorded())

    srv = _server()
    try:
        target = f"localhost:{srv.port}"
        channel = grpc.intercept_channel(grpc.insecure_channel(target), Recorder())
        client = EdgeClient(target, _head(), codec, channel=channel)
        x = runtime_models.inputs(6, seed=15)
        want = _want(codec, x).argmax(1)
        assert [client.infer(x[i : i + 1]).top_k_index[0, 0] for i in range(3)] == list(want[:3])
        got = sorted(client.stream(x[i : i + 1] for i in range(3, 6)), key=lambda r: r.index)
        assert [r.top_k_index[0, 0] for r in got] == list(want[3:])
        assert len(seen) == 6 and client.protocol == 2
        for n, req in enumerate(seen):
            assert req.codec_handle == handle_of(codec.id) == int.from_bytes(bytes.fromhex(codec.id)[:8], "little")
            assert not req.codec_id and not req.request_id and not req.shape and req.encoding == 0
            assert (req.seq > 0) == (n >= 3)
            assert req.ByteSize() - len(req.payload) <= 16, req
    finally:
        srv.stop(1)


def test_version1_requests_are_still_answered(codec):
    srv = _server(codecs=(codec,))
    try:
        stub = pb2_grpc.SplitInferenceStub(grpc.insecure_channel(f"localhost:{srv.port}"))
        x = runtime_models.inputs(3, seed=16)
        with torch.no_grad():
            blobs = [codec.compress(_head()(x[i : i + 1])[0].numpy()) for i in range(3)]
        reqs = [pb2.InferRequest(request_id=f"r{i}", encoding=pb2.CODEC, codec_id=codec.id, payload=b,
                                 shape=[1, *runtime_models.ACTIVATION], top_k=3) for i, b in enumerate(blobs)]
        want = _want(codec, x)
        r = stub.Infer(reqs[0], timeout=10)
        assert r.request_id == "r0" and list(r.top_k_index) == list(np.argsort(-want[0], kind="stable")[:3])
        got = {a.request_id: a for a in stub.InferStream(iter(reqs), timeout=10)}
        assert sorted(got) == ["r0", "r1", "r2"]
        assert all(got[f"r{i}"].top_k_index[0] == want[i].argmax() for i in range(3))
        # A version-1 client learns of a lost codec from the text it matched before.
        code, reason, message = _refusal(lambda: stub.Infer(pb2.InferRequest(encoding=pb2.CODEC, codec_id="ab" * 32,
                                                                               payload=blobs[0]), timeout=10))
        assert code == S.FAILED_PRECONDITION and "unknown codec id" in message and reason == "CODEC_UNKNOWN"
    finally:
        srv.stop(1)


class _Version1(pb2_grpc.SplitInferenceServicer):
    """A server of protocol version 1 (before handles): it knows the codec by id only."""

    def __init__(self, codec):
        self.codec, self.requests = codec, []
        net = runtime_models.tiny()
        self.tail = nn.Sequential(net[2], net[3]).eval()

    def Info(self, request, context):
        return pb2.InfoResponse(codec_ids=[self.codec.id], activation_shape=list(runtime_models.ACTIVATION))

    def Infer(self, request, context):
        self.requests.append(request)
        if request.encoding != pb2.CODEC or request.codec_id != self.codec.id:
            context.abort(S.INVALID_ARGUMENT, "encoding 0 is not an activation encoding")
        with torch.no_grad():
            out = self.tail(torch.from_numpy(self.codec.decompress(request.payload)[None])).numpy()
        return pb2.InferResponse(request_id=request.request_id, top_k_index=[int(out.argmax())],
                                 top_k_value=[float(out.max())], output_shape=[1, 5])


def test_a_new_client_speaks_version1_to_a_version1_server(codec):
    from concurrent import futures

    servicer = _Version1(codec)
    server = grpc.server(futures.ThreadPoolExecutor(2))
    pb2_grpc.add_SplitInferenceServicer_to_server(servicer, server)
    port = server.add_insecure_port("localhost:0")
    server.start()
    try:
        client = EdgeClient(f"localhost:{port}", _head(), codec)
        x = runtime_models.inputs(1, seed=17)
        assert client.infer(x).top_k_index[0, 0] == _want(codec, x).argmax()
        assert client.protocol == 1 and servicer.requests[0].codec_id == codec.id
        assert not servicer.requests[0].HasField("codec_handle")
    finally:
        server.stop(0)


def test_a_server_that_lost_the_codec_is_agreed_with_again_by_reason(codec):
    port = _free_port()
    srv = _server(port=port)
    client = EdgeClient(f"localhost:{port}", _head(), codec)
    x = runtime_models.inputs(2, seed=18)
    try:
        client.infer(x[:1])
        srv.stop(1)
        srv = _server(port=port)
        # The refusal names the handle, not "unknown codec id": the reason alone tells the client.
        r = client.infer(x[1:2])
        assert client.uploads == 2 and r.top_k_index[0, 0] == _want(codec, x[1:2]).argmax()
    finally:
        srv.stop(1)


# ------------------------------------------------------------------------------ your own model


def test_a_factory_without_example_inputs():
    with pytest.raises(ValueError, match="--input-shape"):
        load_model("runtime_models:tiny_bare")
    for loaded in (load_model("runtime_models:tiny_bare", input_shape=(1, 8, 8)),
                   load_model("runtime_models:tiny_input_shape")):
        assert tuple(loaded.example.shape[1:]) == (1, 8, 8) and loaded.transform is None
    with pytest.raises(ValueError, match="no module 'no_such_module_here'"):
        load_model("no_such_module_here:f")
    with pytest.raises(ValueError, match="has no 'missing'"):
        load_model("runtime_models:missing")
    from splitans.runtime import serve

    srv = serve("runtime_models:tiny_bare", runtime_models.SPLIT, input_shape=(1, 8, 8))
    try:
        x = runtime_models.inputs(2, seed=19)
        client = EdgeClient(f"localhost:{srv.port}", _head(), strategy="float32")
        assert [client.infer(x[i : i + 1]).top_k_index[0, 0] for i in range(2)] == list(
            runtime_models.tiny()(x).argmax(1).numpy())
    finally:
        srv.stop(1)


def test_images_go_through_the_models_preprocess_or_are_refused():
    from PIL import Image

    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (8, 8, 1), dtype=np.uint8) for _ in range(4)]
    net = runtime_models.tiny()
    with torch.no_grad():
        want = [net(runtime_models.to_input(img)).numpy() for img in imgs]
    srv = _server(factory=runtime_models.tiny_preprocess)
    try:
        client = EdgeClient(f"localhost:{srv.port}", strategy="png", return_logits=True)
        for img, w in zip(imgs, want):
            np.testing.assert_allclose(client.infer(img).logits, w, rtol=1e-5, atol=1e-5)
    finally:
        srv.stop(1)
    srv = _server()  # no preprocess: images are refused, not divided by 255
    try:
        buf = io.BytesIO()
        Image.fromarray(imgs[0][:, :, 0]).save(buf, format="PNG")
        stub = pb2_grpc.SplitInferenceStub(grpc.insecure_channel(f"localhost:{srv.port}"))
        code, reason, message = _refusal(lambda: stub.Infer(pb2.InferRequest(encoding=pb2.IMAGE, payload=buf.getvalue()),
                                                            timeout=10))
        assert (code, reason) == (S.FAILED_PRECONDITION, "NO_PREPROCESS") and "preprocess" in message
    finally:
        srv.stop(1)


def test_edge_refuses_image_files_without_a_preprocess(tmp_path, capsys):
    from PIL import Image

    from splitans.cli import main

    path = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    rc = main(["edge", "--model", "runtime_models:tiny", "--split", runtime_models.SPLIT, "--inputs", str(path),
               "--target", f"localhost:{_free_port()}"])
    err = capsys.readouterr().err
    assert rc == 2 and "preprocess" in err and "--strategy jpeg or png" in err, err
