"""Bytes per request beyond the blob, for a known codec on a 32x7x7 map (issue 23, item 4).

    python benches/request_bytes.py

Serves (in this process, on 127.0.0.1) a small convolutional model cut after a ReLU whose output
is 32 x 7 x 7, fits an 8-bit codec on its activations, lets an `EdgeClient` agree the codec and
send 20 inputs as unary calls and 20 over one stream, and records each `InferRequest` as the
client hands it to gRPC (a client interceptor). It prints the request's serialized size, the
blob's, and the difference: the payload fields beyond the blob (ids, handles, shape, options,
the blob's own tag and length), per field. gRPC's frame header (5 bytes) and HTTP/2 headers come
on top of either.
"""

from __future__ import annotations

import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "python"))


def tiny_32x7x7():
    """1 x 28 x 28 -> conv (stride 4) -> ReLU: 32 x 7 x 7 -> a linear classifier."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 32, 3, stride=4, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 49, 10))
    model.example_input = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    return model.eval()


def main() -> int:
    import grpc
    import torch

    import splitans
    from splitans.runtime import EdgeClient, serve, split

    seen = []

    class Recorder(grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
        def intercept_unary_unary(self, continuation, details, request):
            if details.method.endswith("/Infer"):
                seen.append(("unary", request))
            return continuation(details, request)

        def intercept_stream_stream(self, continuation, details, request_iterator):
            def recorded():
                for r in request_iterator:
                    seen.append(("stream", r))
                    yield r

            return continuation(details, recorded())

    model = tiny_32x7x7()
    head, _ = split(model, "1", model.example_input)
    g = torch.Generator().manual_seed(2)
    xs = torch.randn(40, 1, 28, 28, generator=g)
    with torch.no_grad():
        codec = splitans.Codec.fit(head(torch.randn(256, 1, 28, 28, generator=g)), bits=8)
    srv = serve(f"{os.path.splitext(os.path.basename(__file__))[0]}:tiny_32x7x7", "1", port=0, host="127.0.0.1")
    try:
        target = f"127.0.0.1:{srv.port}"
        channel = grpc.intercept_channel(grpc.insecure_channel(target), Recorder())
        client = EdgeClient(target, head, codec, channel=channel)
        for i in range(20):
            client.infer(xs[i : i + 1], i)
        list(client.stream(xs[i : i + 1] for i in range(20, 40)))
    finally:
        srv.stop(2)
    print(f"activation {tuple(codec.shape)}, 8-bit codec {codec.id[:12]}; {len(seen)} requests recorded")
    for kind in ("unary", "stream"):
        reqs = [r for k, r in seen if k == kind]
        total = [r.ByteSize() for r in reqs]
        blob = [len(r.payload) for r in reqs]
        extra = [t - b for t, b in zip(total, blob)]
        fields = {}
        for r in reqs:
            for fd, value in r.ListFields():
                if fd.name == "payload":
                    continue
                one = type(r)()
                if isinstance(value, (list, tuple)) or hasattr(value, "extend"):
                    getattr(one, fd.name).extend(value)
                else:
                    setattr(one, fd.name, value)
                fields.setdefault(fd.name, []).append(one.ByteSize())
        blob_field = [b + 1 + len(_varint(b)) - b for b in blob]  # the blob's tag and length
        print(f"{kind:>6}: request {statistics.median(total):.0f} B, blob {statistics.median(blob):.0f} B, "
              f"beyond the blob {statistics.median(extra):.0f} B (min {min(extra)}, max {max(extra)}): "
              + ", ".join(f"{k} {statistics.median(v):.0f}" for k, v in fields.items())
              + f", the blob's tag and length {statistics.median(blob_field):.0f}")
    return 0


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


if __name__ == "__main__":
    sys.exit(main())
