"""The gRPC server: `splitans serve`.

`Servicer` speaks the protocol of ``splitans_runtime.proto`` (protobuf lives here and nowhere
below) over a backend that does the work (`service.Backend`): `LocalBackend` (this process:
decode, then the fair `Batcher` runs the tail) or `ray_serve.RayBackend` (the tail on Ray Serve
replicas). It holds the one `CodecRegistry` of the server, so every backend sees the same codecs
with the same owners. Around it:

- who may call (`auth`): TLS or mutual TLS, bearer tokens checked by an interceptor, codec
  uploads only from authenticated clients (or off), loopback unless told otherwise;
- fairness (`Policy`): a cap on concurrent calls per connection (HTTP/2), on streams per client
  and in all (the rest of the workers stay for unary calls), an idle time after which a stream
  that sends nothing is closed, keepalive pings that find dead peers, and the batcher's fair
  queue;
- the standard gRPC health service (``""``: the process is up; ``splitans.runtime.v1.SplitInference``:
  the model is loaded and ready), open without a token;
- a graceful stop: health NOT_SERVING, streams finish what they took and end UNAVAILABLE
  (reason DRAINING), gRPC stops taking calls (GOAWAY) and lets those in flight finish for
  `grace` seconds, then the batcher drains.

A message that does not parse is INVALID_ARGUMENT (reason MALFORMED), not gRPC's INTERNAL.
"""

from __future__ import annotations

import queue
import threading
import time
import warnings
from concurrent import futures
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from .._fitted import Codec
from .auth import Auth, Identity, is_loopback, server_credentials
from .encodings import RequestError
from .proto import SERVICE_NAME, pb2
from .registry import CodecRegistry, handle_of
from .service import DEFAULT_TOP_K, Batcher, Item, Reply, Request, TailService, load_model, replica_name, top_k

__all__ = ["InsecureServerWarning", "LocalBackend", "Policy", "Server", "Servicer", "serve"]

PROTOCOL_VERSION = 2
DEFAULT_MAX_MESSAGE_BYTES = 32 << 20
REASON_KEY = "splitans-error-bin"
_ENCODINGS = [pb2.SPLITANS, pb2.CODEC, pb2.FLOAT32, pb2.FLOAT16, pb2.ZSTD_FLOAT16, pb2.IMAGE]
_UPLOAD_MODES = ("auto", "authenticated", "on", "off")


class InsecureServerWarning(UserWarning):
    """A server that listens beyond loopback in plaintext, or without authentication."""


