"""The edge without torch: the head exported to ONNX and run by ONNX Runtime, against a real
gRPC server on loopback serving the tail of a real model (the Fashion-MNIST ResNet from its
committed checkpoint), and `splitans edge` in a process where torch cannot be imported."""

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from strict import need_module

torch = need_module("torch", "pip install '.[test]'", module_level=True)
need_module("grpc", "pip install '.[test]'", module_level=True)
need_module("grpc_health", "pip install '.[test]'", module_level=True)
need_module("onnxruntime", "pip install '.[test]'", module_level=True)
need_module("onnxscript", "pip install '.[test]'", module_level=True)
from torch import nn  # noqa: E402

import splitans  # noqa: E402
from splitans.cut import export_onnx  # noqa: E402
from splitans.eval.labels import FASHION_MNIST  # noqa: E402
from splitans.runtime import EdgeClient, OnnxHead  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = "splitans.eval.serving:fmnist_resnet"
# Run in a child process: these imports fail there, as on an edge that installed
# 'splitans[edge,onnx]' only (grpc imports the bare grpc_tools/grpc_health packages if present).
BLOCK = ("torch", "ray", "grpc_tools", "grpc_health", "PIL", "zstandard", "onnx", "onnxscript", "foolbox")
BLOCKER = textwrap.dedent(f"""
    import importlib.abc, sys
    class Blocked(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {BLOCK!r}:
                raise ImportError(f"{{name}} is not installed on this edge", name=name)
    sys.meta_path.insert(0, Blocked())
""")


def _env():
    # The children import the same splitans as this process (the installed wheel, or python/).
    parent = os.path.dirname(os.path.dirname(os.path.abspath(splitans.__file__)))
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (parent, os.environ.get("PYTHONPATH")) if p))


def _edge_process(argv, timeout=120):
    """``splitans`` with `argv` in a child where torch and the rest of BLOCK cannot be imported;
    fails if any of them was loaded anyway."""
    # The arguments arrive as strings made at run time (json), as sys.argv's are, not as
    # literals of the child's code: a literal would be the interned string the code compares with.
    code = BLOCKER + textwrap.dedent(f"""
        import json
        from splitans.cli import main
        rc = main(json.loads({json.dumps([str(a) for a in argv])!r}))
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {BLOCK!r} and m not in ("grpc_tools", "grpc_health"))
        print("loaded:", loaded)
        sys.exit(rc)
    """)
    return subprocess.run([sys.executable, "-c", code], env=_env(), cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory):
    """The model, its halves, the head as ONNX, a fitted 8-bit codec, and 24 inputs."""
    from splitans.eval import serving

    model = serving.fmnist_resnet()
    x = model.example_input
    xs = torch.cat([x, x.flip(-1), x.flip(-2)])  # 24 distinct real inputs without the data set
    folder = tmp_path_factory.mktemp("edge")
    path = str(folder / "head.onnx")
    head, tail = splitans.split(model, "layer2", x, onnx=path)
    with torch.no_grad():
        codec = splitans.Codec.fit(head(xs), bits=8)
        want = model(xs).argmax(1).numpy()
    return dict(model=model, head=head, tail=tail, onnx=path, codec=codec, xs=xs, want=want, folder=folder)


@pytest.fixture(scope="module")
def server(fmnist):
    from splitans.runtime import serve

    srv = serve(MODEL, "layer2", codecs=[fmnist["codec"]], port=0, host="127.0.0.1")
    yield srv
    srv.stop(5)


def test_onnx_head_matches_the_torch_head(fmnist):
    onnx_head = OnnxHead(fmnist["onnx"])
    assert onnx_head.batch is None  # exported with a dynamic batch axis
    xs = fmnist["xs"]
    with torch.no_grad():
        want = fmnist["head"](xs).numpy()
    got = onnx_head(xs.numpy())  # all 24 in one batch, though exported on a batch of 8
    assert got.shape == want.shape == (24, 32, 14, 14)
    diff = np.abs(got - want).max()
    assert diff <= 1e-4 * max(1.0, np.abs(want).max()), diff
    print(f"ONNX Runtime head vs torch head: max |diff| {diff:.3g} over {want.size:,} values")
    with pytest.raises(ValueError, match=r"takes \(N, 1, 28, 28\)"):
        onnx_head(np.zeros((2, 1, 28, 27), np.float32))


