"""The package's rooms: no module imports one that imports it back (a lazy import inside a
function counts: it only hides the cycle), and no Python file grows past ``MAX_LINES`` (the
generated gRPC stubs aside), so that a module stays one thing a reader can hold."""

import ast
import pathlib

import pytest

PKG = pathlib.Path(__file__).resolve().parents[1] / "python" / "splitans"
#: The longest a module of the package may be, in lines.
MAX_LINES = 800


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


def test_no_python_file_is_over_the_limit():
    sizes = {str(p.relative_to(PKG)): len(p.read_text().splitlines()) for p in PKG.rglob("*.py") if "_pb2" not in p.name}
    assert len(sizes) > 20, "the scan must see the package"
    over = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not over, f"over {MAX_LINES} lines, split by concern: {over}"
