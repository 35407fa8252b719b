"""The server side without its transport: the tail of a model and a fair dynamic batcher.

`TailService` decodes a request's payload (a fitted codec's blob, a splitans container, raw
floats, an image through the model's own preprocessing) and runs the tail, or the whole model
for images; `Batcher` gathers requests into batches from a bounded queue that every client
gets its share of. Neither knows gRPC or protobuf: the gRPC front (`server`) turns messages into
`Request` values and answers into messages, and the codecs live in its `registry`. The
in-process backend (`server.LocalBackend`) and each Ray Serve replica (`ray_serve`) run one
`TailService` and one `Batcher`.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, List, NamedTuple, Optional, Protocol, Sequence, Tuple

import numpy as np

from .._fitted import Codec
from . import encodings
from .encodings import RequestError

__all__ = ["Backend", "Batcher", "LoadedModel", "Reply", "Request", "TailService", "load_model"]

DEFAULT_TOP_K = 5
MAX_SAMPLES_PER_REQUEST = 1024


class LoadedModel(NamedTuple):
    model: Any
    example: Any  # an input batch, for the split check and the shapes
    transform: Optional[Callable]  # the model's preprocess: H x W x C uint8 -> model input, for images
    spec: str
    class_names: Sequence[str] = ()  # the output classes' names, by index (the model's class_names)


def _import_factory(spec: str):
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--model takes PKG.MODULE:FACTORY, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is not None and module_name.startswith(e.name) and e.name.split(".")[0] != "splitans":
            raise ValueError(f"--model {spec}: no module {e.name!r} (is the folder that holds it on PYTHONPATH?)") from None
        if e.name is None or e.name.split(".")[0] in ("torch", "splitans"):
            raise
        raise ValueError(f"--model {spec}: {module_name} imports {e.name!r}, which is not installed here; "
                         "install what your model needs") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"--model {spec}: {module_name} has no {attr!r}") from None


def load_model(spec: str, input_shape: Optional[Sequence[int]] = None) -> LoadedModel:
    """``"pkg.module:factory"`` -> the factory's model in eval mode.

    The factory returns a torch module, or ``(model, example_input)``. What the server needs to
    know about the input comes from, first found: the factory's example inputs (``(model,
    example_input)`` or a ``model.example_input`` batch); `input_shape` (one sample's shape,
    ``splitans serve --input-shape C,H,W``); ``model.input_shape``. The model's ``preprocess``
    (or ``input_transform``, its older name: an H x W x C uint8 array to a 1 x ... input) is how
    the server turns images sent whole into inputs; without one it refuses images. A
    ``class_names`` attribute (a list of strings, by output index) is sent to clients, which
    print names instead of indices."""
    made = _import_factory(spec)()
    if isinstance(made, tuple):
        model, example = made
    else:
        model, example = made, getattr(made, "example_input", None)
    if example is None:
        shape = input_shape or getattr(model, "input_shape", None)
        if shape is None:
            raise ValueError(f"--model {spec}: the server needs one input's shape: give --input-shape C,H,W "
                             "(serve(input_shape=...)), or have the factory set model.input_shape or "
                             "model.example_input, or return (model, example_input)")
        import torch

        shape = tuple(int(d) for d in shape)
        if not shape or any(d < 1 for d in shape):
            raise ValueError(f"--input-shape {shape}: one input's shape, every axis at least 1")
        # Inputs for the split check only: the cut is checked to compute the model on them.
        example = torch.randn((2,) + shape, generator=torch.Generator().manual_seed(0))
    preprocess = getattr(model, "preprocess", None) or getattr(model, "input_transform", None)
    names = [str(n) for n in (getattr(model, "class_names", None) or ())]
    return LoadedModel(model.eval(), example, preprocess, spec, names)


@dataclass
class Request:
    """One request, decoded from its message: what `TailService.decode` takes. `codec`: the
    fitted codec of a CODEC request (looked up by the front in its registry)."""

    encoding: int
    payload: bytes
    shape: Tuple[int, ...] = ()
    codec: Optional[Codec] = None


@dataclass
class Reply:
    """The model's outputs for one request (its samples on the first axis) and how long each
    step took (queue_ms, decode_ms, tail_ms, batch_size, replica)."""

    outputs: np.ndarray
    timing: Dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    """What the gRPC front (`server.Servicer`) needs of whatever runs the model: the in-process
    `server.LocalBackend`, or `ray_serve.RayBackend` over Ray Serve replicas."""

    activation_shape: Tuple[int, ...]

    def describe(self) -> dict:
        """model, split, device, activation_shape, max_batch, class_names."""

    def infer(self, request: Request, deadline: Optional[float], active: Callable[[], bool], client: str) -> Reply:
        """Decode, queue (fairly, by `client`), run; raises `RequestError`."""

    def close(self) -> None:
        """Answer what is queued, then release everything."""


class TailService:
    """Decodes requests and runs the tail (or the whole model, for images) on batches.

    `max_output_bytes`: the most one request's payload may decode to, on the CPU and the GPU
    alike (default: `MAX_SAMPLES_PER_REQUEST` activations of 8-byte values)."""

    def __init__(self, loaded: LoadedModel, point: str, device: str = "cpu",
                 progress: Optional[Callable[[str], None]] = None, max_output_bytes: Optional[int] = None):
        import torch

        from ..cut import split

        say = progress or (lambda line: None)
        say(f"cutting after {point!r} and checking head + tail against the model on {len(loaded.example)} example inputs")

        self.loaded = loaded
        self.class_names = list(loaded.class_names)
        self.point = point
        self.device = device
        example = loaded.example
        head, tail = split(loaded.model, point, example)
        with torch.no_grad():
            activation = head(example)
        self.activation_shape = tuple(activation.shape[1:])
        self.input_shape = tuple(example.shape[1:])
        self.max_output_bytes = int(max_output_bytes or MAX_SAMPLES_PER_REQUEST * int(np.prod(self.activation_shape)) * 8)
        self.tail = tail.to(device)
        self.model = loaded.model.to(device)
        self._gpu_decode = None
        if device.startswith("cuda"):
            try:
                from ..gpu import decompress_gpu

                self._gpu_decode = decompress_gpu
            except ImportError:  # no CuPy: decode on the CPU, copy over
                pass
        # Warm up: the first call of a torch module allocates and picks kernels.
        say(f"warming up the tail on {device}")
        with torch.no_grad():
            self.tail(activation.to(device))

    # -- requests -----------------------------------------------------------------------------
    def decode(self, request: Request):
        """(kind, tensor on the device): kind "tail" for an activation, "model" for an image."""
        import torch

        if request.encoding == encodings.IMAGE:
            x = encodings.decode_image(request.payload, self.input_shape, self.loaded.transform)
            return "model", torch.from_numpy(x).to(self.device)
        if request.encoding == encodings.SPLITANS and self._gpu_decode is not None:
            from .._core import CorruptDataError, OutputTooLargeError

            try:
                t = self._gpu_decode(request.payload, output="torch", max_output_bytes=self.max_output_bytes).float()
            except (CorruptDataError, OutputTooLargeError) as e:
                raise RequestError("INVALID_ARGUMENT", f"{type(e).__name__}: {e}", reason="BAD_PAYLOAD") from None
            encodings._check_shape(t.shape, self.activation_shape, "activation")
            return "tail", t
        a = encodings.decode(request.encoding, request.payload, request.shape, activation_shape=self.activation_shape,
                             codec=request.codec, max_batch=self.max_output_bytes // (8 * int(np.prod(self.activation_shape))))
        if not a.flags.writeable:  # a view of the request's bytes (float32 sent raw)
            a = a.copy()
        return "tail", torch.from_numpy(a).to(self.device)

    def run(self, kind: str, x) -> np.ndarray:
        import torch

        with torch.no_grad():
            out = (self.tail if kind == "tail" else self.model)(x)
        return out.float().cpu().numpy()


class Item:
    """One request in the batcher: its input, whose it is (`client`, what fairness counts on),
    and where its result goes."""

    __slots__ = ("kind", "x", "deadline", "client", "enqueued", "done", "result", "error", "queue_ms", "tail_ms",
                 "batch_size", "cancelled", "callback")

    def __init__(self, kind: str, x, deadline: Optional[float], callback=None, client: str = ""):
        self.kind, self.x, self.deadline, self.client = kind, x, deadline, client
        self.enqueued = time.perf_counter()
        self.done = threading.Event()
        self.result = self.error = None
        self.queue_ms = self.tail_ms = 0.0
        self.batch_size = 0
        self.cancelled = False
        self.callback = callback

    def finish(self, result=None, error: Optional[RequestError] = None) -> None:
        self.result, self.error = result, error
        self.done.set()
        if self.callback is not None:
            self.callback(self)


class Batcher:
    """Dynamic batching over a queue that every client gets its share of.

    A worker takes the first waiting request, gathers more for up to `max_delay_s` or
    `max_batch` samples, and runs each group of equal kind and shape as one batch. It waits only
    while requests are on their way (`incoming`: RPCs accepted and still decoding), so a lone
    request runs at once.

    Fair filling: requests wait in one queue per client, and the worker takes them round-robin
    across clients, so one client's backlog does not delay another's requests. The queue holds
    `queue_size` requests; when it is full, a client still holding fewer than its share
    (`queue_size` / the clients waiting) is let in, up to 2 x `queue_size` in all; anyone else
    gets RESOURCE_EXHAUSTED (reason OVERLOADED) at once, to retry after a back-off. One client
    that floods the queue therefore fills it for itself but not against the others."""

    def __init__(self, service: TailService, max_batch: int = 16, max_delay_s: float = 0.002, queue_size: int = 64):
        self.service = service
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.queue_size = queue_size
        self.incoming = 0  # requests decoding now, that will be submitted soon (updated by the caller)
        self.batches = 0
        self.samples = 0
        self.refused = 0
        self._queues: "OrderedDict[str, Deque[Item]]" = OrderedDict()
        self._size = 0
        self._closing = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="splitans-batcher", daemon=True)
        self._thread.start()

    def qsize(self) -> int:
        """Requests waiting."""
        return self._size

    def waiting(self) -> Dict[str, int]:
        """{client: requests waiting}."""
        with self._cond:
            return {k: len(q) for k, q in self._queues.items()}

    def submit(self, item: Item) -> Item:
        with self._cond:
            if self._closing:
                raise RequestError("UNAVAILABLE", "the server is shutting down; send the request again",
                                   reason="DRAINING")
            q = self._queues.get(item.client)
            own = len(q) if q is not None else 0
            share = max(1, self.queue_size // (len(self._queues) + (q is None)))
            if not (self._size < self.queue_size or (own < share and self._size < 2 * self.queue_size)):
                self.refused += 1
                raise RequestError("RESOURCE_EXHAUSTED", f"the server's queue is full ({self._size} requests "
                                   f"waiting, {own} of them yours); retry after a back-off", reason="OVERLOADED")
            if q is None:
                q = self._queues[item.client] = deque()
            q.append(item)
            self._size += 1
            self._cond.notify()
        return item

    def close(self) -> None:
        """Stops after the requests already queued (call once the transport takes no more);
        `submit` refuses new ones from now on."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()

    def _take(self) -> Item:
        """The next request, round-robin over the clients (the lock held)."""
        client, q = next(iter(self._queues.items()))
        item = q.popleft()
        self._size -= 1
        if q:
            self._queues.move_to_end(client)
        else:
            del self._queues[client]
        return item

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._size and not self._closing:
                    self._cond.wait()
                if not self._size:  # closing, and everything queued has run
                    return
                batch = [self._take()]
                n = batch[0].x.shape[0]
                until = time.perf_counter() + self.max_delay_s
                while n < self.max_batch:
                    if self._size:
                        item = self._take()
                        batch.append(item)
                        n += item.x.shape[0]
                        continue
                    left = until - time.perf_counter()
                    if left <= 0 or self.incoming <= 0 or self._closing:
                        break
                    self._cond.wait(left)
            self._run(batch)

    def _run(self, batch: List[Item]) -> None:
        import torch

        start = time.perf_counter()
        live = []
        for item in batch:
            if item.cancelled:
                item.finish(error=RequestError("CANCELLED", "the client went away"))
            elif item.deadline is not None and start > item.deadline:
                item.finish(error=RequestError("DEADLINE_EXCEEDED", "the deadline passed while the request waited"))
            else:
                item.queue_ms = (start - item.enqueued) * 1e3
                live.append(item)
        groups: Dict[Tuple, List[Item]] = {}
        for item in live:
            groups.setdefault((item.kind, tuple(item.x.shape[1:])), []).append(item)
        for (kind, _), items in groups.items():
            t = time.perf_counter()
            try:
                out = self.service.run(kind, torch.cat([i.x for i in items]) if len(items) > 1 else items[0].x)
            except Exception as e:  # a model error must not kill the worker
                for i in items:
                    i.finish(error=RequestError("INTERNAL", f"{type(e).__name__}: {e}"))
                continue
            ms = (time.perf_counter() - t) * 1e3
            self.batches += 1
            self.samples += sum(i.x.shape[0] for i in items)
            at = 0
            for i in items:
                k = i.x.shape[0]
                i.tail_ms, i.batch_size = ms, len(items)
                i.finish(result=out[at : at + k])
                at += k


def top_k(out: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """(indices, values) of the k largest outputs per sample, best first."""
    flat = out.reshape(out.shape[0], -1)
    k = max(1, min(k, flat.shape[1]))
    idx = np.argsort(-flat, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(flat, idx, axis=1)


def replica_name() -> str:
    return f"{os.uname().nodename}:{os.getpid()}"