def test_onnx_edge_gets_the_torch_edges_answers_from_a_real_server(fmnist, server):
    target = f"127.0.0.1:{server.port}"
    xs, codec = fmnist["xs"], fmnist["codec"]
    by_onnx = EdgeClient(target, fmnist["onnx"], codec, return_logits=True)
    by_torch = EdgeClient(target, fmnist["head"], codec, return_logits=True)
    assert isinstance(by_onnx.head, OnnxHead)
    got = by_onnx.infer_many([xs[i : i + 1].numpy() for i in range(len(xs))])
    ref = by_torch.infer_many([xs[i : i + 1] for i in range(len(xs))])
    same_blob = 0
    for i, (a, b) in enumerate(zip(got, ref)):
        assert a.top_k_index[0, 0] == b.top_k_index[0, 0] == fmnist["want"][i]
        np.testing.assert_allclose(a.logits, b.logits, rtol=1e-3, atol=1e-3)
        same_blob += by_onnx.encode(xs[i : i + 1].numpy())[0].payload == by_torch.encode(xs[i : i + 1])[0].payload
    # ONNX Runtime's float32 differs from torch's in the last bits; the 8-bit codes nearly never.
    assert same_blob >= len(xs) - 2, same_blob
    assert by_onnx.class_name(int(got[0].top_k_index[0, 0])) in FASHION_MNIST
    # Any callable head still works: here a plain function of numpy arrays.
    session = OnnxHead(fmnist["onnx"])
    by_function = EdgeClient(target, lambda x: session(np.asarray(x) * 1.0), codec)
    assert [r.top_k_index[0, 0] for r in by_function.infer_many([xs[i : i + 1].numpy() for i in range(4)])] == \
        list(fmnist["want"][:4])
    by_function.close()
    by_onnx.close()
    by_torch.close()


def test_a_fixed_batch_export_runs_any_multiple_of_its_batch(fmnist, tmp_path):
    x = fmnist["xs"][:2]
    report = export_onnx(fmnist["head"], x, tmp_path / "fixed.onnx", dynamic_batch=False)
    assert report["dynamic_batch"] is False and report["activation_shape"] == (32, 14, 14)
    head = OnnxHead(report["path"])
    assert head.batch == 2
    with torch.no_grad():
        want = fmnist["head"](fmnist["xs"][:6]).numpy()
    assert np.abs(head(fmnist["xs"][:6].numpy()) - want).max() <= 1e-4 * max(1.0, np.abs(want).max())
    with pytest.raises(ValueError, match="batches of 2"):
        head(fmnist["xs"][:3].numpy())


def test_export_refuses_a_head_it_cannot_trace(tmp_path):
    class Branchy(nn.Module):
        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow: torch.export cannot capture it
                return x * 2
            return x

    with pytest.raises(ValueError, match="cannot export the head to ONNX"):
        export_onnx(Branchy(), torch.ones(1, 3), tmp_path / "b.onnx")


