"""splitans.runtime: model cuts, and a real gRPC server on localhost started and stopped here,
with real clients (Fashion-MNIST ResNet from its committed checkpoint)."""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
grpc = pytest.importorskip("grpc")
pytest.importorskip("grpc_health")
from torch import nn  # noqa: E402

import splitans  # noqa: E402
from splitans.runtime import EdgeClient, RemoteError, split, split_points  # noqa: E402
from splitans.runtime.service import LoadedModel, TailService  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = "splitans.eval.serving:fmnist_resnet"


# ---- cutting ---------------------------------------------------------------------------------
def test_split_sequential_by_name_index_and_nested():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Sequential(nn.Conv2d(4, 4, 3), nn.ReLU()),
                          nn.Flatten(), nn.LazyLinear(3)).eval()
    x = torch.randn(2, 1, 9, 9)
    for point in (1, -2, "2.0", "2"):
        head, tail = splitans.split(model, point, x)
        with torch.no_grad():
            assert torch.equal(tail(head(x)), model(x))
    assert split_points(model) == ["0", "1", "2.0", "2.1", "2", "3"]
    with pytest.raises(ValueError, match=r"valid points: 0, 1, 2\.0, 2\.1, 2, 3"):
        split(model, "nope", x)
    with pytest.raises(ValueError, match="leaves no head or no tail"):
        split(model, 4, x)
    with pytest.raises(TypeError, match="sample"):
        split(model, 1)


def test_split_traced_model_offers_only_single_tensor_cuts():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.relu, self.fc = nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1), nn.ReLU(), nn.Linear(3, 2)

        def forward(self, x):
            y = self.relu(self.a(x))
            return self.fc(self.relu(self.b(y) + y).mean((2, 3)))

    model, x = Residual().eval(), torch.randn(2, 3, 5, 5)
    # b's output cannot be a cut: y crosses it through the skip connection.
    assert split_points(model) == ["a", "relu", "add", "relu_1", "mean"]
    head, tail = split(model, "relu", x)
    with torch.no_grad():
        assert torch.allclose(tail(head(x)), model(x))
    with pytest.raises(ValueError, match="valid points: a, relu, add"):
        split(model, "b", x)


def test_split_refuses_a_forward_that_is_not_the_chain():
    class Doubling(nn.Sequential):
        def forward(self, x):
            return super().forward(x) * 2

    model = Doubling(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    with pytest.raises(ValueError, match="differs from the model"):
        split(model, 1, torch.randn(3, 4))


def test_efficientnet_lite0_stages_match_the_model():
    pytest.importorskip("efficientnet_lite_pytorch")
    from splitans.eval import models, serving

    m = serving.efficientnet_lite0()
    x = m.example_input[:1]
    with torch.no_grad():
        assert torch.allclose(m(x), models.efficientnet_lite0()(x), atol=1e-5)
    head, _ = split(m, "block11.expand", x)
    assert tuple(head(x).shape) == (1, 672, 14, 14)


# ---- the server ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fmnist():
    from splitans.eval import serving

    model = serving.fmnist_resnet()
    head, tail = split(model, "layer2", model.example_input)
    with torch.no_grad():
        codec = splitans.Codec.fit(head(model.example_input), bits=4)
    return model, head, tail, codec


@pytest.fixture(scope="module")
def server():
    from splitans.runtime import serve

    srv = serve(MODEL, "layer2", port=0, host="localhost", max_message_bytes=1 << 20)
    yield srv
    srv.stop(5)


def _local(head, tail, codec, x):
    with torch.no_grad():
        return tail(torch.from_numpy(codec.decompress(codec.compress(head(x)[0]))[None])).numpy()


def test_health_and_info(server):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"localhost:{server.port}") as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for name in ("", "splitans.runtime.v1.SplitInference"):
            assert stub.Check(health_pb2.HealthCheckRequest(service=name)).status == health_pb2.HealthCheckResponse.SERVING
    client = EdgeClient(f"localhost:{server.port}", strategy="auto")
    info = client.connect()
    assert (info.split, tuple(info.activation_shape)) == ("layer2", (32, 14, 14))


