"""The edge side: run the head, encode the activation, send it, get the tail's result.

>>> client = EdgeClient("localhost:50051", "head.onnx", codec=codec)   # doctest: +SKIP
>>> result = client.infer(x)                                            # doctest: +SKIP
>>> result.top_k_index[0], result.timing["transfer_ms"]                 # doctest: +SKIP

The head is an ONNX file (run by ONNX Runtime: this module and `OnnxHead` import no torch), a
torch module, or any callable from an input batch to the activation.

The codec is agreed once per connection by id: the client asks the server which codecs it
holds, uploads its own if the server lacks it (or, with ``codec="server"``, fetches the
server's), and sends only blobs after that. ``Infer`` is idempotent, so a call that fails with
UNAVAILABLE is sent again (up to `retries` times, with exponential back-off); a stream that
breaks is reopened and its unanswered requests are sent again.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Union

import grpc
import numpy as np

from .._fitted import Codec
from . import encodings
from .proto import pb2, pb2_grpc

__all__ = ["EdgeClient", "RemoteError", "Result"]


class RemoteError(Exception):
    """The server answered a request with an error status."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


@dataclass
class Result:
    index: int
    top_k_index: np.ndarray  # (batch, k), best first
    top_k_value: np.ndarray
    logits: Optional[np.ndarray]
    timing: Dict[str, float] = field(default_factory=dict)
    payload_bytes: int = 0
    replica: str = ""
    error: Optional[RemoteError] = None


_CODES = {c.value[0]: c for c in grpc.StatusCode}


