"""The package's rooms: no module imports one that imports it back (a lazy import inside a
function counts: it only hides the cycle), and no Python file grows past ``MAX_LINES`` (the
generated gRPC stubs aside), so that a module stays one thing a reader can hold. The same for
the Rust crate: its layers (``rust/src/lib.rs``) only use earlier ones, no two of its modules use
each other, and no source file passes ``RUST_MAX_LINES``, unit tests apart (docs/ARCHITECTURE.md)."""

import ast
import pathlib


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
    cycle = _first_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def _first_cycle(graph):
    """A cycle of `graph` (node -> the nodes it uses) as its nodes, first repeated last, or None."""
    state = {}

    def visit(node, stack):
        state[node] = "active"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "active":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt, stack + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for name in sorted(graph):
        if name not in state:
            found = visit(name, [name])
            if found:
                return found
    return None


def test_no_python_file_is_over_the_limit():
    sizes = {str(p.relative_to(PKG)): len(p.read_text().splitlines()) for p in PKG.rglob("*.py") if "_pb2" not in p.name}
    assert len(sizes) > 20, "the scan must see the package"
    over = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not over, f"over {MAX_LINES} lines, split by concern: {over}"


# The Rust crate: its layers (rust/src/lib.rs) and its files.

RUST_SRC = PKG.parents[1] / "rust" / "src"
#: The layers in order, as rust/src/lib.rs declares them: a module may use its own layer's and
#: the ones before it, never a later one.
RUST_LAYERS = (("error", "bytes", "buffer", "cpu"), ("quant",), ("layout",), ("entropy",), ("model",), ("format",),
               ("pipeline",))
#: The longest a Rust source file may be, in lines, its unit tests (a trailing `#[cfg(test)] mod`,
#: or a `tests.rs`) apart.
RUST_MAX_LINES = 1200


def _rust_node(path: pathlib.Path) -> str:
    """The unit of the dependency graph a file belongs to: a file of the crate's root or of a
    layer's folder (`format::container`), with the files of a deeper folder as one unit
    (`model::pctx`)."""
    parts = list(path.relative_to(RUST_SRC).with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    return "::".join(parts[:2])


def _use_paths(tree: str, prefix: list) -> list:
    """The paths a `use` tree names: `a::{b, c::{d}}` -> [a::b, a::c::d]."""
    out, depth, start, parts = [], 0, 0, []
    for i, ch in enumerate(tree):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(tree[start:i])
            start = i + 1
    parts.append(tree[start:])
    for part in (p.strip() for p in parts):
        if not part:
            continue
        if "{" in part:
            head, _, rest = part.partition("{")
            out += _use_paths(rest[: rest.rindex("}")], prefix + [s for s in head.split("::") if s])
        else:
            out.append(prefix + [s for s in part.split(" as ")[0].split("::") if s])
    return out


def _rust_graph():
    import re

    nodes = {_rust_node(p) for p in RUST_SRC.rglob("*.rs") if p.relative_to(RUST_SRC).parts[0] != "python"}
    nodes -= {"lib"}
    graph = {n: set() for n in nodes}

    def resolve(segments):
        for k in (2, 1):
            name = "::".join(segments[:k])
            if len(segments) >= k and name in nodes:
                return name
        return None

    for path in RUST_SRC.rglob("*.rs"):
        rel = path.relative_to(RUST_SRC)
        if rel.parts[0] == "python" or rel.name in ("lib.rs", "tests.rs"):
            continue
        node = _rust_node(path)
        src = path.read_text()
        src = re.split(r"\n#\[cfg\(test\)\]\s*\nmod tests", src)[0]
        src = re.sub(r"//[^\n]*", "", src)
        # `super` of a layer's file or folder is its layer.
        layer = list(rel.with_suffix("").parts)
        if layer[-1] == "mod":
            layer.pop()
        parent = layer[:-1]
        paths = []
        for stmt in re.findall(r"\buse\s+((?:crate|super)::[^;]*);", src):
            paths += _use_paths(stmt, [])
        paths += [m.split("::") for m in re.findall(r"(?<![\w:])(?:crate|super)(?:::\w+)+", src)]
        for p in paths:
            if p[0] == "crate":
                target = resolve(p[1:])
            elif p[0] == "super" and len(parent) == 1:
                target = resolve(parent + p[1:])
            else:
                continue  # `super` inside a deeper folder stays in its unit
            if target and target != node:
                graph[node].add(target)
    return graph


def _layer(node: str) -> int:
    top = node.split("::")[0]
    return next(i for i, names in enumerate(RUST_LAYERS) if top in names)


def test_the_crate_s_layers_point_down_and_have_no_cycles():
    graph = _rust_graph()
    assert {"format::container", "pipeline::feature", "model::pctx"} <= set(graph), "the scan must see the layers"
    assert "entropy::rans" in graph["format::container"], "the scan must see `use crate::{a::{b, c}}` trees"
    upward = [f"{a} -> {b}" for a, bs in sorted(graph.items()) for b in sorted(bs) if _layer(b) > _layer(a)]
    assert not upward, "a layer uses a later one (rust/src/lib.rs lists the order): " + ", ".join(upward)
    cycle = _first_cycle(graph)
    assert cycle is None, "module cycle in rust/src: " + " -> ".join(cycle or ())


def _rust_code_lines(path: pathlib.Path) -> int:
    if path.name == "tests.rs":
        return 0
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.startswith("#[cfg(test)]") and lines[i + 1].lstrip().startswith("mod "):
            return i
    return len(lines)


def test_no_rust_file_is_over_the_limit():
    sizes = {str(p.relative_to(RUST_SRC)): _rust_code_lines(p) for p in RUST_SRC.rglob("*.rs")}
    assert len(sizes) > 30 and sizes["entropy/stream.rs"] > 500, "the scan must see the crate"
    over = {name: n for name, n in sizes.items() if n > RUST_MAX_LINES}
    assert not over, f"over {RUST_MAX_LINES} lines (unit tests apart), split by concern: {over}"