def test_codec_agreed_once_then_small_blobs_and_right_answers(server, fmnist):
    model, head, tail, codec = fmnist
    client = EdgeClient(f"localhost:{server.port}", head, codec, return_logits=True)
    xs = [model.example_input[i : i + 1] for i in range(8)]
    results = [client.infer(x, i) for i, x in enumerate(xs)]
    assert client.uploads == 1 and codec.id in client.connect().codec_ids
    for r, x in zip(results, xs):
        want = _local(head, tail, codec, x)
        np.testing.assert_allclose(r.logits, want, rtol=1e-4, atol=1e-4)
        assert r.top_k_index[0, 0] == want.argmax() and r.payload_bytes < 2000
    # A second client with the same codec finds it there: no upload.
    again = EdgeClient(f"localhost:{server.port}", head, codec)
    again.infer(xs[0])
    assert again.uploads == 0
    # And one with codec="server" fetches the bytes by id.
    fetch = EdgeClient(f"localhost:{server.port}", head, "server")
    with pytest.raises(RemoteError, match="no default codec"):
        fetch.connect()


@pytest.mark.parametrize("strategy", ["auto", "best", "float16", "zstd-float16", "png", "jpeg"])
def test_strategies_stream(server, fmnist, strategy):
    model, head, tail, _ = fmnist
    xs = [model.example_input[i : i + 1] for i in range(6)]
    if strategy in ("png", "jpeg"):
        from splitans.eval import fmnist as data

        sent = [np.clip(np.rint((x[0, 0].numpy() * data.STD + data.MEAN) * 255), 0, 255).astype(np.uint8) for x in xs]
    else:
        sent = xs
    client = EdgeClient(f"localhost:{server.port}", head, strategy=strategy)
    results = client.infer_many(sent)
    assert [r.index for r in results] == list(range(6))
    with torch.no_grad():
        want = model(torch.cat(xs)).argmax(1).numpy()
    got = np.array([r.top_k_index[0, 0] for r in results])
    # Lossless float16 and PNG (of an 8-bit image) keep every decision; 8-bit codes and JPEG nearly.
    assert (got == want).mean() >= (1.0 if strategy in ("float16", "zstd-float16", "png") else 0.8)


