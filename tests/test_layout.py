"""The package root is the codec: importing it loads neither torch nor the GPU path nor the
evaluation harness, and no module of the package imports one that imports it back."""

import ast
import pathlib
import subprocess
import sys

import pytest

from strict import need_module

PKG = pathlib.Path(__file__).resolve().parents[1] / "python" / "splitans"


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules():
    found = {_module_name(p): p for p in PKG.rglob("*.py")}
    # The native module is a leaf: it imports nothing of the package.
    found["splitans._core"] = PKG / "_core.pyi"
    return found


def _imports(name: str, path: pathlib.Path, known) -> set:
    """Every splitans module `name` imports, at module level or inside a function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:
                sub = f"{target}.{a.name}"
                if sub in known:
                    out.add(sub)
                elif target in known:
                    out.add(target)
    out.discard(name)
    return out


def test_no_import_cycles():
    known = _modules()
    graph = {name: _imports(name, path, known) if path.suffix == ".py" else set() for name, path in known.items()}
    assert graph["splitans.gpu.pipelines"] >= {"splitans._codec"}, "the scan must see relative imports"
    state = {}

    def visit(node, stack):
        state[node] = "active"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "active":
                cycle = stack[stack.index(nxt) :] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


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
