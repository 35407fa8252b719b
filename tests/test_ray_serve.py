"""The tail on a real Ray Serve deployment, Ray started embedded here with 2 replicas, behind the
same gRPC front: requests spread over both, each replica loads the codec once, and a replica
killed mid-load costs retries, not answers."""

import os
import signal
import threading
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("grpc")
pytest.importorskip("ray.serve")

import splitans  # noqa: E402
from splitans.runtime import EdgeClient, serve, split  # noqa: E402

MODEL = "splitans.eval.serving:fmnist_resnet"


@pytest.fixture(scope="module")
def ray_server():
    srv = serve(MODEL, "layer2", ray=True, replicas=2, port=0, host="localhost")
    yield srv
    srv.stop(5)


def test_two_replicas_answer_right_and_load_the_codec_once(ray_server):
    from splitans.eval import serving

    model = serving.fmnist_resnet()
    head, tail = split(model, "layer2", model.example_input)
    x = model.example_input
    with torch.no_grad():
        codec = splitans.Codec.fit(head(x), bits=4)
        want = [tail(torch.from_numpy(codec.decompress(codec.compress(head(x[i : i + 1])[0]))[None])).numpy()
                for i in range(len(x))]
    results, errors = [], []

    def worker(k):
        client = EdgeClient(f"localhost:{ray_server.port}", head, codec, return_logits=True)
        try:
            for j in range(12):
                i = (k + j) % len(x)
                results.append((i, client.infer(x[i : i + 1], i)))
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 48
    for i, r in results:
        np.testing.assert_allclose(r.logits, want[i], rtol=1e-4, atol=1e-4)
    replicas = ray_server.backend.replicas()
    assert len({r.replica for _, r in results}) == 2 and len(replicas) == 2
    # The codec came once through PutCodec to the front, then once into each replica.
    assert all(r["codec_loads"] == 1 for r in replicas), replicas


def test_a_replica_killed_mid_stream_costs_retries_not_answers(ray_server):
    from splitans.eval import serving

    model = serving.fmnist_resnet()
    head, tail = split(model, "layer2", model.example_input)
    x = model.example_input
    with torch.no_grad():
        want = model(x).argmax(1).numpy()
    victim = int(ray_server.backend.replicas()[0]["replica"].rsplit(":", 1)[1])
    client = EdgeClient(f"localhost:{ray_server.port}", head, strategy="float16", retries=10, backoff=0.05)
    killed = threading.Timer(0.3, os.kill, (victim, signal.SIGKILL))

    def inputs():
        for k in range(60):
            time.sleep(0.01)
            yield x[k % len(x) : k % len(x) + 1]

    killed.start()
    got = sorted(client.stream(inputs()), key=lambda r: r.index)
    killed.join()
    assert [r.index for r in got] == list(range(60))
    assert all(r.error is None and r.top_k_index[0, 0] == want[r.index % len(x)] for r in got)
    assert victim not in {int(r.replica.rsplit(":", 1)[1]) for r in got[-5:]}
    with pytest.raises(ProcessLookupError):  # it really died
        os.kill(victim, 0)
    print(f"killed replica {victim}; {client.retried} requests sent again")
