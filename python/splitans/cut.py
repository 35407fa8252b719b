"""Cutting a torch model in two: the head runs on the edge device, the tail on the server.

A cut is well defined where exactly one tensor crosses it: nothing computed before the cut may
be needed after it except the activation at the cut itself (a skip connection spanning the cut
would have to travel too). Two kinds of model are cut:

- ``nn.Sequential``, nested to any depth: a point is a child's qualified name (``"layer2"``,
  ``"block3.expand"``) or an index into the top level; the head and tail are again
  ``nn.Sequential`` sharing the original modules (no copy of the weights).
- any other model that ``torch.fx.symbolic_trace`` can trace (forward without data-dependent
  control flow): a point is a module's qualified name where that module is called once, else
  the fx node name; only nodes where the live set is that node alone are offered.

Not supported: models fx cannot trace (data-dependent ``if``/loops, non-torch calls on tensor
values), forwards that take several tensors, and cuts where more than one tensor is live
(residual blocks cut inside their skip): the error lists the points that are valid.

The head can leave torch behind: ``split(..., onnx="head.onnx")`` (or `export_onnx`) writes it
as one ONNX file, batch axis dynamic where the model allows, checked against the torch head
with ONNX Runtime; the edge runs it with ``onnxruntime`` alone
(``splitans.runtime.EdgeClient(target, "head.onnx", codec)``, ``splitans edge --head``).

This module needs torch; ``import splitans`` does not load it (``splitans.split`` imports it on
first use). It was ``splitans.runtime.cut``, which still works.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Union

__all__ = ["Split", "export_onnx", "split", "split_points"]


class Split(NamedTuple):
    """The two halves: ``tail(head(x))`` equals ``model(x)``."""

    head: Any
    tail: Any


def _sequential_points(seq, prefix: str = "") -> List[str]:
    from torch import nn

    out = []
    for name, child in seq.named_children():
        full = prefix + name
        if isinstance(child, nn.Sequential) and len(child) > 0:
            out.extend(_sequential_points(child, full + "."))
        out.append(full)
    return out


def _cut_sequential(seq, path: List[str]):
    """(head, tail) of nested Sequential `seq` cut after the child at `path`."""
    from torch import nn

    names = [n for n, _ in seq.named_children()]
    i = names.index(path[0])
    children = list(seq.children())
    if len(path) == 1:
        return nn.Sequential(*children[: i + 1]), nn.Sequential(*children[i + 1 :])
    inner_head, inner_tail = _cut_sequential(children[i], path[1:])
    head = nn.Sequential(*children[:i], *inner_head)
    tail = nn.Sequential(*inner_tail, *children[i + 1 :])
    return head, tail


def _fx_graph(model):
    import torch.fx as fx

    try:
        gm = model if isinstance(model, fx.GraphModule) else fx.symbolic_trace(model)
    except Exception as e:  # fx raises many kinds (TraceError, TypeError, NotImplementedError)
        raise ValueError(
            f"cannot cut {type(model).__name__}: it is not an nn.Sequential and torch.fx cannot trace it "
            f"({type(e).__name__}: {e}). Wrap it as an nn.Sequential of named stages, or make its forward traceable"
        ) from e
    nodes = list(gm.graph.nodes)
    if sum(n.op == "placeholder" for n in nodes) != 1:
        raise ValueError(f"cannot cut {type(model).__name__}: its forward takes more than one input")
    return gm, nodes


def _fx_points(gm, nodes) -> List[Tuple[str, int]]:
    """(point name, node index) of every node where the node itself is all that is live."""
    index = {n: i for i, n in enumerate(nodes)}
    last_use = {n: max((index[u] for u in n.users), default=-1) for n in nodes}
    module_calls: dict = {}
    for n in nodes:
        if n.op == "call_module":
            module_calls[n.target] = module_calls.get(n.target, 0) + 1
    points = []
    live = set()
    for i, n in enumerate(nodes):
        if n.op == "output":
            break
        live = {m for m in live if last_use[m] > i}
        if n.op != "get_attr" and last_use[n] > i:
            live.add(n)
        if n.op in ("placeholder", "get_attr") or live != {n}:
            continue
        if n.users and all(u.op == "output" for u in n.users):
            continue  # the model's output: nothing left for a tail
        name = n.target if n.op == "call_module" and module_calls[n.target] == 1 else n.name
        points.append((name, i))
    return points


def _cut_fx(gm, nodes, i: int):
    import torch.fx as fx

    cut = nodes[i]
    head_graph, env = fx.Graph(), {}
    for n in nodes[: i + 1]:
        env[n] = head_graph.node_copy(n, lambda a: env[a])
    head_graph.output(env[cut])
    tail_graph = fx.Graph()
    env = {cut: tail_graph.placeholder("activation")}

    def arg(a):
        if a not in env:  # a constant (get_attr) made before the cut
            assert a.op == "get_attr", a
            env[a] = tail_graph.node_copy(a, lambda b: env[b])
        return env[a]

    for n in nodes[i + 1 :]:
        env[n] = tail_graph.node_copy(n, arg)
    head, tail = fx.GraphModule(gm, head_graph), fx.GraphModule(gm, tail_graph)
    for g in (head, tail):
        g.graph.eliminate_dead_code()
        g.graph.lint()
        g.recompile()
    return head, tail


def split_points(model) -> List[str]:
    """The names ``split`` accepts for `model`, in execution order."""
    from torch import nn

    if isinstance(model, nn.Sequential):
        return _sequential_points(model)[:-1] if len(model) else []
    gm, nodes = _fx_graph(model)
    return [name for name, _ in _fx_points(gm, nodes)]


def split(model, point: Union[str, int], sample: Any = None, *, check: bool = True,
          rtol: float = 1e-4, atol: float = 1e-5, onnx: Union[str, "os.PathLike[str]", None] = None) -> Split:
    """Cut `model` after `point` into ``(head, tail)`` torch modules.

    `point`: a child's (qualified) name, or an index into an ``nn.Sequential`` (negative counts
    from the end); ``split_points(model)`` lists the valid names and an unknown one raises
    ``ValueError`` listing them. `sample`: an input batch; ``tail(head(sample))`` is checked
    against ``model(sample)`` (within `rtol`/`atol`) unless ``check=False``. `onnx`: a path to
    write the head to as ONNX (`export_onnx` on `sample`), for an edge without torch.

    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(3)).eval()
    >>> x = torch.randn(2, 1, 8, 8)
    >>> head, tail = split(model, 1, x)
    >>> bool(torch.equal(tail(head(x)), model(x)))
    True
    """
    import torch
    from torch import nn

    if check and sample is None:
        raise TypeError("split() checks head then tail against the model on a sample: pass sample=, or check=False")
    if check:
        with torch.no_grad():
            model(sample)  # materializes lazy modules before the halves share them
    if isinstance(model, nn.Sequential):
        points = _sequential_points(model)[:-1]
        if isinstance(point, int) and not isinstance(point, bool):
            names = [n for n, _ in model.named_children()]
            idx = point + len(names) if point < 0 else point
            if not 0 <= idx < len(names) - 1:
                raise ValueError(f"index {point} leaves no head or no tail: the model has {len(names)} children, "
                                 f"valid indices 0..{len(names) - 2} (or names: {', '.join(points)})")
            point = names[idx]
        if point not in points:
            raise ValueError(f"unknown split point {point!r} for this nn.Sequential; valid points: {', '.join(points)}")
        head, tail = _cut_sequential(model, str(point).split("."))
    else:
        if isinstance(point, int):
            raise ValueError("an index is a split point of an nn.Sequential only; name the point "
                             f"(valid: {', '.join(split_points(model))})")
        gm, nodes = _fx_graph(model)
        points = dict(_fx_points(gm, nodes))
        if point not in points:
            raise ValueError(f"unknown or ambiguous split point {point!r} for {type(model).__name__} (a valid point "
                             f"has only its own output live across the cut); valid points: {', '.join(points)}")
        head, tail = _cut_fx(gm, nodes, points[point])
    head.train(model.training)
    tail.train(model.training)
    if check:
        _check(model, head, tail, sample, point, rtol, atol)
    if onnx is not None:
        if sample is None:
            raise TypeError("split(..., onnx=PATH) traces the head on a sample: pass sample=")
        export_onnx(head, sample, onnx)
    return Split(head, tail)


def _check(model, head, tail, sample, point, rtol: float, atol: float) -> None:
    import torch

    with torch.no_grad():
        want = model(sample)
        activation = head(sample)
        if not isinstance(activation, torch.Tensor):
            raise ValueError(f"the head's output at {point!r} is a {type(activation).__name__}, not one tensor")
        got = tail(activation)
    if not isinstance(want, torch.Tensor) or not isinstance(got, torch.Tensor):
        raise ValueError("the model's output must be one tensor")
    if want.shape != got.shape or not torch.allclose(got, want, rtol=rtol, atol=atol):
        diff = (got - want).abs().max().item() if want.shape == got.shape else f"shape {tuple(got.shape)}"
        raise ValueError(f"head then tail at {point!r} differs from the model on the sample (max |diff| {diff}): "
                         "its forward does more than run these modules in order; cut a traceable model instead")


def export_onnx(head, sample: Any, path: Union[str, "os.PathLike[str]"], *, dynamic_batch: bool = True,
                check: bool = True, atol: float = 1e-4) -> Dict[str, Any]:
    """Write the torch module `head` as one ONNX file at `path`, traced on `sample` (an input
    batch), with input ``"input"`` and output ``"activation"``.

    The batch axis is dynamic when `dynamic_batch` and the model allows it (``torch.export``
    proves it); otherwise, or if that fails, the file takes `sample`'s batch size and the edge
    runs it one batch of that size at a time. With `check`, ONNX Runtime runs the file on
    `sample` and the largest difference from the torch head must be within `atol` times the
    activation's largest magnitude (at least 1), else ``ValueError``.

    Returns ``{"path", "dynamic_batch", "max_abs_diff", "activation_shape", "bytes"}``
    (``max_abs_diff`` is None without `check`). Needs ``onnx`` and ``onnxscript``
    (``pip install 'splitans[runtime]'``); the check needs ``onnxruntime``.
    """
    import warnings

    import numpy as np
    import torch

    path = os.fspath(path)
    sample = sample if isinstance(sample, torch.Tensor) else torch.as_tensor(np.asarray(sample, dtype=np.float32))
    head = head.eval()
    kwargs = dict(input_names=["input"], output_names=["activation"], external_data=False, dynamo=True)
    errors = []
    dynamic = False
    for dynamic in ([True, False] if dynamic_batch else [False]):
        shapes = ({0: torch.export.Dim("batch", min=1, max=1 << 16)},) if dynamic else None
        try:
            with warnings.catch_warnings(), _quiet_exporter():
                warnings.simplefilter("ignore")
                torch.onnx.export(head, (sample,), path, dynamic_shapes=shapes, verbose=False, **kwargs)
            break
        except Exception as e:  # torch.export raises many kinds; the static retry says what failed
            errors.append(f"{'dynamic' if dynamic else 'static'} batch: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    else:
        raise ValueError(f"cannot export the head to ONNX ({'; '.join(errors)})")
    with torch.no_grad():
        want = head(sample)
    if not isinstance(want, torch.Tensor):
        raise ValueError(f"the head's output is a {type(want).__name__}, not one tensor")
    want = want.detach().float().cpu().numpy()
    diff = None
    if check:
        from .runtime.onnx_head import OnnxHead

        got = OnnxHead(path)(sample.detach().cpu().numpy())
        if got.shape != want.shape:
            raise ValueError(f"the ONNX head gives shape {got.shape}, the torch head {want.shape}")
        diff = float(np.abs(got - want).max()) if want.size else 0.0
        bound = atol * max(1.0, float(np.abs(want).max()) if want.size else 1.0)
        if not diff <= bound:
            raise ValueError(f"the ONNX head differs from the torch head by {diff:.3g} (> {bound:.3g}) on the sample")
    return {"path": path, "dynamic_batch": dynamic, "max_abs_diff": diff, "activation_shape": tuple(want.shape[1:]),
            "bytes": os.path.getsize(path)}


class _quiet_exporter:
    """Silences the exporter's progress lines on stdout and its logger (it prints a line per
    stage, and a warning per torchvision operator it cannot find)."""

    def __enter__(self):
        import contextlib
        import io
        import logging

        self._loggers = [(lg, lg.level) for lg in (logging.getLogger("torch.onnx"), logging.getLogger("torch.export"),
                                                   logging.getLogger("onnxscript"))]
        for lg, _ in self._loggers:
            lg.setLevel(logging.ERROR)
        self._out = contextlib.redirect_stdout(io.StringIO())
        self._out.__enter__()
        return self

    def __exit__(self, *exc):
        self._out.__exit__(*exc)
        for lg, level in self._loggers:
            lg.setLevel(level)
