"""splitans.runtime's promises, each against a real gRPC server on loopback (issue 27): a stream
longer than the server's window, a graceful stop that answers the requests queued behind a
running one, retries under a deadline and never for a status that cannot succeed (at most
`retries` of them where a cap is given), codec ids checked on GetCodec and PutCodec, the codec
agreed again after a server restart, and decompression bombs refused by the server's output cap
before they are decoded.

A tiny convolutional model keeps each server cheap; the Fashion-MNIST model end to end is in
test_runtime.py."""

import socket
import threading
import time
import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
grpc = pytest.importorskip("grpc")
pytest.importorskip("grpc_health")
pytest.importorskip("grpc_tools")
from torch import nn  # noqa: E402

import splitans  # noqa: E402
from splitans.runtime import EdgeClient, RemoteError  # noqa: E402
from splitans.runtime.proto import pb2, pb2_grpc  # noqa: E402
from splitans.runtime.server import LocalBackend, Server  # noqa: E402
from splitans.runtime.service import Batcher, Item, LoadedModel, TailService  # noqa: E402

SHAPE = (4, 6, 6)  # the activation after the tiny model's ReLU


class _Sleep(nn.Module):
    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def forward(self, x):
        time.sleep(self.seconds)
        return x


def _tiny(slow=0.0):
    torch.manual_seed(0)
    layers = [nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)]
    if slow:
        layers.insert(2, _Sleep(slow))
    return nn.Sequential(*layers).eval(), torch.randn(8, 1, 8, 8)


def _service(slow=0.0):
    model, example = _tiny(slow)
    return TailService(LoadedModel(model, example, None, "tests:tiny"), "1")


def _server(port=0, slow=0.0, codecs=(), **kw):
    return Server(LocalBackend(_service(slow), **kw), port=port, host="localhost", codecs=codecs)


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _head():
    model, _ = _tiny()
    return nn.Sequential(model[0], model[1]).eval()


