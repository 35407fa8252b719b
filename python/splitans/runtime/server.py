"""The gRPC server: `splitans serve`.

One `Servicer` speaks the protocol of ``splitans_runtime.proto`` over a backend that does the
work: `LocalBackend` (this process: decode, then the `Batcher` runs the tail) or
`ray_serve.RayBackend` (the tail on Ray Serve replicas). Around it: the standard gRPC health
service (``""``: the process is up; ``splitans.runtime.v1.SplitInference``: the model is loaded
and ready), a max message size, per-request deadlines, a cap on concurrent RPCs, and a graceful
stop that refuses new calls, lets in-flight ones finish for `grace` seconds, then drains the
batcher.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent import futures
from typing import Any, Callable, Optional, Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from .._fitted import Codec
from . import encodings
from .encodings import RequestError
from .proto import SERVICE_NAME, pb2, pb2_grpc
from .service import Batcher, Item, TailService, load_model, replica_name, response

__all__ = ["LocalBackend", "Server", "Servicer", "serve"]

DEFAULT_MAX_MESSAGE_BYTES = 32 << 20
_ENCODINGS = [pb2.SPLITANS, pb2.CODEC, pb2.FLOAT32, pb2.FLOAT16, pb2.ZSTD_FLOAT16, pb2.IMAGE]


def _deadline(context) -> Optional[float]:
    left = context.time_remaining()
    return None if left is None or left > 1e8 else time.perf_counter() + left


class LocalBackend:
    """Decode in the RPC's thread (the codec releases the interpreter), run the tail in batches."""

    def __init__(self, service: TailService, max_batch: int = 16, max_delay_s: float = 0.002, queue_size: int = 64):
        self.service = service
        self.batcher = Batcher(service, max_batch=max_batch, max_delay_s=max_delay_s, queue_size=queue_size)
        self.max_batch = max_batch
        self._lock = threading.Lock()

    def describe(self) -> dict:
        s = self.service
        return dict(model=s.loaded.spec, split=s.point, codec_ids=sorted(s.codecs), default_codec_id=s.default_codec_id,
                    device=s.device, activation_shape=list(s.activation_shape), max_batch=self.max_batch,
                    class_names=list(s.class_names))

    def codec_bytes(self, codec_id: str) -> bytes:
        codec = self.service.codecs.get(codec_id or self.service.default_codec_id)
        if codec is None:
            raise RequestError("NOT_FOUND", f"no codec {codec_id!r} here" if codec_id else "this server has no default codec (serve --codec FILE)")
        return codec.to_bytes()

    def put_codec(self, codec_id: str, data: bytes):
        return self.service.codec_from_upload(codec_id, data)

    def infer(self, request, deadline: Optional[float], active) -> "pb2.InferResponse":
        t = time.perf_counter()
        with self._lock:
            self.batcher.incoming += 1
        try:
            kind, x = self.service.decode(request.encoding, request.payload, request.shape, request.codec_id)
            decode_ms = (time.perf_counter() - t) * 1e3
            item = self.batcher.submit(Item(kind, x, deadline))
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
        timing = dict(queue_ms=item.queue_ms, decode_ms=decode_ms, tail_ms=item.tail_ms, batch_size=item.batch_size,
                      replica=replica_name())
        return response(request, item.result, timing)

    def close(self) -> None:
        self.batcher.close()


