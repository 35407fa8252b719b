"""The edge side: run the head, encode the activation, send it, get the tail's result.

>>> client = EdgeClient("localhost:50051", "head.onnx", codec=codec)   # doctest: +SKIP
>>> result = client.infer(x)                                            # doctest: +SKIP
>>> result.top_k_index[0], result.timing["transfer_ms"]                 # doctest: +SKIP

The head is an ONNX file (run by ONNX Runtime: this module and `OnnxHead` import no torch), a
torch module, or any callable from an input batch to the activation.

The codec is agreed once per connection by its full id: the client asks the server which codecs
it holds, uploads its own if the server lacks it (or, with ``codec="server"``, fetches the
server's), and from then on sends each blob with the codec's 8-byte handle (protocol version 2;
a version-1 server gets the id, as before). A server that lost the codec (restarted) says so by
reason (CODEC_UNKNOWN), and the client agrees it again once per request.

Every request has `deadline` seconds (default 60) in all: a call that fails with UNAVAILABLE
(the server is down, restarting or draining), CANCELLED (a call the server dropped as it
stopped), DEADLINE_EXCEEDED of one attempt, or RESOURCE_EXHAUSTED for load (reason OVERLOADED)
is sent again after an exponential back-off (from `backoff`, at most `max_backoff`, with
jitter) until it is answered or the deadline is spent. ``Infer`` is idempotent, so this is
safe; a stream that breaks is reopened and its unanswered requests are sent again.

TLS: ``root_certs=`` (the CA that signed the server's certificate; ``tls=True`` for the
system's roots), and ``client_cert=``/``client_key=`` for mutual TLS. ``token=`` sends
``authorization: Bearer TOKEN`` with every call.
"""

from __future__ import annotations

import itertools
import os
import random
import sys
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Union

import grpc
import numpy as np

from .._fitted import Codec
from . import encodings
from .auth import channel_credentials, is_loopback, target_host
from .proto import pb2, pb2_grpc

__all__ = ["EdgeClient", "RemoteError", "Result"]

DEFAULT_TOP_K = 5  # what the server answers for top_k 0 (the .proto's)
REASON_KEY = "splitans-error-bin"


class RemoteError(Exception):
    """The server answered a request with an error status. `reason`: the name of the .proto's
    ``ErrorReason`` the server gave ("" when none)."""

    def __init__(self, code: grpc.StatusCode, message: str, reason: str = ""):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.reason = reason

    @classmethod
    def of(cls, e: grpc.RpcError) -> "RemoteError":
        reason = ""
        try:
            for k, v in e.trailing_metadata() or ():
                if k == REASON_KEY:
                    reason = _reason_name(pb2.ErrorDetail.FromString(v).reason)
        except Exception:  # a server's trailing metadata we cannot read: no reason
            reason = ""
        return cls(e.code(), e.details() or "", reason)