def _activations(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return _head()(torch.randn(n, 1, 8, 8, generator=g))


def _expected(acts):
    model, _ = _tiny()
    with torch.no_grad():
        return model[3](model[2](acts)).numpy()


def _request(x, rid):
    a = np.ascontiguousarray(x.numpy(), np.float32)
    return pb2.InferRequest(request_id=rid, encoding=pb2.FLOAT32, shape=list(a.shape), payload=a.tobytes(),
                            return_logits=True)


@pytest.fixture(scope="module")
def codec():
    return splitans.Codec.fit(_activations(32, seed=2), bits=6)


# ------------------------------------------------------------------------------ streams


def test_a_stream_longer_than_the_window_is_answered_in_full():
    srv = _server(max_batch=4)
    try:
        window = srv.servicer.stream_window
        n = 3 * window + 5
        acts = _activations(n)
        want = _expected(acts)
        stub = pb2_grpc.SplitInferenceStub(grpc.insecure_channel(f"localhost:{srv.port}"))
        reqs = [_request(acts[i : i + 1], f"r{i}") for i in range(n)]
        got = {r.request_id: r for r in stub.InferStream(iter(reqs), timeout=30)}
        assert sorted(got) == sorted(f"r{i}" for i in range(n))
        for i in range(n):
            r = got[f"r{i}"]
            assert not r.error_code
            np.testing.assert_allclose(np.asarray(r.logits).reshape(1, 3), want[i : i + 1], rtol=1e-5, atol=1e-5)
        # The client's stream (which waits without a deadline) in a thread that must finish.
        client = EdgeClient(f"localhost:{srv.port}", strategy="float32")
        out = {}
        t = threading.Thread(target=lambda: out.setdefault("r", client.infer_many([acts[i : i + 1] for i in range(n)])),
                             daemon=True)
        t.start()
        t.join(30)
        assert not t.is_alive(), "the stream hung"
        assert [r.index for r in out["r"]] == list(range(n))
        assert all(r.top_k_index[0, 0] == want[i].argmax() for i, r in enumerate(out["r"]))
    finally:
        srv.stop(2)


# ------------------------------------------------------------------------------ graceful stop


def test_graceful_stop_answers_requests_queued_behind_a_running_one():
    srv = _server(slow=0.3, max_batch=1, queue_size=8)
    stub = pb2_grpc.SplitInferenceStub(grpc.insecure_channel(f"localhost:{srv.port}"))
    acts = _activations(4)
    want = _expected(acts)
    results, lock = {}, threading.Lock()

    def call(i):
        try:
            r = stub.Infer(_request(acts[i : i + 1], f"q{i}"), timeout=20)
            out = ("ok", np.asarray(r.logits))
        except grpc.RpcError as e:
            out = (e.code(), None)
        with lock:
            results[i] = out

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    time.sleep(0.1)  # the first runs, three wait in the batcher's queue
    assert srv.backend.batcher.qsize() >= 2
    srv.stop(grace=10)
    for t in threads:
        t.join(20)
    assert sorted(results) == [0, 1, 2, 3]
    for i, (status, logits) in results.items():
        assert status == "ok", (i, status)
        np.testing.assert_allclose(logits.reshape(1, 3), want[i : i + 1], rtol=1e-5, atol=1e-5)
    assert srv.wait(0)
    with pytest.raises(grpc.RpcError) as e:
        stub.Infer(_request(acts[:1], "late"), timeout=2)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("max_batch", [1, 4])
def test_batcher_close_runs_everything_queued_before_it(max_batch):
    batcher = Batcher(_service(slow=0.1), max_batch=max_batch, queue_size=16)
    acts = _activations(6)
    want = _expected(acts)
    items = [batcher.submit(Item("tail", acts[i : i + 1], None)) for i in range(6)]
    batcher.close()
    assert not batcher._thread.is_alive()
    for i, item in enumerate(items):
        assert item.done.is_set() and item.error is None
        np.testing.assert_allclose(item.result, want[i : i + 1], rtol=1e-5, atol=1e-5)
    assert batcher.samples == 6


# ------------------------------------------------------------------------------ retries


def test_no_retry_for_a_status_that_cannot_succeed():
    srv = _server()
    try:
        client = EdgeClient(f"localhost:{srv.port}", strategy="float32", backoff=0.2)
        bad = pb2.InferRequest(request_id="bad", encoding=pb2.FLOAT32, shape=[1, 3, 3], payload=b"\0" * 36)
        t = time.perf_counter()
        with pytest.raises(RemoteError) as e:
            client.send(bad)
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "does not match" in e.value.message
        assert client.retried == 0 and time.perf_counter() - t < 0.2  # no back-off slept
        with pytest.raises(RemoteError) as e:
            client._retrying(lambda t: client.stub.GetCodec(pb2.GetCodecRequest(codec_id="0" * 64), timeout=t))
        assert e.value.code == grpc.StatusCode.NOT_FOUND and client.retried == 0
    finally:
        srv.stop(2)


def test_retries_stop_at_the_deadline_not_after_a_count():
    port = _free_port()  # nothing listens there
    client = EdgeClient(f"localhost:{port}", strategy="float32", backoff=0.02, max_backoff=0.2, deadline=1.5)
    t = time.perf_counter()
    with pytest.raises(RemoteError) as e:
        client.connect()
    took = time.perf_counter() - t
    assert e.value.code == grpc.StatusCode.UNAVAILABLE and "1.5 s" in e.value.message
    # As many retries as the deadline holds (back-off 0.02 s doubling to 0.2 s): more than the
    # old count of 5, and no time beyond the deadline.
    assert 1.4 <= took < 3 and client.retried >= 6, (took, client.retried)


@pytest.mark.parametrize("retries", [0, 3])
def test_a_retries_cap_stops_after_exactly_that_many(retries):
    port = _free_port()  # nothing listens there
    client = EdgeClient(f"localhost:{port}", strategy="float32", retries=retries, backoff=0.02, timeout=2)
    t = time.perf_counter()
    with pytest.raises(RemoteError) as e:
        client.connect()
    assert e.value.code == grpc.StatusCode.UNAVAILABLE
    assert client.retried == retries
    # Exponential back-off: 0.02 * (1 + 2 + 4 ...) seconds slept in all.
    assert time.perf_counter() - t >= 0.02 * (2**retries - 1)
    with pytest.raises(RemoteError):
        client.infer(_activations(1))
    assert client.retried == 2 * retries


# ------------------------------------------------------------------------------ codec ids


def test_get_codec_returns_the_bytes_of_the_id_asked(codec):
    other = splitans.Codec.fit(_activations(32, seed=3), bits=3)
    srv = _server(codecs=(codec,))
    try:
        stub = pb2_grpc.SplitInferenceStub(grpc.insecure_channel(f"localhost:{srv.port}"))
        got = stub.GetCodec(pb2.GetCodecRequest(), timeout=5)  # the default
        assert got.codec_id == codec.id and got.data == codec.to_bytes()
        stub.PutCodec(pb2.CodecBytes(codec_id=other.id, data=other.to_bytes()), timeout=5)
        got = stub.GetCodec(pb2.GetCodecRequest(codec_id=other.id), timeout=5)
        assert got.codec_id == other.id and got.data == other.to_bytes()
        with pytest.raises(grpc.RpcError) as e:
            stub.GetCodec(pb2.GetCodecRequest(codec_id="ab" * 32), timeout=5)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        # A client asking for the server's codec gets it, checked by id.
        client = EdgeClient(f"localhost:{srv.port}", codec="server")
        client.connect()
        assert client.codec == codec and client.uploads == 0
    finally:
        srv.stop(2)


def test_put_codec_refuses_bytes_that_hash_to_another_id(codec):
    other = splitans.Codec.fit(_activations(32, seed=3), bits=3)
    srv = _server()
    try:
        stub = pb2_grpc.SplitInferenceStub(grpc.insecure_channel(f"localhost:{srv.port}"))
        with pytest.raises(grpc.RpcError) as e:
            stub.PutCodec(pb2.CodecBytes(codec_id=other.id, data=codec.to_bytes()), timeout=5)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert codec.id in e.value.details() and other.id in e.value.details()
        info = stub.Info(pb2.InfoRequest(), timeout=5)
        assert codec.id not in info.codec_ids and other.id not in info.codec_ids
        # The right id, or none, is taken; the second upload is known already.
        r = stub.PutCodec(pb2.CodecBytes(codec_id=codec.id, data=codec.to_bytes()), timeout=5)
        assert r.codec_id == codec.id and not r.already_known
        r = stub.PutCodec(pb2.CodecBytes(codec_id="", data=codec.to_bytes()), timeout=5)
        assert r.codec_id == codec.id and r.already_known
        # A codec for another activation shape is refused.
        wrong = splitans.Codec.fit(np.zeros((4, 5, 6, 6), np.float32) + np.arange(5 * 36, dtype=np.float32).reshape(5, 6, 6),
                                   bits=4)
        with pytest.raises(grpc.RpcError) as e:
            stub.PutCodec(pb2.CodecBytes(codec_id=wrong.id, data=wrong.to_bytes()), timeout=5)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        srv.stop(2)


class _LyingServicer(pb2_grpc.SplitInferenceServicer):
    """A hostile peer: it names one codec and sends the bytes of another."""

    def __init__(self, named, sent):
        self.named, self.sent = named, sent

    def Info(self, request, context):
        return pb2.InfoResponse(codec_ids=[self.named.id], default_codec_id=self.named.id)

    def GetCodec(self, request, context):
        return pb2.CodecBytes(codec_id=self.named.id, data=self.sent.to_bytes())


@pytest.mark.parametrize("swap", [False, True])
def test_client_refuses_codec_bytes_that_hash_to_another_id(codec, swap):
    from concurrent import futures

    other = splitans.Codec.fit(_activations(32, seed=3), bits=3)
    named, sent = (other, codec) if swap else (codec, other)
    assert (named.id < sent.id) != (sent.id < named.id)
    server = grpc.server(futures.ThreadPoolExecutor(2))
    pb2_grpc.add_SplitInferenceServicer_to_server(_LyingServicer(named, sent), server)
    port = server.add_insecure_port("localhost:0")
    server.start()
    try:
        client = EdgeClient(f"localhost:{port}", codec="server", retries=0)
        with pytest.raises(RemoteError) as e:
            client.connect()
        assert e.value.code == grpc.StatusCode.DATA_LOSS and named.id in e.value.message
        assert client.codec == "server"  # nothing adopted
    finally:
        server.stop(0)


def test_codec_agreed_again_after_a_server_restart(codec):
    port = _free_port()
    srv = _server(port=port)
    acts = _activations(3)
    want = _expected(torch.from_numpy(codec.round_trip(acts.numpy())))
    client = EdgeClient(f"localhost:{port}", codec=codec, return_logits=True)
    try:
        r = client.infer(acts[:1])
        assert client.uploads == 1 and r.top_k_index[0, 0] == want[0].argmax()
        srv.stop(1)
        srv = _server(port=port)  # a new process would hold no uploaded codec either
        assert codec.id not in srv.registry.ids()
        r = client.infer(acts[1:2])
        assert client.uploads == 2 and codec.id in srv.registry.ids()
        np.testing.assert_allclose(r.logits, want[1:2], rtol=1e-4, atol=1e-4)
        # Agreed once per loss: the next request goes straight through.
        client.infer(acts[2:3])
        assert client.uploads == 2
    finally:
        srv.stop(1)


def test_a_codec_lost_again_right_after_agreement_is_an_error(codec):
    """Re-agreement happens once per request: a server that keeps forgetting the codec gets
    FAILED_PRECONDITION back, not an endless loop."""
    srv = _server()
    try:
        client = EdgeClient(f"localhost:{srv.port}", codec=codec, retries=0)
        client.connect()
        registry = srv.registry
        original = registry.add

        def forgetful(c, owner):  # takes the upload, then forgets it at once
            known = original(c, owner)
            registry._release(owner, c.id)
            return known

        registry.add = forgetful
        registry._release("anonymous", codec.id)
        out = {}

        def infer():
            try:
                client.infer(_activations(1))
            except RemoteError as e:
                out["error"] = e

        t = threading.Thread(target=infer, daemon=True)
        t.start()
        t.join(20)
        assert not t.is_alive(), "the client kept re-agreeing"
        e = out["error"]
        assert e.code == grpc.StatusCode.FAILED_PRECONDITION and e.reason == "CODEC_UNKNOWN"
        assert client.uploads == 2
    finally:
        srv.stop(1)


# ------------------------------------------------------------------------------ bombs


def test_decompression_bombs_are_refused_before_decoding():
    srv = _server()
    try:
        stub = pb2_grpc.SplitInferenceStub(grpc.insecure_channel(f"localhost:{srv.port}"))
        n = 1 << 24  # 64 MiB of float32 zeros, far beyond 1024 activations of 144 floats
        bomb = splitans.compress(np.zeros(n, np.float32), bits=8)
        assert len(bomb) < 4096
        with pytest.raises(grpc.RpcError) as e:
            stub.Infer(pb2.InferRequest(encoding=pb2.SPLITANS, payload=bomb), timeout=20)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "OutputTooLarge" in e.value.details()
        zstandard = pytest.importorskip("zstandard")
        # zstd frames with and without their size stated: neither is decoded past the size the
        # stated shape needs (a frame stating its size would be allocated whole).
        for stated in (True, False):
            zbomb = zstandard.ZstdCompressor(level=3, write_content_size=stated).compress(b"\0" * (n * 2))
            assert len(zbomb) < 4096
            with pytest.raises(grpc.RpcError) as e:
                stub.Infer(pb2.InferRequest(encoding=pb2.ZSTD_FLOAT16, shape=[1, *SHAPE], payload=zbomb), timeout=20)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and e.value.details().startswith("zstd")
        # A container just within the cap decodes, then fails the shape check, by name.
        ok = splitans.compress(np.zeros((1, 5, 6, 6), np.float32), bits=8)
        with pytest.raises(grpc.RpcError) as e:
            stub.Infer(pb2.InferRequest(encoding=pb2.SPLITANS, payload=ok), timeout=20)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "does not match" in e.value.details()
        # And the server still serves.
        acts = _activations(1)
        r = stub.Infer(_request(acts, "after"), timeout=10)
        np.testing.assert_allclose(np.asarray(r.logits).reshape(1, 3), _expected(acts), rtol=1e-5, atol=1e-5)
    finally:
        srv.stop(2)


def test_fitted_codec_blob_with_a_huge_variable_length_is_refused():
    """A fitted codec with a variable axis: a forged blob that states a length of a billion
    tokens is refused by the cap, not allocated."""
    rng = np.random.default_rng(0)
    codec = splitans.Codec.fit([rng.normal(size=(k, 8)).astype(np.float32) for k in (3, 5, 7)], bits=4)
    assert codec.shape == (None, 8)
    blob = codec.compress(rng.normal(size=(4, 8)).astype(np.float32))
    # Header (7 bytes), then the varint length: replace it with 2^30 and fix the CRC.
    body = bytearray([0x80, 0x80, 0x80, 0x80, 0x04]) + blob[8:]
    forged = bytearray(blob[:7]) + body
    crc = zlib.crc32(bytes(forged[7:]), zlib.crc32(bytes(forged[:3]), zlib.crc32(bytes.fromhex(codec.id))))
    forged[3:7] = crc.to_bytes(4, "little")
    with pytest.raises(splitans.OutputTooLargeError):
        codec.decompress(bytes(forged), max_output_bytes=1 << 20)


# ------------------------------------------------------------------------------ results


def test_result_timing_adds_up():
    srv = _server()
    try:
        client = EdgeClient(f"localhost:{srv.port}", strategy="float32", return_logits=True)
        acts = _activations(2)
        r = client.infer(acts[:1])
        t = r.timing
        assert t["total_ms"] == t["head_ms"] + t["encode_ms"] + t["rpc_ms"]
        server = t["queue_ms"] + t["decode_ms"] + t["tail_ms"]
        assert t["transfer_ms"] == max(0.0, t["rpc_ms"] - server) and t["batch_size"] == 1
        # The server's parts are durations within the call (not clock readings).
        assert all(0 <= t[k] <= t["rpc_ms"] for k in ("queue_ms", "decode_ms", "tail_ms")) and server <= t["rpc_ms"]
        assert r.payload_bytes == acts[:1].numel() * 4 and r.replica
        assert r.logits.shape == (1, 3) and r.top_k_index.shape == (1, 3) and r.top_k_value.shape == (1, 3)
        np.testing.assert_allclose(r.top_k_value[0], np.sort(r.logits[0])[::-1], rtol=1e-6)
    finally:
        srv.stop(1)


def test_a_request_refused_inside_a_stream_is_a_result_with_its_error():
    srv = _server()
    try:
        client = EdgeClient(f"localhost:{srv.port}", strategy="float32")
        good = _activations(2)
        bad = torch.zeros(1, 3, 3)  # not this server's activation shape
        results = sorted(client.stream([good[:1], bad, good[1:2]]), key=lambda r: r.index)
        assert [r.error is None for r in results] == [True, False, True]
        err = results[1]
        assert err.error.code == grpc.StatusCode.INVALID_ARGUMENT and "does not match" in err.error.message
        assert err.top_k_index.shape == (0, 0) and err.top_k_value.shape == (0, 0) and err.logits is None
        assert err.payload_bytes == 36
        with pytest.raises(RemoteError) as e:
            client.infer_many([good[:1], bad])
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        srv.stop(1)


def test_a_stream_that_breaks_is_reopened_and_its_requests_sent_again():
    port = _free_port()
    srv = _server(port=port)
    client = EdgeClient(f"localhost:{port}", strategy="float32")
    client.connect()
    srv.stop(0)  # the server goes away between the agreement and the stream
    holder = {}
    restart = threading.Timer(0.4, lambda: holder.setdefault("srv", _server(port=port)))
    restart.start()
    try:
        acts = _activations(5)
        want = _expected(acts)
        out = {}
        t = threading.Thread(target=lambda: out.setdefault("r", client.infer_many([acts[i : i + 1] for i in range(5)])),
                             daemon=True)
        t.start()
        t.join(60)
        assert not t.is_alive(), "the stream was not reopened"
        assert [r.index for r in out["r"]] == list(range(5)) and client.retried >= 1
        assert all(r.top_k_index[0, 0] == want[i].argmax() for i, r in enumerate(out["r"]))
    finally:
        restart.join()
        holder["srv"].stop(1)


# ------------------------------------------------------------------------------ encodings, cuts


def test_a_single_channel_image_travels_as_png_and_jpeg():
    from splitans.runtime import encodings

    img = (np.arange(28 * 28).reshape(28, 28, 1) % 251).astype(np.uint8)
    for strategy in ("png", "jpeg"):
        enc, payload, shape = encodings.encode_image(strategy, img)
        assert enc == encodings.IMAGE and shape == (28, 28, 1)
        with pytest.raises(encodings.RequestError) as e:  # no preprocess of the model's: no guess at one
            encodings.decode_image(payload, (1, 28, 28))
        assert e.value.reason == "NO_PREPROCESS"
        x = encodings.decode_image(payload, (1, 28, 28), lambda a: a.transpose(2, 0, 1)[None].astype(np.float32) / 255)
        assert x.shape == (1, 1, 28, 28)
        err = np.abs(x[0, 0] * 255 - img[:, :, 0]).max()
        assert err == 0 if strategy == "png" else err <= 40


def test_a_cut_that_differs_names_the_difference():
    class Tripling(nn.Sequential):
        def forward(self, x):
            return super().forward(x) * 3

    model = Tripling(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        chain = model[2](model[1](model[0](x)))
        diff = (chain - 3 * chain).abs().max().item()
    with pytest.raises(ValueError) as e:
        splitans.split(model, 1, x)
    assert f"max |diff| {diff})" in str(e.value) and "differs from the model" in str(e.value)


def tiny_factory():
    """A model factory for `serve` ("test_runtime_contract:tiny_factory")."""
    model, example = _tiny()
    model.example_input = example
    return model


def test_serve_batches_concurrent_requests_within_its_delay():
    from splitans.runtime import serve

    srv = serve("test_runtime_contract:tiny_factory", "1", port=0, host="localhost", max_delay_ms=5, max_batch=8)
    try:
        assert srv.backend.batcher.max_delay_s == pytest.approx(0.005)
        stub = pb2_grpc.SplitInferenceStub(grpc.insecure_channel(f"localhost:{srv.port}"))
        acts = _activations(12)
        want = _expected(acts)
        got, lock = {}, threading.Lock()

        def call(i):
            r = stub.Infer(_request(acts[i : i + 1], f"c{i}"), timeout=20)
            with lock:
                got[i] = np.asarray(r.logits).reshape(1, 3)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(got) == list(range(12))
        for i in range(12):
            np.testing.assert_allclose(got[i], want[i : i + 1], rtol=1e-5, atol=1e-5)
    finally:
        srv.stop(2)


def test_a_lone_request_waits_at_most_the_delay_for_others():
    """While another RPC is decoding (`incoming`), the batcher waits for it up to `max_delay_s`,
    then runs what it has: a request that never arrives does not hold the first one."""
    batcher = Batcher(_service(), max_batch=8, max_delay_s=0.2)
    try:
        batcher.incoming = 1  # an RPC that will fail to decode and never submit
        t = time.perf_counter()
        item = batcher.submit(Item("tail", _activations(1), None))
        assert item.done.wait(5), "the batcher kept waiting for a request that never came"
        waited = time.perf_counter() - t
        assert 0.15 <= waited < 2 and item.error is None and item.batch_size == 1
    finally:
        batcher.incoming = 0
        batcher.close()


def test_client_defaults_eight_bits_and_a_short_back_off():
    from splitans.runtime.encodings import SPLITANS

    defaults = EdgeClient(f"localhost:{_free_port()}", strategy="auto")
    assert defaults.deadline >= 30 and defaults.retries is None  # a deadline, not a count
    client = EdgeClient(f"localhost:{_free_port()}", strategy="auto", retries=2, timeout=2)
    req, _, _ = client.encode(_activations(1))
    assert req.encoding == SPLITANS and splitans.inspect(req.payload)["bits"] == 8
    t = time.perf_counter()
    with pytest.raises(RemoteError):
        client.connect()
    # Two retries at the default back-off: 0.05 s, then 0.1 s.
    assert client.retried == 2 and time.perf_counter() - t < 1.5


def test_edge_inputs_give_back_the_images_they_came_from(tmp_path):
    """`splitans edge --inputs`: the tensors for the head, and for the image strategies the
    uint8 images the tensors were made from (Fashion-MNIST's 28 x 28; a photo as read, made a
    tensor by the model's own preprocess, and by nothing else)."""
    from PIL import Image

    from splitans.eval import fmnist
    from splitans.runtime import cli as runtime_cli

    xs, imgs = runtime_cli._inputs("fmnist:3", None)
    assert len(xs) == 3 and len(imgs) == 3
    for x, img in zip(xs, imgs):
        assert img.shape == (28, 28, 1) and img.dtype == np.uint8
        back = (img[:, :, 0].astype(np.float32) / 255 - fmnist.MEAN) / fmnist.STD
        np.testing.assert_allclose(back, np.asarray(x)[0, 0], atol=0.51 / 255 / fmnist.STD)
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, size=(256, 256, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "p.png")
    xs, imgs = runtime_cli._inputs(str(tmp_path / "p.png"), None)
    assert xs is None and imgs[0].shape == (256, 256, 3) and (imgs[0] == photo).all()
    from splitans.eval import models

    class WithPreprocess:
        preprocess = staticmethod(models.preprocess)

    xs, imgs = runtime_cli._inputs(str(tmp_path / "p.png"), WithPreprocess())
    assert tuple(xs[0].shape) == (1, 3, 224, 224) and (imgs[0] == photo).all()
    np.testing.assert_array_equal(np.asarray(xs[0]), np.asarray(models.preprocess(photo)))


def test_edge_inputs_take_any_positive_count_and_refuse_the_rest():
    """`--inputs fmnist:N` / `fmnist-train:N`: N = 1 is one image; 0, a sign, a fraction or
    nothing is a usage error (exit 2) before anything loads."""
    from splitans._exit import EXIT_USAGE, CliError
    from splitans.runtime import cli as runtime_cli

    for spec in ("fmnist:1", "fmnist-train:1", "fmnist:10000"):
        runtime_cli._check_inputs(spec, has_model=False)
    xs, imgs = runtime_cli._inputs("fmnist:1", None)
    assert len(xs) == 1 and len(imgs) == 1
    for spec in ("fmnist:0", "fmnist:", "fmnist:-1", "fmnist:2.5", "fmnist-train:0"):
        with pytest.raises(CliError, match="N must be a positive integer") as e:
            runtime_cli._check_inputs(spec, has_model=False)
        assert e.value.code == EXIT_USAGE


def test_edge_image_channels_follow_the_model_or_the_onnx_head():
    """Image inputs are read with the channels of the model's example input, or of an ONNX
    head's (N, C, H, W) input when C is fixed; otherwise as RGB."""
    from splitans.runtime import cli as runtime_cli

    ch = runtime_cli._image_channels
    assert ch((8, 1, 28, 28), None) == 1
    assert ch((8, 3, 224, 224), [None, 1, 28, 28]) == 3  # the model's own example first
    assert ch(None, [None, 1, 28, 28]) == 1
    assert ch(None, [1, 3, 224, 224]) == 3
    assert ch(None, [None, None, 28, 28]) == 3  # channels not fixed in the ONNX file
    assert ch(None, [None, 784]) == ch((8, 784), None) == ch(None, None) == 3


def test_progress_lines_count_seconds_from_the_command_s_start(capsys):
    import re

    from splitans.runtime import cli as runtime_cli

    say = runtime_cli._progress("serve")
    say("loading the model")
    time.sleep(0.25)
    say("serving")
    lines = capsys.readouterr().err.splitlines()
    m = [re.fullmatch(r"splitans serve: \[ *(\d+\.\d) s\] (.*)", line) for line in lines]
    assert all(m) and [x.group(2) for x in m] == ["loading the model", "serving"], lines
    first, second = (float(x.group(1)) for x in m)
    assert first <= 0.1 and 0.2 <= second <= 5.0, lines


def test_edge_says_which_package_image_inputs_lack(monkeypatch):
    """What is missing for image inputs, named before anything loads (exit 5): foolbox for
    `imagenet` with its pinned install line, else the image readers (PIL, and torch for
    ImageNet) with the extra that brings them."""
    from splitans._exit import EXIT_MISSING, CliError
    from splitans.runtime import cli as runtime_cli

    def refused(spec, match):
        with pytest.raises(CliError, match=match) as e:
            runtime_cli._check_inputs(spec, has_model=True)
        assert e.value.code == EXIT_MISSING

    monkeypatch.setattr(runtime_cli, "_installed", lambda name: False)
    refused("imagenet", r"foolbox is not installed: pip install --no-deps foolbox==3\.3\.4")
    refused("photo.png", r"--inputs photo\.png reads images with PIL, and PIL is not installed: pip install 'splitans\[runtime\]'")
    monkeypatch.setattr(runtime_cli, "_installed", lambda name: name == "foolbox")
    refused("imagenet", r"--inputs imagenet reads images with torch and PIL, and torch and PIL are not installed")


@pytest.mark.parametrize("argv, missing", [
    (["serve", "--model", "splitans.eval.serving:fmnist_resnet"], "--split"),
    (["serve", "--split", "layer2"], "--model"),
    (["export", "--model", "splitans.eval.serving:fmnist_resnet", "--onnx", "head.onnx"], "--split"),
])
def test_serve_and_export_need_the_model_and_its_split(argv, missing, capsys):
    """A server or an export without its model or split point is a usage error (exit 2) that
    names the option, before anything loads."""
    from splitans.cli import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert f"the following arguments are required: {missing}" in capsys.readouterr().err