class EdgeClient:
    """Sends the head's activations of a split model to a `splitans serve` server.

    `model_head`: the path of an ONNX file (the head exported by ``splitans.split(...,
    onnx=PATH)``, run by ONNX Runtime), a torch module (the head from ``splitans.split``, run
    under ``torch.no_grad``), or any callable from an input batch to the activation; None when
    the inputs are already activations, or with an image strategy. `codec`: a fitted ``splitans.Codec`` (the
    ``"codec"`` strategy), ``"server"`` to use the server's default codec, or None.
    `strategy`: one of ``encodings.STRATEGIES`` (default: ``"codec"`` with a codec, else
    ``"auto"``, the self-contained ``splitans.compress``); `bits`/`axis` apply to
    ``"auto"``/``"best"``.
    """

    def __init__(self, target: str, model_head: Union[Callable, str, "os.PathLike[str]", None] = None,
                 codec: Union[Codec, str, None] = None, *,
                 strategy: Optional[str] = None, bits: int = 8, axis: Optional[int] = None, top_k: int = 5,
                 return_logits: bool = False, timeout: float = 30.0, retries: int = 5, backoff: float = 0.05,
                 max_message_bytes: int = 32 << 20, channel: Optional[grpc.Channel] = None):
        if strategy is None:
            strategy = "codec" if codec is not None else "auto"
        if strategy not in encodings.STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; one of {', '.join(encodings.STRATEGIES)}")
        if strategy == "codec" and codec is None:
            raise ValueError("strategy 'codec' needs codec=<splitans.Codec> or codec='server'")
        if isinstance(model_head, (str, os.PathLike)):
            from .onnx_head import OnnxHead

            model_head = OnnxHead(model_head)
        elif model_head is not None and not callable(model_head):
            raise TypeError(f"model_head must be an ONNX file's path or a callable, not {type(model_head).__name__}")
        self.target = target
        self.head = model_head
        self.codec = codec
        self.strategy = strategy
        self.bits, self.axis = bits, axis
        self.top_k, self.return_logits = top_k, return_logits
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.channel = channel or grpc.insecure_channel(target, options=[
            ("grpc.max_receive_message_length", max_message_bytes), ("grpc.max_send_message_length", max_message_bytes)])
        self.stub = pb2_grpc.SplitInferenceStub(self.channel)
        self.info: Optional[Any] = None
        self.class_names: List[str] = []  # the server's names of the output classes, once connected
        self.retried = 0  # requests sent again after UNAVAILABLE
        self.uploads = 0  # times this client gave the server its codec
        self._ids = itertools.count()
        self._lock = threading.Lock()

    # -- setup ----------------------------------------------------------------------------------
    def connect(self, force: bool = False) -> Any:
        """Asks the server what it holds and agrees on the codec (once; `force` again)."""
        with self._lock:
            if self.info is not None and not force:
                return self.info
            info = self._retrying(lambda: self.stub.Info(pb2.InfoRequest(), timeout=self.timeout))
            if self.strategy == "codec":
                if isinstance(self.codec, str):
                    if self.codec != "server":
                        raise ValueError(f"codec must be a splitans.Codec, 'server' or None, not {self.codec!r}")
                    got = self._retrying(lambda: self.stub.GetCodec(pb2.GetCodecRequest(), timeout=self.timeout))
                    codec = Codec.from_bytes(got.data)
                    if codec.id != got.codec_id:
                        raise RemoteError(grpc.StatusCode.DATA_LOSS, f"codec bytes hash to {codec.id}, not {got.codec_id}")
                    self.codec = codec
                elif self.codec.id not in info.codec_ids or force:
                    msg = pb2.CodecBytes(codec_id=self.codec.id, data=self.codec.to_bytes())
                    self._retrying(lambda: self.stub.PutCodec(msg, timeout=self.timeout))
                    self.uploads += 1
                    info = self._retrying(lambda: self.stub.Info(pb2.InfoRequest(), timeout=self.timeout))
            self.info = info
            self.class_names = list(info.class_names)
            return info

    def class_name(self, index: int) -> str:
        """The server's name for output class `index` ("" when it names none)."""
        return self.class_names[index] if 0 <= index < len(self.class_names) else ""

    def close(self) -> None:
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- requests -------------------------------------------------------------------------------
    def encode(self, x: Any, index: Optional[int] = None):
        """(request, head_ms, encode_ms) for one input: run the head, encode the activation."""
        rid = f"{index if index is not None else next(self._ids)}-{uuid.uuid4().hex[:8]}"
        t0 = time.perf_counter()
        if self.strategy in encodings.IMAGE_STRATEGIES:
            t1 = t0
            encoding, payload, shape = encodings.encode_image(self.strategy, x)
        else:
            a = x if self.head is None else run_head(self.head, x)
            t1 = time.perf_counter()
            codec = self.codec if isinstance(self.codec, Codec) else None
            encoding, payload, shape = encodings.encode(self.strategy, a, codec=codec, bits=self.bits, axis=self.axis)
        t2 = time.perf_counter()
        req = pb2.InferRequest(request_id=rid, encoding=encoding, payload=payload, shape=list(shape),
                               codec_id=self.codec.id if encoding == encodings.CODEC else "", top_k=self.top_k,
                               return_logits=self.return_logits)
        return req, (t1 - t0) * 1e3, (t2 - t1) * 1e3

    def _retrying(self, call: Callable):
        for attempt in itertools.count():
            try:
                return call()
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE or attempt >= self.retries:
                    raise RemoteError(e.code(), e.details() or "") from None
                self.retried += 1
                time.sleep(self.backoff * 2**attempt)

    def _result(self, r, index: int, head_ms: float, encode_ms: float, rpc_ms: float, size: int) -> Result:
        if r.error_code:
            return Result(index, np.empty((0, 0), np.int64), np.empty((0, 0), np.float32), None,
                          payload_bytes=size, error=RemoteError(_CODES.get(r.error_code, grpc.StatusCode.UNKNOWN),
                                                               r.error_message))
        n = r.output_shape[0] if r.output_shape else 1
        t = r.timing
        server = t.queue_ms + t.decode_ms + t.tail_ms
        timing = dict(head_ms=head_ms, encode_ms=encode_ms, rpc_ms=rpc_ms, queue_ms=t.queue_ms,
                      decode_ms=t.decode_ms, tail_ms=t.tail_ms, transfer_ms=max(0.0, rpc_ms - server),
                      batch_size=t.batch_size, total_ms=head_ms + encode_ms + rpc_ms)
        logits = np.asarray(r.logits, np.float32).reshape(tuple(r.output_shape)) if r.logits else None
        return Result(index, np.asarray(r.top_k_index, np.int64).reshape(n, -1),
                      np.asarray(r.top_k_value, np.float32).reshape(n, -1), logits, timing, size, t.replica)

    def infer(self, x: Any, index: int = 0) -> Result:
        """One input (batch axis first, batch 1 for a fitted codec; an H x W x C uint8 image for
        ``"jpeg"``/``"png"``) to its result. Raises `RemoteError` on an error status."""
        self.connect()
        req, head_ms, encode_ms = self.encode(x, index)
        return self.send(req, index, head_ms, encode_ms)

    def send(self, req, index: int = 0, head_ms: float = 0.0, encode_ms: float = 0.0) -> Result:
        """Sends an encoded request (`encode`), retrying on UNAVAILABLE; re-agrees the codec
        once if the server lost it (restarted, or a replica that never saw it)."""
        reagreed = False
        while True:
            t = time.perf_counter()
            try:
                r = self._retrying(lambda: self.stub.Infer(req, timeout=self.timeout))
            except RemoteError as e:
                if e.code == grpc.StatusCode.FAILED_PRECONDITION and "unknown codec id" in e.message and not reagreed:
                    self.connect(force=True)
                    reagreed = True
                    continue
                raise
            return self._result(r, index, head_ms, encode_ms, (time.perf_counter() - t) * 1e3, len(req.payload))

    def stream(self, inputs: Iterable[Any]) -> Iterator[Result]:
        """Results for a sequence of inputs over one streaming call, in completion order
        (``result.index`` is the input's position). Heads and encodes run while earlier
        requests travel; a stream that breaks with UNAVAILABLE is reopened and every
        unanswered request is sent again, and a request answered UNAVAILABLE on its own is
        sent again as a unary call."""
        self.connect()
        source = iter(enumerate(inputs))
        lock = threading.Lock()
        pending: Dict[str, tuple] = {}  # request id -> (request, index, head_ms, encode_ms, sent_at)
        state = {"generation": 0}

        def requests(generation: int, resend: List[tuple]):
            for entry in resend:
                pending[entry[0].request_id] = entry[:4] + (time.perf_counter(),)
                yield entry[0]
            while True:
                with lock:
                    if state["generation"] != generation:
                        return
                    try:
                        index, x = next(source)
                        req, head_ms, encode_ms = self.encode(x, index)
                    except StopIteration:
                        return
                    except Exception as e:  # gRPC would hide it as "Exception iterating requests!"
                        state["failure"] = e
                        return
                    pending[req.request_id] = (req, index, head_ms, encode_ms, time.perf_counter())
                yield req

        resend: List[tuple] = []
        for attempt in itertools.count():
            generation = state["generation"]
            call = self.stub.InferStream(requests(generation, resend), timeout=None)
            try:
                for r in call:
                    entry = pending.pop(r.request_id, None)
                    if entry is None:
                        continue
                    req, index, head_ms, encode_ms, sent = entry
                    if r.error_code == grpc.StatusCode.UNAVAILABLE.value[0]:
                        # This request alone failed (a Ray replica died under it): send it again
                        # on its own, with the unary call's retries.
                        self.retried += 1
                        yield self.send(req, index, head_ms, encode_ms)
                        continue
                    yield self._result(r, index, head_ms, encode_ms, (time.perf_counter() - sent) * 1e3, len(req.payload))
                if state.get("failure") is not None:
                    raise state["failure"]
                if not pending:
                    return
                error = grpc.StatusCode.UNAVAILABLE  # the server ended the stream with requests unanswered
            except grpc.RpcError as e:
                if state.get("failure") is not None:
                    raise state["failure"]
                error = e.code()
                if error != grpc.StatusCode.UNAVAILABLE or attempt >= self.retries:
                    call.cancel()
                    raise RemoteError(error, e.details() or "") from None
            with lock:
                state["generation"] += 1
                resend = list(pending.values())
                pending.clear()
            self.retried += len(resend)
            time.sleep(self.backoff * 2**attempt)

    def infer_many(self, inputs: Iterable[Any]) -> List[Result]:
        """`stream`, collected in input order; raises the first `RemoteError`."""
        results = sorted(self.stream(inputs), key=lambda r: r.index)
        for r in results:
            if r.error is not None:
                raise r.error
        return results


def run_head(head: Callable, x: Any) -> Any:
    """``head(x)``; a torch module runs under ``torch.no_grad`` with a numpy input made a tensor.
    Imports torch only when `head` is a torch module, which means torch is loaded already."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(head, torch.nn.Module):
        with torch.no_grad():
            return head(torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x)
    return head(x)