@dataclass(frozen=True)
class Policy:
    """What the gRPC front allows, and for how long.

    - `max_message_bytes`: the largest request (gRPC refuses larger with RESOURCE_EXHAUSTED).
    - `workers`: concurrent calls the server runs (one thread each); beyond, RESOURCE_EXHAUSTED.
    - `streams_per_connection`: concurrent calls on one connection (HTTP/2's
      SETTINGS_MAX_CONCURRENT_STREAMS), a backstop; beyond, the client's further calls wait their
      turn. Kept high: the server counts a call until its handler returns, so a client whose
      calls end fast (cancelled streams) can run past a low cap and get REFUSED_STREAM.
    - `streams_per_client`: InferStream calls one client holds at once; `max_streams` in all
      (default half the workers, so unary calls always have the other half); beyond either,
      RESOURCE_EXHAUSTED (reason OVERLOADED). An anonymous client is its connection, so this is
      also the cap on streams per connection.
    - `stream_idle_s`: a stream with nothing in flight that sends nothing for this long is ended
      UNAVAILABLE (reason STREAM_IDLE); the client reopens it when it has more to send.
    - `keepalive_s`, `keepalive_timeout_s`: the server pings a connection with calls open after
      this long without traffic and drops it when the ping is not answered in time (a client
      that vanished frees its calls); clients may ping at most every `min_client_ping_s`.
    - `connection_idle_s`: a connection without calls for this long is closed (GOAWAY).
    - `codec_upload`: ``"authenticated"`` (only clients that passed token or certificate
      authentication), ``"on"`` (any client), ``"off"``; ``"auto"``: authenticated where the
      server authenticates, on where it listens on loopback only, else off.
    - `codecs_per_client`, `max_codecs`: uploaded codecs one client holds, and the server
      (`registry.CodecRegistry`).
    """

    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    workers: int = 64
    streams_per_connection: int = 100
    streams_per_client: int = 8
    max_streams: Optional[int] = None
    stream_idle_s: float = 30.0
    stream_window: int = 16
    keepalive_s: float = 60.0
    keepalive_timeout_s: float = 20.0
    min_client_ping_s: float = 10.0
    connection_idle_s: float = 300.0
    codec_upload: str = "auto"
    codecs_per_client: int = 16
    max_codecs: int = 256

    def __post_init__(self):
        if self.codec_upload not in _UPLOAD_MODES:
            raise ValueError(f"codec_upload is one of {', '.join(_UPLOAD_MODES)}, not {self.codec_upload!r}")
        for name in ("workers", "streams_per_connection", "streams_per_client", "stream_window", "codecs_per_client",
                     "max_codecs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        for name in ("stream_idle_s", "keepalive_s", "keepalive_timeout_s", "connection_idle_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")

    @property
    def stream_slots(self) -> int:
        return self.max_streams if self.max_streams is not None else max(1, self.workers // 2)

    def grpc_options(self) -> list:
        ms = lambda s: int(s * 1000)  # noqa: E731
        return [("grpc.max_receive_message_length", self.max_message_bytes),
                ("grpc.max_send_message_length", self.max_message_bytes),
                ("grpc.so_reuseport", 0),
                ("grpc.max_concurrent_streams", self.streams_per_connection),
                ("grpc.keepalive_time_ms", ms(self.keepalive_s)),
                ("grpc.keepalive_timeout_ms", ms(self.keepalive_timeout_s)),
                ("grpc.http2.min_recv_ping_interval_without_data_ms", ms(self.min_client_ping_s)),
                ("grpc.http2.max_ping_strikes", 2),
                ("grpc.max_connection_idle_ms", ms(self.connection_idle_s))]


def _deadline(context) -> Optional[float]:
    left = context.time_remaining()
    return None if left is None or left > 1e8 else time.perf_counter() + left


class LocalBackend:
    """Decode in the RPC's thread (the codec releases the interpreter), run the tail in batches."""

    def __init__(self, service: TailService, max_batch: int = 16, max_delay_s: float = 0.002, queue_size: int = 64):
        self.service = service
        self.batcher = Batcher(service, max_batch=max_batch, max_delay_s=max_delay_s, queue_size=queue_size)
        self.max_batch = max_batch
        self.activation_shape = service.activation_shape
        self._lock = threading.Lock()

    def describe(self) -> dict:
        s = self.service
        return dict(model=s.loaded.spec, split=s.point, device=s.device, activation_shape=list(s.activation_shape),
                    max_batch=self.max_batch, class_names=list(s.class_names))

    def infer(self, request: Request, deadline: Optional[float], active: Callable[[], bool], client: str = "") -> Reply:
        t = time.perf_counter()
        with self._lock:
            self.batcher.incoming += 1
        try:
            kind, x = self.service.decode(request)
            decode_ms = (time.perf_counter() - t) * 1e3
            item = self.batcher.submit(Item(kind, x, deadline, client=client))
        finally:
            with self._lock:
                self.batcher.incoming -= 1
        while not item.done.wait(0.05):
            if deadline is not None and time.perf_counter() >= deadline:
                item.cancelled = True
                raise RequestError("DEADLINE_EXCEEDED", "the deadline passed before the tail ran")
            if not active():
                item.cancelled = True
                raise RequestError("CANCELLED", "the client went away")
        if item.error is not None:
            raise item.error
        return Reply(item.result, dict(queue_ms=item.queue_ms, decode_ms=decode_ms, tail_ms=item.tail_ms,
                                       batch_size=item.batch_size, replica=replica_name()))

    def close(self) -> None:
        self.batcher.close()


class Malformed:
    """A message that did not parse (what the deserializer hands the servicer instead)."""

    def __init__(self, kind: str, error: Exception):
        self.kind, self.error = kind, error

    def refusal(self) -> RequestError:
        return RequestError("INVALID_ARGUMENT", f"not a valid {self.kind} message: {self.error}", reason="MALFORMED")


def _parser(cls):
    def parse(data: bytes):
        try:
            return cls.FromString(data)
        except (DecodeError, ValueError) as e:
            return Malformed(cls.__name__, e)

    return parse


def _generic_handler(servicer: "Servicer") -> grpc.GenericRpcHandler:
    """The service's methods, with deserializers that hand over a `Malformed` instead of failing."""
    rpc = {
        "Infer": grpc.unary_unary_rpc_method_handler(servicer.Infer, _parser(pb2.InferRequest),
                                                     pb2.InferResponse.SerializeToString),
        "InferStream": grpc.stream_stream_rpc_method_handler(servicer.InferStream, _parser(pb2.InferRequest),
                                                             pb2.InferResponse.SerializeToString),
        "Info": grpc.unary_unary_rpc_method_handler(servicer.Info, _parser(pb2.InfoRequest),
                                                    pb2.InfoResponse.SerializeToString),
        "GetCodec": grpc.unary_unary_rpc_method_handler(servicer.GetCodec, _parser(pb2.GetCodecRequest),
                                                        pb2.CodecBytes.SerializeToString),
        "PutCodec": grpc.unary_unary_rpc_method_handler(servicer.PutCodec, _parser(pb2.CodecBytes),
                                                        pb2.PutCodecResponse.SerializeToString),
    }
    return grpc.method_handlers_generic_handler(SERVICE_NAME, rpc)


def _code(name: str) -> grpc.StatusCode:
    return getattr(grpc.StatusCode, name)


class Servicer:
    """The protocol over a `service.Backend`: messages in, `Request`s to the backend, answers out."""

    def __init__(self, backend, registry: CodecRegistry, auth: Optional[Auth] = None, policy: Policy = Policy(),
                 codec_upload: str = "on"):
        self.backend = backend
        self.registry = registry
        self.auth = auth or Auth()
        self.policy = policy
        self.max_message_bytes = policy.max_message_bytes
        self.stream_window = policy.stream_window
        self.codec_upload = codec_upload  # resolved: "authenticated", "on" or "off"
        self.draining = threading.Event()
        self.bad_requests = 0
        self.refusals: Dict[tuple, int] = {}
        self._streams: Dict[str, int] = {}
        self._lock = threading.Lock()

    # -- errors -------------------------------------------------------------------------------
    def _count(self, e: RequestError) -> None:
        with self._lock:
            self.bad_requests += 1
            self.refusals[(e.code, e.reason)] = self.refusals.get((e.code, e.reason), 0) + 1

    def _fail(self, context, e: RequestError):
        self._count(e)
        if e.reason:
            detail = pb2.ErrorDetail(reason=pb2.ErrorReason.Value(e.reason))
            context.set_trailing_metadata(((REASON_KEY, detail.SerializeToString()),))
        context.abort(_code(e.code), e.message)

    # -- requests -----------------------------------------------------------------------------
    def _request(self, msg, ident: Identity) -> Request:
        encoding, codec = msg.encoding, None
        if msg.HasField("codec_handle"):
            if encoding not in (pb2.ENCODING_UNSPECIFIED, pb2.CODEC):
                raise RequestError("INVALID_ARGUMENT", f"a codec handle with encoding {encoding}", reason="BAD_PAYLOAD")
            encoding = pb2.CODEC
            codec = self.registry.by_handle(msg.codec_handle, ident.key)
            if codec is None:
                raise RequestError("FAILED_PRECONDITION", f"unknown codec handle {msg.codec_handle:016x}: agree the "
                                   "codec again (PutCodec)", reason="CODEC_UNKNOWN")
        elif encoding == pb2.CODEC:
            codec = self.registry.get(msg.codec_id, ident.key)
            if codec is None:
                held = self.registry.ids(ident.key)
                raise RequestError("FAILED_PRECONDITION", f"unknown codec id {msg.codec_id!r}: this server holds "
                                   f"{', '.join(held) or 'no codec'} for this client; upload it with PutCodec",
                                   reason="CODEC_UNKNOWN")
        return Request(encoding, msg.payload, tuple(msg.shape), codec)

    def _answer(self, msg, ident: Identity, deadline, active) -> "pb2.InferResponse":
        if isinstance(msg, Malformed):
            raise msg.refusal()
        reply = self.backend.infer(self._request(msg, ident), deadline, active, ident.fairness)
        idx, val = top_k(reply.outputs, msg.top_k or DEFAULT_TOP_K)
        r = pb2.InferResponse(request_id=msg.request_id, seq=msg.seq, top_k_index=idx.ravel().tolist(),
                              top_k_value=val.ravel().tolist(), output_shape=list(reply.outputs.shape),
                              timing=pb2.Timing(**reply.timing))
        if msg.return_logits:
            r.logits.extend(reply.outputs.ravel().tolist())
        return r

    def Infer(self, request, context):
        try:
            return self._answer(request, self.auth.identify(context), _deadline(context), context.is_active)
        except RequestError as e:
            self._fail(context, e)

    def InferStream(self, request_iterator, context):
        ident = self.auth.identify(context)
        key = ident.fairness
        with self._lock:
            mine, total = self._streams.get(key, 0), sum(self._streams.values())
            refusal = None
            if self.draining.is_set():
                refusal = RequestError("UNAVAILABLE", "the server is shutting down; open the stream again",
                                       reason="DRAINING")
            elif mine >= self.policy.streams_per_client:
                refusal = RequestError("RESOURCE_EXHAUSTED", f"this client holds {mine} streams already, the most "
                                       "this server allows one client; retry after a back-off", reason="OVERLOADED")
            elif total >= self.policy.stream_slots:
                refusal = RequestError("RESOURCE_EXHAUSTED", f"this server holds {total} streams, its limit; retry "
                                       "after a back-off", reason="OVERLOADED")
            else:
                self._streams[key] = mine + 1
        if refusal is not None:
            self._fail(context, refusal)
        try:
            yield from self._stream(request_iterator, context, ident)
        finally:
            with self._lock:
                left = self._streams[key] - 1
                if left:
                    self._streams[key] = left
                else:
                    del self._streams[key]

    def _stream(self, request_iterator, context, ident: Identity):
        deadline = _deadline(context)
        done: "queue.Queue[Any]" = queue.Queue()
        window = threading.Semaphore(self.stream_window)
        pool = futures.ThreadPoolExecutor(self.stream_window, thread_name_prefix="splitans-stream")
        end = object()
        state: Dict[str, Any] = {"sent": 0, "error": None, "malformed": None, "last": time.monotonic()}

        def one(req):
            try:
                return self._answer(req, ident, deadline, context.is_active)
            except RequestError as e:
                self._count(e)
                return pb2.InferResponse(request_id=req.request_id, seq=req.seq, error_code=_code(e.code).value[0],
                                         error_message=e.message,
                                         error_reason=pb2.ErrorReason.Value(e.reason) if e.reason else 0)

        def read():
            try:
                for req in request_iterator:
                    state["last"] = time.monotonic()
                    if isinstance(req, Malformed):
                        state["malformed"] = req.refusal()
                        return
                    while not window.acquire(timeout=0.1):
                        if not context.is_active():
                            return
                    if self.draining.is_set():  # unanswered: the client sends it again
                        return
                    state["sent"] += 1
                    pool.submit(one, req).add_done_callback(done.put)
            except Exception as e:  # the client cancelled or broke the stream
                state["error"] = e
            finally:
                done.put(end)

        reader = threading.Thread(target=read, name="splitans-stream-reader", daemon=True)
        reader.start()
        answered, finished = 0, False
        try:
            while not finished or answered < state["sent"]:
                try:
                    got = done.get(timeout=0.1)
                except queue.Empty:
                    if not context.is_active():
                        return
                    if answered == state["sent"]:  # nothing in flight: may the stream end here?
                        if state["malformed"] is not None:
                            self._fail(context, state["malformed"])
                        if self.draining.is_set():
                            self._fail(context, RequestError("UNAVAILABLE", "the server is shutting down; send the "
                                                             "unanswered requests again", reason="DRAINING"))
                        if time.monotonic() - state["last"] > self.policy.stream_idle_s:
                            self._fail(context, RequestError(
                                "UNAVAILABLE", f"the stream sent nothing for {self.policy.stream_idle_s:g} s; open "
                                "another to go on", reason="STREAM_IDLE"))
                    continue
                if got is end:
                    finished = True
                    if state["malformed"] is not None and answered == state["sent"]:
                        self._fail(context, state["malformed"])
                    if state["error"] is not None or not context.is_active():
                        return
                    continue
                answered += 1
                window.release()
                state["last"] = time.monotonic()
                yield got.result()
            if state["malformed"] is not None:
                self._fail(context, state["malformed"])
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    # -- the rest -----------------------------------------------------------------------------
    def Info(self, request, context):
        ident = self.auth.identify(context)
        if isinstance(request, Malformed):
            self._fail(context, request.refusal())
        d = self.backend.describe()
        ids = self.registry.ids(ident.key)
        return pb2.InfoResponse(model=d["model"], split=d["split"], device=d["device"],
                                activation_shape=d["activation_shape"], max_batch=d["max_batch"],
                                class_names=d["class_names"], codec_ids=ids, codec_handles=[handle_of(i) for i in ids],
                                default_codec_id=self.registry.default_id, encodings=_ENCODINGS,
                                max_message_bytes=self.max_message_bytes, protocol_version=PROTOCOL_VERSION)

    def GetCodec(self, request, context):
        ident = self.auth.identify(context)
        if isinstance(request, Malformed):
            self._fail(context, request.refusal())
        codec = self.registry.get(request.codec_id, ident.key)
        if codec is None:
            self._fail(context, RequestError(
                "NOT_FOUND", f"no codec {request.codec_id!r} here for this client" if request.codec_id
                else "this server has no default codec (serve --codec FILE)", reason="CODEC_UNKNOWN"))
        return pb2.CodecBytes(codec_id=codec.id, data=codec.to_bytes(), codec_handle=handle_of(codec.id))

    def PutCodec(self, request, context):
        ident = self.auth.identify(context)
        try:
            if isinstance(request, Malformed):
                raise request.refusal()
            if self.codec_upload == "off" or (self.codec_upload == "authenticated" and not ident.authenticated):
                why = ("this server takes no codec uploads" if self.codec_upload == "off" else
                       "this server takes codec uploads from authenticated clients only")
                raise RequestError("PERMISSION_DENIED", f"{why}; use a codec it holds (Info) or ask its operator to "
                                   "serve yours (serve --codec FILE)", reason="UPLOAD_REFUSED")
            codec, known = self.registry.codec_from_upload(request.codec_id, request.data, ident.key)
        except RequestError as e:
            self._fail(context, e)
        return pb2.PutCodecResponse(codec_id=codec.id, already_known=known, codec_handle=handle_of(codec.id))


class Server:
    """A running server: `port`, `stop(grace)`, `wait()`.

    `tls`: ``(certificate, key)`` or ``(certificate, key, clients' CA)`` (PEM bytes or paths;
    the CA makes it mutual TLS); `tokens`: {name: bearer token}. Listening beyond loopback
    without TLS, or without tokens or client certificates, warns (`InsecureServerWarning`)."""

    def __init__(self, backend, port: int = 0, host: str = "localhost", *, policy: Optional[Policy] = None,
                 codecs: Sequence[Codec] = (), tls: Optional[Sequence] = None, tokens: Optional[Dict[str, str]] = None,
                 registry: Optional[CodecRegistry] = None):
        policy = policy or Policy()
        self.backend = backend
        self.policy = policy
        self.host = host
        self.registry = registry or CodecRegistry(backend.activation_shape, codecs, per_client=policy.codecs_per_client,
                                                  total=policy.max_codecs)
        self.auth = Auth(tokens, mutual_tls=bool(tls) and len(tls) > 2 and tls[2] is not None)
        loopback = is_loopback(host)
        upload = policy.codec_upload
        if upload == "auto":
            upload = "authenticated" if self.auth.authenticates else ("on" if loopback else "off")
        self.codec_upload = upload
        self.warnings = []
        if not loopback and not tls:
            self.warnings.append(f"listening on {host} in plaintext: anyone on the network can read the traffic"
                                 + (" and the bearer tokens" if tokens else "") + "; give a certificate and key for TLS")
        if not loopback and not self.auth.authenticates:
            self.warnings.append(f"listening on {host} without authentication: anyone who reaches the port may "
                                 "call; give bearer tokens or the clients' CA"
                                 + ("; codec uploads are off" if upload == "off" else ""))
        for w in self.warnings:
            warnings.warn(w, InsecureServerWarning, stacklevel=2)
        self.health = health.HealthServicer()
        self.servicer = Servicer(backend, self.registry, self.auth, policy, upload)
        interceptor = self.auth.interceptor()
        # Beyond `workers` concurrent RPCs gRPC itself answers RESOURCE_EXHAUSTED.
        self.grpc = grpc.server(futures.ThreadPoolExecutor(policy.workers, thread_name_prefix="splitans-rpc"),
                                options=policy.grpc_options(), maximum_concurrent_rpcs=policy.workers,
                                interceptors=[interceptor] if interceptor else None)
        self.grpc.add_generic_rpc_handlers((_generic_handler(self.servicer),))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        address = f"{host}:{port}"
        if tls:
            self.port = self.grpc.add_secure_port(address, server_credentials(*tls))
        else:
            self.port = self.grpc.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"cannot listen on {address}")
        self.tls = bool(tls)
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
        self.grpc.start()
        # The backend was loaded and warmed before we got here: ready.
        self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        self._stopped = threading.Event()
        self._stopping = threading.Lock()

    def stop(self, grace: float = 10.0) -> None:
        """Drain and stop: health NOT_SERVING; streams answer what they took and end UNAVAILABLE
        (DRAINING); gRPC takes no new calls (GOAWAY) and gives those in flight `grace` seconds;
        then the batcher runs what it holds and the backend is released."""
        with self._stopping:
            if self._stopped.is_set():
                return
            self.servicer.draining.set()
            self.health.enter_graceful_shutdown()
            self.grpc.stop(grace).wait()
            self.backend.close()
            self._stopped.set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self._stopped.wait(timeout)


def serve(model: str, split: str, *, codecs: Sequence[Codec] = (), device: str = "cpu", port: int = 0,
          host: str = "localhost", max_batch: int = 16, max_delay_ms: float = 2.0, queue_size: int = 64,
          policy: Optional[Policy] = None, tls: Optional[Sequence] = None, tokens: Optional[Dict[str, str]] = None,
          input_shape: Optional[Sequence[int]] = None, ray: bool = False, replicas: int = 2,
          address: Optional[str] = None, progress: Optional[Callable[[str], None]] = None, **limits) -> Server:
    """Starts serving the tail of ``model`` (``"pkg.module:factory"``) cut after `split`;
    returns the running `Server` (``server.port``; ``server.stop(grace)``). `progress` is told,
    one line at a time, what the start is doing (loading, cutting, warming up).

    Listens on loopback unless `host` says otherwise. `tls`, `tokens`: see `Server`; `policy`
    (or its fields as keywords, e.g. ``workers=8, codec_upload="off"``): see `Policy`.
    `input_shape`: one input's shape, for a factory whose model carries no example inputs."""
    say = progress or (lambda line: None)
    if "allow_codec_upload" in limits:  # the earlier name
        limits["codec_upload"] = "auto" if limits.pop("allow_codec_upload") else "off"
    policy = policy or Policy()
    if limits:
        import dataclasses

        policy = dataclasses.replace(policy, **limits)
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError(f"--device {device}: no CUDA device here")
    if ray:
        from .ray_serve import RayBackend

        say(f"starting Ray Serve with {replicas} replicas, each loading {model} (this takes a while)")
        backend = RayBackend(model, split, codecs=codecs, device=device, replicas=replicas, address=address,
                             max_batch=max_batch, max_delay_s=max_delay_ms / 1e3, queue_size=queue_size,
                             input_shape=input_shape)
    else:
        say(f"loading the model {model} (and torch)")
        loaded = load_model(model, input_shape)
        service = TailService(loaded, split, device=device, progress=say)
        backend = LocalBackend(service, max_batch=max_batch, max_delay_s=max_delay_ms / 1e3, queue_size=queue_size)
    say(f"listening on {host}:{port}" + (" (TLS)" if tls else ""))
    try:
        return Server(backend, port=port, host=host, policy=policy, codecs=codecs, tls=tls, tokens=tokens)
    except Exception:
        backend.close()
        raise

