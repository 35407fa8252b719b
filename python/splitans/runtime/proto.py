"""The gRPC messages (`pb2`) and service stubs (`pb2_grpc`) of ``splitans_runtime.proto``.

Both are generated modules shipped in the package (``python -m splitans.runtime.protogen`` makes
them; ``tests/test_proto.py`` fails when they are stale), so importing this needs ``protobuf``
and ``grpcio`` and nothing that compiles.
"""

from __future__ import annotations

from . import splitans_runtime_pb2 as pb2
from . import splitans_runtime_pb2_grpc as pb2_grpc

__all__ = ["pb2", "pb2_grpc", "SERVICE_NAME"]

SERVICE_NAME = "splitans.runtime.v1.SplitInference"
