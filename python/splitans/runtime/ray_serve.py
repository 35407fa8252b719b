"""The tail on Ray Serve: `splitans serve --ray --replicas N`.

Ray Serve places the replicas, routes each request to one of them, restarts one that dies and
batches with ``@serve.batch``; nothing here manages a cluster. Ray starts embedded on this
machine unless ``address`` names an existing cluster. The gRPC front (`server.Server`, the same
protocol, health service and limits as a single-process server) forwards each request's bytes
to the deployment; a replica decodes the blob itself, so each replica loads the server's codecs
once, at start, and an uploaded codec once, the first time a request needs it. A replica that
dies with requests in flight answers them UNAVAILABLE, which clients retry (``Infer`` is
idempotent); Ray Serve sends the retries to the surviving replicas.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Dict, List, Optional, Sequence

from .._fitted import Codec
from .encodings import RequestError

__all__ = ["RayBackend", "deployment"]

APP_NAME = "splitans"


def deployment():
    """The Ray Serve deployment class (built on first use: Ray is imported only here)."""
    from ray import serve

    @serve.deployment(name="SplitansTail", ray_actor_options={"num_cpus": 0})
    class SplitansTail:
        def __init__(self, model: str, point: str, codec_blobs: List[bytes], device: str, allow_codec_upload: bool,
                     max_batch: int = 16, max_delay_s: float = 0.002):
            import torch

            self._batched.set_max_batch_size(max_batch)
            self._batched.set_batch_wait_timeout_s(max_delay_s)

            from .service import TailService, load_model

            torch.set_num_threads(1)
            self.service = TailService(load_model(model), point, [Codec.from_bytes(b) for b in codec_blobs],
                                       device=device, allow_codec_upload=allow_codec_upload)
            self.codec_loads = len(codec_blobs)
            self.requests = 0

        def describe(self) -> dict:
            from .service import replica_name

            s = self.service
            return dict(model=s.loaded.spec, split=s.point, default_codec_id=s.default_codec_id,
                        activation_shape=list(s.activation_shape), device=s.device, replica=replica_name(),
                        class_names=list(s.class_names),
                        codec_loads=self.codec_loads, requests=self.requests)

        async def infer(self, request: bytes, codec_bytes: bytes = b"") -> tuple:
            """("ok", outputs, timing) | ("need-codec", id) | ("error", code, message)."""
            from .proto import pb2
            from .service import replica_name

            req = pb2.InferRequest.FromString(request)
            self.requests += 1
            try:
                if codec_bytes and req.codec_id not in self.service.codecs:
                    self.service.codec_from_upload(req.codec_id, codec_bytes)
                    self.codec_loads += 1
                if req.encoding == pb2.CODEC and req.codec_id not in self.service.codecs:
                    return ("need-codec", req.codec_id)
                t = time.perf_counter()
                kind, x = await asyncio.to_thread(self.service.decode, req.encoding, req.payload, req.shape,
                                                  req.codec_id)
                decode_ms = (time.perf_counter() - t) * 1e3
                out, queue_ms, tail_ms, batch = await self._batched((kind, x, time.perf_counter()))
            except RequestError as e:
                return ("error", e.code, e.message)
            return ("ok", out, dict(queue_ms=queue_ms, decode_ms=decode_ms, tail_ms=tail_ms, batch_size=batch,
                                    replica=replica_name()))

        @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.002)
        async def _batched(self, items: List[tuple]) -> List[tuple]:
            import torch

            start = time.perf_counter()
            groups: Dict[tuple, List[int]] = {}
            for i, (kind, x, _) in enumerate(items):
                groups.setdefault((kind, tuple(x.shape[1:])), []).append(i)
            results: List[Optional[tuple]] = [None] * len(items)
            for (kind, _), idx in groups.items():
                t = time.perf_counter()
                x = torch.cat([items[i][1] for i in idx])
                out = await asyncio.to_thread(self.service.run, kind, x)
                ms = (time.perf_counter() - t) * 1e3
                at = 0
                for i in idx:
                    k = items[i][1].shape[0]
                    results[i] = (out[at : at + k], (start - items[i][2]) * 1e3, ms, len(idx))
                    at += k
            return results

    return SplitansTail


class RayBackend:
    """The `server.Servicer` backend that forwards to a Ray Serve deployment."""

    def __init__(self, model: str, point: str, *, codecs: Sequence[Codec] = (), device: str = "cpu", replicas: int = 2,
                 address: Optional[str] = None, max_batch: int = 16, max_delay_s: float = 0.002, queue_size: int = 64,
                 allow_codec_upload: bool = True, num_cpus: Optional[int] = None):
        import ray
        from ray import serve

        self._started_ray = not ray.is_initialized()
        if self._started_ray:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        serve.start(proxy_location="Disabled")
        dep = deployment().options(
            num_replicas=replicas, max_ongoing_requests=2 * max_batch, max_queued_requests=queue_size,
            health_check_period_s=1.0, health_check_timeout_s=10.0, graceful_shutdown_timeout_s=10.0)
        self._codecs: Dict[str, Codec] = {c.id: c for c in codecs}
        self._pinned = set(self._codecs)
        self.max_codecs = 16
        self.default_codec_id = codecs[0].id if codecs else ""
        self.allow_codec_upload = allow_codec_upload
        app = dep.bind(model, point, [c.to_bytes() for c in codecs], device, allow_codec_upload, max_batch, max_delay_s)
        self.handle = serve.run(app, name=APP_NAME, route_prefix=None)
        self._describe = self.handle.describe.remote().result()
        self.max_batch = max_batch
        self._lock = threading.Lock()

    def describe(self) -> dict:
        d = dict(self._describe)
        return dict(model=d["model"], split=d["split"], codec_ids=sorted(self._codecs), default_codec_id=self.default_codec_id,
                    device=d["device"], activation_shape=d["activation_shape"], max_batch=self.max_batch,
                    class_names=d.get("class_names", []))

    def codec_bytes(self, codec_id: str) -> bytes:
        codec = self._codecs.get(codec_id or self.default_codec_id)
        if codec is None:
            raise RequestError("NOT_FOUND", f"no codec {codec_id!r} here" if codec_id else "this server has no default codec (serve --codec FILE)")
        return codec.to_bytes()

    def put_codec(self, codec_id: str, data: bytes):
        from .._core import CorruptDataError

        if not self.allow_codec_upload:
            raise RequestError("PERMISSION_DENIED", "this server does not take codec uploads (--no-codec-upload)")
        try:
            codec = Codec.from_bytes(data)
        except CorruptDataError as e:
            raise RequestError("INVALID_ARGUMENT", f"CorruptDataError: {e}") from None
        if codec_id and codec_id != codec.id:
            raise RequestError("INVALID_ARGUMENT", f"the codec bytes hash to {codec.id}, not {codec_id}")
        if tuple(codec.shape) != tuple(self._describe["activation_shape"]):
            raise RequestError("FAILED_PRECONDITION", f"codec {codec.id} codes samples of shape {codec.shape}; the "
                               f"activation is {tuple(self._describe['activation_shape'])}")
        with self._lock:
            known = codec.id in self._codecs
            uploaded = [k for k in self._codecs if k != self.default_codec_id and k not in self._pinned]
            while not known and uploaded and len(uploaded) >= self.max_codecs:  # as TailService: bounded
                del self._codecs[uploaded.pop(0)]
            self._codecs[codec.id] = codec
        return codec.id, known

    def infer(self, request, deadline: Optional[float], active):
        import ray.exceptions
        from ray.serve.exceptions import BackPressureError

        from .service import response

        data = request.SerializeToString()
        codec_bytes = b""
        for _ in range(2):
            timeout = None if deadline is None else max(0.001, deadline - time.perf_counter())
            reply = self.handle.infer.remote(data, codec_bytes)
            try:
                got = reply.result(timeout_s=timeout)
            except TimeoutError:
                reply.cancel()
                raise RequestError("DEADLINE_EXCEEDED", "no replica answered before the deadline") from None
            except BackPressureError as e:
                raise RequestError("RESOURCE_EXHAUSTED", f"Ray Serve's queue is full: {e}") from None
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as e:
                raise RequestError("UNAVAILABLE", f"the replica failed: {type(e).__name__}; retry") from None
            except ray.exceptions.RayTaskError as e:
                raise RequestError("INTERNAL", f"replica error: {e}") from None
            if got[0] == "ok":
                return response(request, got[1], got[2])
            if got[0] == "error":
                raise RequestError(got[1], got[2])
            codec = self._codecs.get(got[1])  # "need-codec": this replica has not seen it yet
            if codec is None:
                raise RequestError("FAILED_PRECONDITION", f"unknown codec id {got[1]!r}: this server holds "
                                   f"{', '.join(sorted(self._codecs)) or 'no codec'}; upload it with PutCodec")
            codec_bytes = codec.to_bytes()
        raise RequestError("INTERNAL", "the replica asked for the codec twice")

    def replicas(self) -> List[dict]:
        """describe() of the running replicas (asks until it has seen `n` distinct ones or 50 tries)."""
        seen: Dict[str, dict] = {}
        for _ in range(50):
            d = self.handle.describe.remote().result()
            seen[d["replica"]] = d
        return list(seen.values())

    def close(self) -> None:
        from ray import serve

        try:
            serve.delete(APP_NAME)
        finally:
            if self._started_ray:
                import ray

                serve.shutdown()
                ray.shutdown()