def _reason_name(value: int) -> str:
    try:
        return pb2.ErrorReason.Name(value) if value else ""
    except ValueError:  # a reason newer than these stubs
        return str(value)


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

    `deadline`: seconds each request (and `connect`) may take in all, retries included;
    `timeout`: the most one attempt may take (default: what is left of the deadline);
    `retries`: a cap on the attempts after the first (default: none, the deadline alone).
    """

    def __init__(self, target: str, model_head: Union[Callable, str, "os.PathLike[str]", None] = None,
                 codec: Union[Codec, str, None] = None, *,
                 strategy: Optional[str] = None, bits: int = 8, axis: Optional[int] = None, top_k: int = DEFAULT_TOP_K,
                 return_logits: bool = False, deadline: float = 60.0, timeout: Optional[float] = None,
                 retries: Optional[int] = None, backoff: float = 0.05, max_backoff: float = 1.0,
                 max_message_bytes: int = 32 << 20, channel: Optional[grpc.Channel] = None,
                 tls: Optional[bool] = None, root_certs=None, client_cert=None, client_key=None,
                 server_name: Optional[str] = None, token: Optional[str] = None):
        if strategy is None:
            strategy = "codec" if codec is not None else "auto"
        if strategy not in encodings.STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; one of {', '.join(encodings.STRATEGIES)}")
        if strategy == "codec" and codec is None:
            raise ValueError("strategy 'codec' needs codec=<splitans.Codec> or codec='server'")
        if not deadline > 0:
            raise ValueError(f"deadline must be positive, not {deadline}")
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
        # The container strategies' options, checked here, once, not at the first send.
        self.options = (encodings.activation_options(strategy, bits, axis)
                        if strategy in encodings.CONTAINER_STRATEGIES else None)
        self.top_k, self.return_logits = top_k, return_logits
        self.deadline, self.timeout, self.retries = deadline, timeout, retries
        self.backoff, self.max_backoff = backoff, max_backoff
        secure = tls if tls is not None else any(v is not None for v in (root_certs, client_cert, client_key))
        if token is not None and not secure and channel is None and not is_loopback(target_host(target)):
            warnings.warn(f"sending a bearer token to {target} in plaintext: anyone on the path can read it; "
                          "use TLS (root_certs=...)", stacklevel=2)
        self._metadata = (("authorization", f"Bearer {token}"),) if token is not None else None
        options = [("grpc.max_receive_message_length", max_message_bytes),
                   ("grpc.max_send_message_length", max_message_bytes),
                   # A restarted server is found again within a second, not after gRPC's default
                   # reconnect back-off of up to 2 minutes.
                   ("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                   ("grpc.max_reconnect_backoff_ms", 1000),
                   ("grpc.keepalive_time_ms", 60_000), ("grpc.keepalive_timeout_ms", 20_000),
                   # A connection of its own: gRPC would share one among a process's channels to
                   # the same server, which then counts them as one client for its limits.
                   ("grpc.use_local_subchannel_pool", 1)]
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        if channel is not None:
            self.channel = channel
        elif secure:
            self.channel = grpc.secure_channel(target, channel_credentials(root_certs, client_cert, client_key), options)
        else:
            self.channel = grpc.insecure_channel(target, options=options)
        self.stub = pb2_grpc.SplitInferenceStub(self.channel)
        self.info: Optional[Any] = None
        self.protocol = 0  # the server's protocol version, once connected
        self.class_names: List[str] = []  # the server's names of the output classes, once connected
        self.retried = 0  # requests sent again (after UNAVAILABLE, CANCELLED, an overload)
        self.uploads = 0  # times this client gave the server its codec
        self._handle: Optional[int] = None  # the agreed codec's handle (protocol 2)
        self._ids = itertools.count()
        self._seqs = itertools.count(1)
        self._lock = threading.Lock()

    # -- setup ----------------------------------------------------------------------------------
    def connect(self, force: bool = False) -> Any:
        """Asks the server what it holds and agrees on the codec (once; `force` again)."""
        with self._lock:
            if self.info is not None and not force:
                return self.info
            md = self._metadata
            info = self._retrying(lambda t: self.stub.Info(pb2.InfoRequest(), timeout=t, metadata=md))
            self.protocol = info.protocol_version or 1
            handles = dict(zip(info.codec_ids, info.codec_handles))
            handle = None
            if self.strategy == "codec":
                if isinstance(self.codec, str):
                    if self.codec != "server":
                        raise ValueError(f"codec must be a splitans.Codec, 'server' or None, not {self.codec!r}")
                    got = self._retrying(lambda t: self.stub.GetCodec(pb2.GetCodecRequest(), timeout=t, metadata=md))
                    codec = Codec.from_bytes(got.data)
                    if codec.id != got.codec_id:
                        raise RemoteError(grpc.StatusCode.DATA_LOSS, f"codec bytes hash to {codec.id}, not {got.codec_id}")
                    self.codec = codec
                    handle = got.codec_handle
                elif self.codec.id not in info.codec_ids or force:
                    msg = pb2.CodecBytes(codec_id=self.codec.id, data=self.codec.to_bytes())
                    r = self._retrying(lambda t: self.stub.PutCodec(msg, timeout=t, metadata=md))
                    self.uploads += 1
                    handle = r.codec_handle
                    if self.codec.id not in info.codec_ids:  # what the server now holds for this client
                        info.codec_ids.append(self.codec.id)
                        info.codec_handles.append(handle)
                else:
                    handle = handles.get(self.codec.id)
            self._handle = handle if self.protocol >= 2 else None
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
    def _address(self, req) -> None:
        """Names the codec in a CODEC request as the server understands: its handle (protocol 2)
        or its id (protocol 1)."""
        if not (req.HasField("codec_handle") or req.encoding == pb2.CODEC):
            return
        req.ClearField("codec_id")
        req.ClearField("codec_handle")
        if self._handle is not None:
            req.encoding = pb2.ENCODING_UNSPECIFIED
            req.codec_handle = self._handle
        else:
            req.encoding = pb2.CODEC
            req.codec_id = self.codec.id

    def encode(self, x: Any, index: Optional[int] = None):
        """(request, head_ms, encode_ms) for one input: run the head, encode the activation.
        Call `connect` first (the request names the agreed codec)."""
        t0 = time.perf_counter()
        if self.strategy in encodings.IMAGE_STRATEGIES:
            t1 = t0
            encoding, payload, shape = encodings.encode_image(self.strategy, x)
        else:
            a = x if self.head is None else run_head(self.head, x)
            t1 = time.perf_counter()
            codec = self.codec if isinstance(self.codec, Codec) else None
            encoding, payload, shape = encodings.encode(self.strategy, a, codec=codec, options=self.options)
        t2 = time.perf_counter()
        req = pb2.InferRequest(payload=payload)
        if encoding == encodings.CODEC:
            req.encoding = pb2.CODEC
            self._address(req)  # no shape: the codec knows it
        else:
            req.encoding = encoding
            req.shape.extend(shape)
        if self.top_k != DEFAULT_TOP_K:
            req.top_k = self.top_k
        if self.return_logits:
            req.return_logits = True
        if self.protocol < 2:  # a version-1 server matches stream answers by request_id
            req.request_id = f"{index if index is not None else next(self._ids)}-{uuid.uuid4().hex[:8]}"
        return req, (t1 - t0) * 1e3, (t2 - t1) * 1e3

    def _retryable(self, e: RemoteError) -> bool:
        c = grpc.StatusCode
        if e.code in (c.UNAVAILABLE, c.CANCELLED, c.DEADLINE_EXCEEDED):
            return True
        # RESOURCE_EXHAUSTED for load, not for a request over a fixed limit (TOO_LARGE, or gRPC's
        # own message-size refusal, which carries no reason); gRPC's own concurrent-call limit
        # says so only in its text.
        return e.code == c.RESOURCE_EXHAUSTED and (e.reason == "OVERLOADED"
                                                   or e.message.startswith("Concurrent RPC limit exceeded"))

    def _pause(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * 2**attempt) * (1 + 0.5 * random.random())

    def _retrying(self, call: Callable[[float], Any], start: Optional[float] = None):
        """``call(timeout)`` until it succeeds, or fails for good, or the deadline (from
        `start`) is spent; then the last error, saying how long it was tried."""
        end = (start if start is not None else time.monotonic()) + self.deadline
        last: Optional[RemoteError] = None
        for attempt in itertools.count():
            left = end - time.monotonic()
            if left <= 0.005:
                if last is None:
                    raise RemoteError(grpc.StatusCode.DEADLINE_EXCEEDED, f"no answer within the deadline of "
                                      f"{self.deadline:g} s")
                raise RemoteError(last.code, f"{last.message} (still, after {attempt} attempts in {self.deadline:g} s)",
                                  last.reason)
            if attempt:
                self.retried += 1
            try:
                return call(min(self.timeout, left) if self.timeout else left)
            except grpc.RpcError as rpc:
                last = RemoteError.of(rpc)
            if not self._retryable(last) or (self.retries is not None and attempt >= self.retries):
                raise last
            time.sleep(max(0.0, min(self._pause(attempt), end - time.monotonic() - 0.005)))

    def _codec_lost(self, e: RemoteError) -> bool:
        if e.code != grpc.StatusCode.FAILED_PRECONDITION or self.strategy != "codec":
            return False
        # A version-1 server says so only in its text.
        return e.reason == "CODEC_UNKNOWN" or (self.protocol < 2 and "unknown codec id" in e.message)

    def _result(self, r, index: int, head_ms: float, encode_ms: float, rpc_ms: float, size: int) -> Result:
        if r.error_code:
            return Result(index, np.empty((0, 0), np.int64), np.empty((0, 0), np.float32), None,
                          payload_bytes=size, error=self._stream_error(r))
        n = r.output_shape[0] if r.output_shape else 1
        t = r.timing
        server = t.queue_ms + t.decode_ms + t.tail_ms
        timing = dict(head_ms=head_ms, encode_ms=encode_ms, rpc_ms=rpc_ms, queue_ms=t.queue_ms,
                      decode_ms=t.decode_ms, tail_ms=t.tail_ms, transfer_ms=max(0.0, rpc_ms - server),
                      batch_size=t.batch_size, total_ms=head_ms + encode_ms + rpc_ms)
        logits = np.asarray(r.logits, np.float32).reshape(tuple(r.output_shape)) if r.logits else None
        return Result(index, np.asarray(r.top_k_index, np.int64).reshape(n, -1),
                      np.asarray(r.top_k_value, np.float32).reshape(n, -1), logits, timing, size, t.replica)

    @staticmethod
    def _stream_error(r) -> RemoteError:
        return RemoteError(_CODES.get(r.error_code, grpc.StatusCode.UNKNOWN), r.error_message,
                           _reason_name(r.error_reason))

    def infer(self, x: Any, index: int = 0) -> Result:
        """One input (batch axis first, batch 1 for a fitted codec; an H x W x C uint8 image for
        ``"jpeg"``/``"png"``) to its result. Raises `RemoteError` on an error status."""
        self.connect()
        req, head_ms, encode_ms = self.encode(x, index)
        return self.send(req, index, head_ms, encode_ms)

    def send(self, req, index: int = 0, head_ms: float = 0.0, encode_ms: float = 0.0,
             start: Optional[float] = None) -> Result:
        """Sends an encoded request (`encode`), retrying under the deadline; agrees the codec
        again once if the server lost it (restarted, or a replica that never saw it)."""
        start = start if start is not None else time.monotonic()
        reagreed = False
        while True:
            t = time.perf_counter()
            try:
                r = self._retrying(lambda left: self.stub.Infer(req, timeout=left, metadata=self._metadata), start)
            except RemoteError as e:
                if self._codec_lost(e) and not reagreed:
                    self.connect(force=True)
                    self._address(req)
                    reagreed = True
                    continue
                raise
            return self._result(r, index, head_ms, encode_ms, (time.perf_counter() - t) * 1e3, len(req.payload))

    def stream(self, inputs: Iterable[Any]) -> Iterator[Result]:
        """Results for a sequence of inputs over one streaming call, in completion order
        (``result.index`` is the input's position). Heads and encodes run while earlier
        requests travel. A stream the server ends (UNAVAILABLE: restarting, draining, idle;
        CANCELLED) is reopened and every unanswered request sent again, for up to `deadline`
        seconds each; a request answered with a retryable error on its own (a Ray replica died
        under it, an overload) or for a lost codec is sent again as a unary call."""
        self.connect()
        source = iter(enumerate(inputs))
        lock = threading.Lock()
        # key -> (request, index, head_ms, encode_ms, sent_at, first_sent (monotonic))
        pending: Dict[Any, tuple] = {}
        state: Dict[str, Any] = {"generation": 0}

        def key(msg):
            return msg.seq if self.protocol >= 2 else msg.request_id

        def requests(generation: int, resend: List[tuple]):
            # The requests sent again are in `pending` already: if this call fails before they
            # are all through, the next one sends what is left.
            for entry in resend:
                with lock:
                    if state["generation"] != generation:
                        return
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
                    if self.protocol >= 2:
                        req.seq = next(self._seqs)
                    pending[key(req)] = (req, index, head_ms, encode_ms, time.perf_counter(), time.monotonic())
                yield req

        resend: List[tuple] = []
        attempt = 0
        while True:
            with lock:
                generation = state["generation"]
                now = time.perf_counter()
                for entry in resend:
                    pending[key(entry[0])] = entry[:4] + (now, entry[5])
            call = self.stub.InferStream(requests(generation, resend), metadata=self._metadata)
            try:
                for r in call:
                    with lock:
                        entry = pending.pop(key(r), None)
                    if entry is None:
                        continue
                    attempt = 0  # answers come: the stream works
                    req, index, head_ms, encode_ms, sent, first = entry
                    if r.error_code:
                        err = self._stream_error(r)
                        if self._retryable(err) or self._codec_lost(err):
                            # This request alone failed: send it again on its own, with the unary
                            # call's retries (and its codec agreement).
                            self.retried += 1
                            try:
                                yield self.send(req, index, head_ms, encode_ms, start=first)
                            except RemoteError as e:
                                yield Result(index, np.empty((0, 0), np.int64), np.empty((0, 0), np.float32), None,
                                             payload_bytes=len(req.payload), error=e)
                            continue
                    yield self._result(r, index, head_ms, encode_ms, (time.perf_counter() - sent) * 1e3, len(req.payload))
                if state.get("failure") is not None:
                    raise state["failure"]
                if not pending:
                    return
                # The server ended the stream with requests unanswered.
                error = RemoteError(grpc.StatusCode.UNAVAILABLE, "the stream ended with requests unanswered")
            except grpc.RpcError as e:
                if state.get("failure") is not None:
                    raise state["failure"]
                error = RemoteError.of(e)
                if not self._retryable(error) or (self.retries is not None and attempt >= self.retries):
                    call.cancel()
                    raise error from None
            with lock:
                state["generation"] += 1
                resend = sorted(pending.values(), key=lambda entry: entry[5])
                pending.clear()
            if resend and time.monotonic() - resend[0][5] > self.deadline:
                raise RemoteError(error.code, f"{error.message} (a request unanswered for {self.deadline:g} s)",
                                  error.reason)
            self.retried += len(resend)
            if error.reason != "STREAM_IDLE":  # an idle stream closed: reopen at once
                time.sleep(self._pause(attempt))
                attempt += 1

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
