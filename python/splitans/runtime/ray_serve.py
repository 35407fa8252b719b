"""The tail on Ray Serve: `splitans serve --ray --replicas N`.

Ray Serve places the replicas, routes each request to one of them and restarts one that dies;
nothing here manages a cluster. Ray starts embedded on this machine unless ``address`` names an
existing cluster. The gRPC front (`server.Server`: the same protocol, health service, limits
and codec registry as a single-process server) hands each request to the deployment as plain
values (no protobuf crosses to a replica); a replica decodes the blob itself and batches with
the same fair `service.Batcher` as the in-process backend. Each replica loads the server's
codecs once, at start, and an uploaded codec once, the first time a request needs it (the
front sends its bytes then). A replica that dies with requests in flight answers them
UNAVAILABLE, which clients retry (``Infer`` is idempotent); Ray Serve sends the retries to the
surviving replicas.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable, Dict, List, Optional, Sequence

from .._fitted import Codec
from .encodings import RequestError
from .service import Reply, Request

__all__ = ["RayBackend", "deployment"]

APP_NAME = "splitans"


def deployment():
    """The Ray Serve deployment class (built on first use: Ray is imported only here)."""
    from ray import serve

    @serve.deployment(name="SplitansTail", ray_actor_options={"num_cpus": 0})
    class SplitansTail:
        def __init__(self, model: str, point: str, codec_blobs: List[bytes], device: str, max_batch: int = 16,
                     max_delay_s: float = 0.002, queue_size: int = 64, input_shape: Optional[Sequence[int]] = None,
                     max_codecs: int = 256):
            import torch

            from .registry import CodecRegistry
            from .service import Batcher, TailService, load_model

            torch.set_num_threads(1)
            self.service = TailService(load_model(model, input_shape), point, device=device)
            # A cache of the front's registry: the front decides who may use what.
            self.codecs = CodecRegistry(self.service.activation_shape, [Codec.from_bytes(b) for b in codec_blobs],
                                        per_client=max_codecs, total=max_codecs)
            self.batcher = Batcher(self.service, max_batch=max_batch, max_delay_s=max_delay_s, queue_size=queue_size)
            self.codec_loads = len(codec_blobs)
            self.requests = 0

        def describe(self) -> dict:
            from .service import replica_name

            s = self.service
            return dict(model=s.loaded.spec, split=s.point, activation_shape=list(s.activation_shape), device=s.device,
                        replica=replica_name(), class_names=list(s.class_names), codec_loads=self.codec_loads,
                        requests=self.requests)

        async def infer(self, encoding: int, payload: bytes, shape: tuple, codec_id: str = "",
                        codec_bytes: bytes = b"", client: str = "") -> tuple:
            """("ok", outputs, timing) | ("need-codec", id) | ("error", code, message, reason)."""
            from .service import Item, replica_name

            self.requests += 1
            try:
                codec = None
                if codec_id:
                    codec = self.codecs.get(codec_id)
                    if codec is None and not codec_bytes:
                        return ("need-codec", codec_id)
                    if codec is None:
                        codec, _ = self.codecs.codec_from_upload(codec_id, codec_bytes, "front")
                        self.codec_loads += 1
                t = time.perf_counter()
                self.batcher.incoming += 1
                try:
                    kind, x = await asyncio.to_thread(self.service.decode, Request(encoding, payload, tuple(shape), codec))
                    decode_ms = (time.perf_counter() - t) * 1e3
                    loop = asyncio.get_running_loop()
                    answer = loop.create_future()
                    self.batcher.submit(Item(kind, x, None, client=client,
                                             callback=lambda it: loop.call_soon_threadsafe(answer.set_result, it)))
                finally:
                    self.batcher.incoming -= 1
                item = await answer
                if item.error is not None:
                    raise item.error
            except RequestError as e:
                return ("error", e.code, e.message, e.reason)
            return ("ok", item.result, dict(queue_ms=item.queue_ms, decode_ms=decode_ms, tail_ms=item.tail_ms,
                                            batch_size=item.batch_size, replica=replica_name()))

        def __del__(self):
            batcher = getattr(self, "batcher", None)
            if batcher is not None:
                batcher.close()

    return SplitansTail


class RayBackend:
    """The `service.Backend` that forwards to a Ray Serve deployment."""

    def __init__(self, model: str, point: str, *, codecs: Sequence[Codec] = (), device: str = "cpu", replicas: int = 2,
                 address: Optional[str] = None, max_batch: int = 16, max_delay_s: float = 0.002, queue_size: int = 64,
                 input_shape: Optional[Sequence[int]] = None, num_cpus: Optional[int] = None):
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
        app = dep.bind(model, point, [c.to_bytes() for c in codecs], device, max_batch, max_delay_s, queue_size,
                       None if input_shape is None else tuple(input_shape))
        self.handle = serve.run(app, name=APP_NAME, route_prefix=None)
        self._describe = self.handle.describe.remote().result()
        self.activation_shape = tuple(self._describe["activation_shape"])
        self.max_batch = max_batch

    def describe(self) -> dict:
        d = self._describe
        return dict(model=d["model"], split=d["split"], device=d["device"], activation_shape=d["activation_shape"],
                    max_batch=self.max_batch, class_names=d.get("class_names", []))

    def infer(self, request: Request, deadline: Optional[float], active: Callable[[], bool], client: str = "") -> Reply:
        import ray.exceptions
        from ray.serve.exceptions import BackPressureError

        codec_id = request.codec.id if request.codec is not None else ""
        codec_bytes = b""
        for _ in range(2):
            timeout = None if deadline is None else max(0.001, deadline - time.perf_counter())
            reply = self.handle.infer.remote(request.encoding, request.payload, tuple(request.shape), codec_id,
                                             codec_bytes, client)
            try:
                got = reply.result(timeout_s=timeout)
            except TimeoutError:
                reply.cancel()
                raise RequestError("DEADLINE_EXCEEDED", "no replica answered before the deadline") from None
            except BackPressureError as e:
                raise RequestError("RESOURCE_EXHAUSTED", f"Ray Serve's queue is full: {e}", reason="OVERLOADED") from None
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as e:
                raise RequestError("UNAVAILABLE", f"the replica failed: {type(e).__name__}; retry") from None
            except ray.exceptions.RayTaskError as e:
                raise RequestError("INTERNAL", f"replica error: {e}") from None
            if got[0] == "ok":
                return Reply(got[1], got[2])
            if got[0] == "error":
                raise RequestError(got[1], got[2], reason=got[3])
            codec_bytes = request.codec.to_bytes()  # "need-codec": this replica has not seen it yet
        raise RequestError("INTERNAL", "the replica asked for the codec twice")

    def replicas(self) -> List[dict]:
        """describe() of the running replicas (asks 50 times, keeps the distinct ones)."""
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
