"""The server side without its transport: the tail of a model, the codecs it holds, and a
dynamic batcher with a bounded queue. The gRPC server (`server`) and each Ray Serve replica
(`ray_serve`) wrap one of these.
"""

from __future__ import annotations

import importlib
import os
import queue
import threading
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from .._fitted import Codec
from . import encodings
from .encodings import RequestError

__all__ = ["Batcher", "LoadedModel", "TailService", "load_model"]


class LoadedModel(NamedTuple):
    model: Any
    example: Any  # an input batch, for the split check and the shapes
    transform: Optional[Callable]  # H x W x C uint8 -> model input, for images
    spec: str
    class_names: Sequence[str] = ()  # the output classes' names, by index (the model's class_names)


def load_model(spec: str) -> LoadedModel:
    """``"pkg.module:factory"`` -> the factory's model in eval mode. The factory returns a torch
    module with an ``example_input`` attribute (an input batch), or ``(model, example_input)``;
    an ``input_transform`` attribute (H x W x C uint8 array -> 1 x C x H x W tensor) is used
    for images sent whole, and a ``class_names`` attribute (a list of strings, by output index)
    is sent to clients, which print names instead of indices."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--model takes PKG.MODULE:FACTORY, got {spec!r}")
    factory = getattr(importlib.import_module(module_name), attr)
    made = factory()
    if isinstance(made, tuple):
        model, example = made
    else:
        model, example = made, getattr(made, "example_input", None)
    if example is None:
        raise ValueError(f"{spec} returned a model without example_input; return (model, example_input)")
    names = [str(n) for n in (getattr(model, "class_names", None) or ())]
    return LoadedModel(model.eval(), example, getattr(model, "input_transform", None), spec, names)


class TailService:
    """Decodes requests and runs the tail (or the whole model, for images) on batches."""

    def __init__(self, loaded: LoadedModel, point: str, codecs: Sequence[Codec] = (), device: str = "cpu",
                 max_codecs: int = 16, allow_codec_upload: bool = True,
                 progress: Optional[Callable[[str], None]] = None):
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
        self.tail = tail.to(device)
        self.model = loaded.model.to(device)
        self.allow_codec_upload = allow_codec_upload
        self.max_codecs = max_codecs
        self._codecs: Dict[str, Codec] = {}
        self._pinned: set = set()
        self._lock = threading.Lock()
        self.default_codec_id = ""
        for c in codecs:
            self.add_codec(c, pinned=True)
            self.default_codec_id = self.default_codec_id or c.id
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

    # -- codecs -------------------------------------------------------------------------------
    @property
    def codecs(self) -> Dict[str, Codec]:
        return self._codecs

    def add_codec(self, codec: Codec, pinned: bool = False) -> bool:
        """Adds `codec`; returns whether it was already held. Uploaded codecs beyond
        `max_codecs` push out the least recently added uploaded one."""
        if codec.shape != self.activation_shape:
            raise RequestError("FAILED_PRECONDITION", f"codec {codec.id} codes samples of shape {codec.shape}; "
                               f"the activation at {self.point!r} is {self.activation_shape}")
        with self._lock:
            if codec.id in self._codecs:
                return True
            if pinned:
                self._pinned.add(codec.id)
            else:
                uploaded = [k for k in self._codecs if k not in self._pinned]
                while uploaded and len(uploaded) >= self.max_codecs:
                    del self._codecs[uploaded.pop(0)]
            self._codecs[codec.id] = codec
            return False

    def codec_from_upload(self, codec_id: str, data: bytes) -> Tuple[str, bool]:
        from .._core import CorruptDataError

        if not self.allow_codec_upload:
            raise RequestError("PERMISSION_DENIED", "this server does not take codec uploads (--no-codec-upload)")
        try:
            codec = Codec.from_bytes(data)
        except CorruptDataError as e:
            raise RequestError("INVALID_ARGUMENT", f"CorruptDataError: {e}") from None
        if codec_id and codec_id != codec.id:
            raise RequestError("INVALID_ARGUMENT", f"the codec bytes hash to {codec.id}, not {codec_id}")
        return codec.id, self.add_codec(codec)

    # -- requests -----------------------------------------------------------------------------
    def decode(self, encoding: int, payload: bytes, shape: Sequence[int], codec_id: str):
        """(kind, tensor on the device): kind "tail" for an activation, "model" for an image."""
        import torch

        if encoding == encodings.IMAGE:
            x = encodings.decode_image(payload, self.input_shape, self.loaded.transform)
            return "model", torch.from_numpy(x).to(self.device)
        if encoding == encodings.SPLITANS and self._gpu_decode is not None:
            from .._core import CorruptDataError

            try:
                t = self._gpu_decode(payload, output="torch", max_output_bytes=1 << 30).float()
            except CorruptDataError as e:
                raise RequestError("INVALID_ARGUMENT", f"CorruptDataError: {e}") from None
            encodings._check_shape(t.shape, self.activation_shape, "activation")
            return "tail", t
        a = encodings.decode(encoding, payload, shape, activation_shape=self.activation_shape,
                             codecs=self._codecs, codec_id=codec_id)
        if not a.flags.writeable:  # a view of the request's bytes (float32 sent raw)
            a = a.copy()
        return "tail", torch.from_numpy(a).to(self.device)

    def run(self, kind: str, x) -> np.ndarray:
        import torch

        with torch.no_grad():
            out = (self.tail if kind == "tail" else self.model)(x)
        return out.float().cpu().numpy()


class Item:
    """One request in the batcher: its input, and where its result goes."""

    __slots__ = ("kind", "x", "deadline", "enqueued", "done", "result", "error", "queue_ms", "tail_ms",
                 "batch_size", "cancelled", "callback")

    def __init__(self, kind: str, x, deadline: Optional[float], callback=None):
        self.kind, self.x, self.deadline = kind, x, deadline
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
    """Dynamic batching: a worker takes the first waiting request, gathers more for up to
    `max_delay_s` or `max_batch` samples, and runs each group of equal kind and shape as one
    batch. It waits only while requests are on their way (`incoming`: RPCs accepted and still
    decoding), so a lone request runs at once. The queue holds at most `queue_size` requests; `submit` beyond that raises
    RESOURCE_EXHAUSTED at once (back-pressure: the client backs off instead of piling up)."""

    def __init__(self, service: TailService, max_batch: int = 16, max_delay_s: float = 0.002, queue_size: int = 64):
        self.service = service
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.queue: "queue.Queue[Optional[Item]]" = queue.Queue(maxsize=queue_size)
        self.incoming = 0  # requests decoding now, that will be submitted soon (updated by the caller)
        self.batches = 0
        self.samples = 0
        self._thread = threading.Thread(target=self._loop, name="splitans-batcher", daemon=True)
        self._thread.start()

    def submit(self, item: Item) -> Item:
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            raise RequestError("RESOURCE_EXHAUSTED", f"the server's queue is full ({self.queue.maxsize} requests "
                               "waiting); retry after a back-off") from None
        return item

    def close(self) -> None:
        """Stops after the requests already queued (call once the transport takes no more)."""
        self.queue.put(None)
        self._thread.join()

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self.queue.get()
            if first is None:
                break
            batch = [first]
            n = first.x.shape[0]
            until = time.perf_counter() + self.max_delay_s
            while n < self.max_batch:
                left = until - time.perf_counter()
                try:
                    wait = left > 0 and (self.incoming > 0 or not self.queue.empty())
                    item = self.queue.get(timeout=left) if wait else self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
                n += item.x.shape[0]
            self._run(batch)
        # Drain what is left (graceful shutdown: everything accepted gets an answer).
        rest = []
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                rest.append(item)
        if rest:
            self._run(rest)

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


DEFAULT_TOP_K = 5


def response(request, out: np.ndarray, timing: dict) -> "InferResponse":
    from .proto import pb2

    k = request.top_k or DEFAULT_TOP_K
    idx, val = top_k(out, k)
    r = pb2.InferResponse(request_id=request.request_id, top_k_index=idx.ravel().tolist(),
                          top_k_value=val.ravel().tolist(), output_shape=list(out.shape), timing=pb2.Timing(**timing))
    if request.return_logits:
        r.logits.extend(out.ravel().tolist())
    return r


def replica_name() -> str:
    return f"{os.uname().nodename}:{os.getpid()}"