def test_edge_command_runs_without_torch(fmnist, server):
    """`splitans edge --head HEAD.onnx --codec FILE --inputs X.npy --expect Y.npy` in a process
    where torch cannot be imported: every answer right, class names printed."""
    folder = fmnist["folder"]
    np.save(folder / "inputs.npy", fmnist["xs"].numpy())
    np.save(folder / "expect.npy", fmnist["want"])
    with open(folder / "layer2.codec", "wb") as f:
        f.write(fmnist["codec"].to_bytes())
    t = time.perf_counter()
    out = _edge_process(["edge", "--target", f"127.0.0.1:{server.port}", "--head", fmnist["onnx"], "--codec",
                         str(folder / "layer2.codec"), "--inputs", str(folder / "inputs.npy"), "--expect",
                         str(folder / "expect.npy"), "--stream"])
    took = time.perf_counter() - t
    assert out.returncode == 0, out.stdout + out.stderr
    assert "24 requests, 24 answered, 0 wrong" in out.stdout and "loaded: []" in out.stdout, out.stdout
    lines = [line for line in out.stdout.splitlines() if line.startswith("input")]
    assert len(lines) == 24 and all("'" in line and "DIFFERS" not in line for line in lines), out.stdout
    print(f"torch-free edge process: 24 answers in {took:.2f} s")
    # One wrong expectation is counted and fails the run.
    wrong = fmnist["want"].copy()
    wrong[3] = (wrong[3] + 1) % 10
    np.save(folder / "wrong.npy", wrong)
    out = _edge_process(["edge", "--target", f"127.0.0.1:{server.port}", "--head", fmnist["onnx"], "--codec",
                         str(folder / "layer2.codec"), "--inputs", str(folder / "inputs.npy"), "--expect",
                         str(folder / "wrong.npy")])
    assert out.returncode == 1 and "24 requests, 24 answered, 1 wrong" in out.stdout, out.stdout + out.stderr


def test_edge_takes_the_server_s_codec(fmnist, server):
    """`--codec server`: the codec the server has (not a file named "server"), every answer right."""
    folder = fmnist["folder"]
    np.save(folder / "inputs.npy", fmnist["xs"].numpy())
    np.save(folder / "expect.npy", fmnist["want"])
    out = _edge_process(["edge", "--target", f"127.0.0.1:{server.port}", "--head", fmnist["onnx"], "--codec", "server",
                         "--inputs", str(folder / "inputs.npy"), "--expect", str(folder / "expect.npy")])
    assert out.returncode == 0, out.stdout + out.stderr
    assert "24 requests, 24 answered, 0 wrong" in out.stdout and "loaded: []" in out.stdout, out.stdout


def test_edge_fits_a_codec_with_the_onnx_head_and_uploads_it(fmnist, server):
    folder = fmnist["folder"]
    np.save(folder / "inputs.npy", fmnist["xs"].numpy())
    out = _edge_process(["edge", "--target", f"127.0.0.1:{server.port}", "--head", fmnist["onnx"], "--fit-codec", "16",
                         "--bits", "6", "--inputs", str(folder / "inputs.npy")])
    assert out.returncode == 0 and "(uploaded)" in out.stdout and "loaded: []" in out.stdout, out.stdout + out.stderr


def test_edge_refuses_missing_inputs_before_loading_anything():
    """--inputs imagenet without foolbox: exit 5 and what to install, before a model loads."""
    t = time.perf_counter()
    out = _edge_process(["edge", "--model", "splitans.eval.serving:efficientnet_lite0", "--split", "block11.expand",
                         "--fit-codec", "2", "--inputs", "imagenet", "--stream", "--check"], timeout=60)
    assert out.returncode == 5, out.stdout + out.stderr
    assert "pip install --no-deps foolbox==3.3.4" in out.stderr and "loaded: []" in out.stdout, out.stdout + out.stderr
    assert time.perf_counter() - t < 30  # no model, no torch: seconds, not the minute a load takes
    out = _edge_process(["edge", "--head", "/nonexistent/head.onnx", "--inputs", "x.npy"])
    assert out.returncode == 3 and "no such file" in out.stderr
    out = _edge_process(["edge", "--inputs", "fmnist:3"])
    assert out.returncode == 2 and "--head" in out.stderr


def test_cli_export_writes_a_head_and_codec_the_edge_uses(tmp_path):
    out = subprocess.run([sys.executable, "-m", "splitans", "export", "--model", MODEL, "--split", "layer2", "--onnx",
                          str(tmp_path / "h.onnx"), "--fit-codec", "8", "--bits", "4", "--codec-out",
                          str(tmp_path / "c.codec")], env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "batch axis dynamic" in out.stdout and "max |diff|" in out.stdout, out.stdout
    codec = splitans.Codec.from_bytes((tmp_path / "c.codec").read_bytes())
    assert codec.shape == (32, 14, 14)
    assert OnnxHead(str(tmp_path / "h.onnx")).output_shape[1:] == [32, 14, 14]