class Servicer(pb2_grpc.SplitInferenceServicer):
    def __init__(self, backend, max_message_bytes: int, stream_window: int = 16):
        self.backend = backend
        self.max_message_bytes = max_message_bytes
        self.stream_window = stream_window
        self.bad_requests = 0

    def _fail(self, context, e: RequestError):
        self.bad_requests += 1
        context.abort(getattr(grpc.StatusCode, e.code), e.message)

    def Infer(self, request, context):
        try:
            return self.backend.infer(request, _deadline(context), context.is_active)
        except RequestError as e:
            self._fail(context, e)

    def InferStream(self, request_iterator, context):
        deadline = _deadline(context)
        done: "queue.Queue[Any]" = queue.Queue()
        window = threading.Semaphore(self.stream_window)
        pool = futures.ThreadPoolExecutor(self.stream_window, thread_name_prefix="splitans-stream")
        end = object()
        state = {"sent": 0, "error": None}

        def one(req):
            try:
                return self.backend.infer(req, deadline, context.is_active)
            except RequestError as e:
                self.bad_requests += 1
                return pb2.InferResponse(request_id=req.request_id, error_code=getattr(grpc.StatusCode, e.code).value[0],
                                         error_message=e.message)

        def read():
            try:
                for req in request_iterator:
                    while not window.acquire(timeout=0.1):
                        if not context.is_active():
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
                    continue
                if got is end:
                    finished = True
                    if state["error"] is not None or not context.is_active():
                        return
                    continue
                answered += 1
                window.release()
                yield got.result()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def Info(self, request, context):
        d = self.backend.describe()
        return pb2.InfoResponse(encodings=_ENCODINGS, max_message_bytes=self.max_message_bytes, **d)

    def GetCodec(self, request, context):
        try:
            data = self.backend.codec_bytes(request.codec_id)
        except RequestError as e:
            self._fail(context, e)
        return pb2.CodecBytes(codec_id=Codec.from_bytes(data).id, data=data)

    def PutCodec(self, request, context):
        try:
            codec_id, known = self.backend.put_codec(request.codec_id, request.data)
        except RequestError as e:
            self._fail(context, e)
        return pb2.PutCodecResponse(codec_id=codec_id, already_known=known)


class Server:
    """A running server: `port`, `stop(grace)`, `wait()`."""

    def __init__(self, backend, port: int = 0, host: str = "[::]", workers: int = 32,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES):
        self.backend = backend
        self.health = health.HealthServicer()
        self.servicer = Servicer(backend, max_message_bytes)
        options = [("grpc.max_receive_message_length", max_message_bytes),
                   ("grpc.max_send_message_length", max_message_bytes),
                   ("grpc.so_reuseport", 0)]
        # Beyond `workers` concurrent RPCs gRPC itself answers RESOURCE_EXHAUSTED.
        self.grpc = grpc.server(futures.ThreadPoolExecutor(workers, thread_name_prefix="splitans-rpc"),
                                options=options, maximum_concurrent_rpcs=workers)
        pb2_grpc.add_SplitInferenceServicer_to_server(self.servicer, self.grpc)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        self.port = self.grpc.add_insecure_port(f"{host}:{port}")
        if self.port == 0:
            raise OSError(f"cannot listen on {host}:{port}")
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
        self.grpc.start()
        # The backend was loaded and warmed before we got here: ready.
        self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        self._stopped = threading.Event()

    def stop(self, grace: float = 10.0) -> None:
        """Refuse new calls (health NOT_SERVING), let in-flight ones finish for `grace` seconds,
        then drain the batcher and release the backend."""
        if self._stopped.is_set():
            return
        self.health.enter_graceful_shutdown()
        self.grpc.stop(grace).wait()
        self.backend.close()
        self._stopped.set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self._stopped.wait(timeout)


def serve(model: str, split: str, *, codecs: Sequence[Codec] = (), device: str = "cpu", port: int = 0,
          host: str = "[::]", max_batch: int = 16, max_delay_ms: float = 2.0, queue_size: int = 64,
          workers: int = 32, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, allow_codec_upload: bool = True,
          ray: bool = False, replicas: int = 2, address: Optional[str] = None,
          progress: Optional[Callable[[str], None]] = None) -> Server:
    """Starts serving the tail of ``model`` (``"pkg.module:factory"``) cut after `split`;
    returns the running `Server` (``server.port``; ``server.stop(grace)``). `progress` is told,
    one line at a time, what the start is doing (loading, cutting, warming up)."""
    say = progress or (lambda line: None)
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError(f"--device {device}: no CUDA device here")
    if ray:
        from .ray_serve import RayBackend

        say(f"starting Ray Serve with {replicas} replicas, each loading {model} (this takes a while)")
        backend = RayBackend(model, split, codecs=codecs, device=device, replicas=replicas, address=address,
                             max_batch=max_batch, max_delay_s=max_delay_ms / 1e3, queue_size=queue_size,
                             allow_codec_upload=allow_codec_upload)
    else:
        say(f"loading the model {model} (and torch)")
        loaded = load_model(model)
        service = TailService(loaded, split, codecs, device=device, allow_codec_upload=allow_codec_upload,
                              progress=say)
        backend = LocalBackend(service, max_batch=max_batch, max_delay_s=max_delay_ms / 1e3, queue_size=queue_size)
    say(f"listening on {host}:{port}")
    try:
        return Server(backend, port=port, host=host, workers=workers, max_message_bytes=max_message_bytes)
    except Exception:
        backend.close()
        raise