def test_bad_traffic_gets_status_and_server_keeps_serving(server, fmnist):
    from splitans.runtime.proto import pb2, pb2_grpc

    model, head, tail, codec = fmnist
    stub = pb2_grpc.SplitInferenceStub(grpc.insecure_channel(f"localhost:{server.port}"))
    good = EdgeClient(f"localhost:{server.port}", head, codec)
    good.connect()
    with torch.no_grad():
        blob = codec.compress(head(model.example_input[:1])[0])
        other = splitans.Codec.fit(head(model.example_input), bits=3)

    def status(**kw):
        with pytest.raises(grpc.RpcError) as e:
            stub.Infer(pb2.InferRequest(**kw), timeout=10)
        return e.value.code(), e.value.details()

    code, msg = status(encoding=pb2.SPLITANS, payload=b"garbage" * 10)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "CorruptDataError" in msg
    code, msg = status(encoding=pb2.CODEC, codec_id=codec.id, payload=blob[: len(blob) // 2])
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "CorruptDataError" in msg
    code, msg = status(encoding=pb2.CODEC, codec_id="0" * 64, payload=blob)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "unknown codec id" in msg
    # A blob of another codec sent under this codec's id is refused by id.
    stub.PutCodec(pb2.CodecBytes(codec_id=other.id, data=other.to_bytes()))
    code, msg = status(encoding=pb2.CODEC, codec_id=other.id, payload=blob)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and other.id[:4] in msg and codec.id[:4] in msg
    code, msg = status(encoding=pb2.FLOAT16, shape=[1, 32, 14, 14], payload=b"\0" * 100)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, msg = status(encoding=pb2.FLOAT32, shape=[1, 3, 3], payload=b"\0" * 36)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "does not match" in msg
    code, _ = status(encoding=pb2.FLOAT32, shape=[1, 32, 14, 14], payload=b"\0" * (2 << 20))  # over 1 MiB
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    code, msg = status(encoding=pb2.IMAGE, payload=b"\x89PNG\r\n\x1a\n" + b"\0" * 50)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "image" in msg
    with pytest.raises(grpc.RpcError) as e:
        stub.PutCodec(pb2.CodecBytes(codec_id="", data=b"not a codec"))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # A stream with one bad request answers it in place and goes on.
    client = EdgeClient(f"localhost:{server.port}", head, codec)
    reqs = [client.encode(model.example_input[i : i + 1], i)[0] for i in range(3)]
    reqs[1].payload = b"\x00" * 5
    out = {r.request_id: r for r in stub.InferStream(iter(reqs), timeout=10)}
    assert out[reqs[1].request_id].error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert not out[reqs[0].request_id].error_code and not out[reqs[2].request_id].error_code
    # A client that goes away mid-stream.
    call = stub.InferStream(iter(reqs * 20), timeout=10)
    next(call)
    call.cancel()
    assert good.infer(model.example_input[:1]).top_k_index.shape == (1, 5)


class _Slow(nn.Module):
    def forward(self, x):
        time.sleep(0.4)
        return x


def _slow_server(**kw):
    from splitans.runtime.server import LocalBackend, Server

    model = nn.Sequential(nn.Flatten(), _Slow(), nn.Linear(4, 3)).eval()
    loaded = LoadedModel(model, torch.randn(1, 4), None, "tests:slow")
    service = TailService(loaded, "0")  # the tail: the slow stage, then the classifier
    return Server(LocalBackend(service, **kw), port=0, host="localhost")


def test_back_pressure_deadline_and_graceful_drain():
    from splitans.runtime.proto import pb2, pb2_grpc

    srv = _slow_server(max_batch=1, queue_size=1)
    stub = pb2_grpc.SplitInferenceStub(grpc.insecure_channel(f"localhost:{srv.port}"))
    x = np.zeros((1, 4), np.float32)
    req = pb2.InferRequest(encoding=pb2.FLOAT32, shape=[1, 4], payload=x.tobytes())
    codes, lock = [], threading.Lock()

    def call(timeout=10):
        try:
            stub.Infer(req, timeout=timeout)
            code = grpc.StatusCode.OK
        except grpc.RpcError as e:
            code = e.code()
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
        time.sleep(0.02)
    for t in threads:
        t.join()
    # One runs, one waits, the rest are refused at once.
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= 3 and codes.count(grpc.StatusCode.OK) >= 2
    codes.clear()
    busy = threading.Thread(target=call)
    busy.start()
    time.sleep(0.05)
    call(timeout=0.2)  # waits behind the running request: its deadline passes
    busy.join()
    assert grpc.StatusCode.DEADLINE_EXCEEDED in codes
    # Graceful stop: the request in flight still gets its answer; new calls are refused.
    codes.clear()
    busy = threading.Thread(target=call)
    busy.start()
    time.sleep(0.1)
    srv.stop(grace=5)
    busy.join()
    assert codes == [grpc.StatusCode.OK]
    with pytest.raises(grpc.RpcError) as e:
        stub.Infer(req, timeout=2)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def test_client_retries_unavailable_until_the_server_is_up(fmnist):
    import socket

    from splitans.runtime import serve

    model, head, tail, codec = fmnist
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    client = EdgeClient(f"localhost:{port}", head, codec, retries=8, backoff=0.1)
    holder = {}
    starter = threading.Timer(0.5, lambda: holder.setdefault("srv", serve(MODEL, "layer2", port=port, host="localhost")))
    starter.start()
    try:
        r = client.infer(model.example_input[:1])
        assert client.retried >= 1 and r.top_k_index[0, 0] == _local(head, tail, codec, model.example_input[:1]).argmax()
    finally:
        starter.join()
        holder["srv"].stop(2)


def test_cli_serve_and_edge():
    # The children import the same splitans this process imported: the installed wheel under the
    # README's test command, python/ in a development checkout (python/ alone has no _core there).
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(splitans.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p))
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    srv = subprocess.Popen([sys.executable, "-m", "splitans", "serve", "--model", MODEL, "--split", "layer2",
                            "--port", str(port), "--host", "localhost"], env=env, cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # While it starts it says what it is doing (on stderr), then that it serves (on stdout).
        said = []
        while not said or f"on port {port}" not in said[-1]:
            line = srv.stdout.readline()
            assert line, "".join(said) + srv.stdout.read()
            said.append(line)
        progress = [line for line in said if line.startswith("splitans serve: [")]
        assert any("loading the model" in line for line in progress), said
        assert any("warming up the tail" in line for line in progress), said
        out = subprocess.run([sys.executable, "-m", "splitans", "edge", "--target", f"localhost:{port}", "--model", MODEL,
                              "--split", "layer2", "--fit-codec", "8", "--bits", "4", "--inputs", "examples",
                              "--stream", "--check"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "0 differ from local inference" in out.stdout and "(uploaded)" in out.stdout
        # The server names the classes: the edge prints names, not only indices.
        assert sum("'" in line for line in out.stdout.splitlines() if line.startswith("input")) == 8, out.stdout
    finally:
        srv.terminate()
        rest = srv.communicate(timeout=30)[0]
    assert srv.returncode == 0 and "stopped" in rest
