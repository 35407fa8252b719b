"""The package root is the codec: importing it loads neither torch nor the GPU path nor the
evaluation harness (no import cycles and no oversized modules: test_architecture.py)."""

import pathlib
import subprocess
import sys

import pytest

from strict import need_module

PKG = pathlib.Path(__file__).resolve().parents[1] / "python" / "splitans"


def test_root_holds_the_codec_only():
    for harness in ("fmnist.py", "models.py", "evaluate.py", "report.py", "gpu.py"):
        assert not (PKG / harness).exists(), f"{harness} belongs in splitans.eval or splitans.gpu"


def test_import_loads_no_torch_no_gpu_no_eval():
    code = (
        "import sys, splitans\n"
        "bad = [m for m in ('torch', 'cupy', 'grpc', 'ray', 'splitans.gpu', 'splitans.eval', 'splitans.runtime') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "assert callable(splitans.compress_gpu) and 'splitans.gpu' in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_eval_imports_with_its_extra():
    need_module("torch")
    code = ("import splitans.eval.report, splitans.eval.nets, splitans.eval.nlp, splitans.eval.experiments, "
            "splitans.eval.evaluate, splitans.eval.train, splitans.eval.fmnist, splitans.eval.models")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_runtime_loads_grpc_and_ray_only_when_used():
    pytest.importorskip("torch")
    pytest.importorskip("grpc")
    code = (
        "import sys, splitans, splitans.runtime\n"
        "assert 'grpc' not in sys.modules and 'torch' not in sys.modules\n"
        "split = splitans.split\n"
        "assert split is splitans.runtime.split and 'grpc' not in sys.modules\n"
        "import splitans.runtime.server, splitans.runtime.client, splitans.__main__\n"
        "assert 'ray' not in sys.modules, 'Ray is imported by --ray only'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
