"""The gRPC messages and stubs, generated from ``splitans_runtime.proto`` at first import.

``grpc_tools.protoc`` compiles the .proto shipped beside this file into a cache folder keyed by
the hash of the .proto and the protobuf version (``$SPLITANS_CACHE`` or ``~/.cache/splitans``),
once per machine; later imports load the cached modules. Nothing here is written by hand.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile

__all__ = ["pb2", "pb2_grpc", "SERVICE_NAME"]

_PROTO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "splitans_runtime.proto")
SERVICE_NAME = "splitans.runtime.v1.SplitInference"


def _cache_dir() -> str:
    import google.protobuf
    import grpc_tools

    with open(_PROTO, "rb") as f:
        key = hashlib.sha256(f.read() + google.protobuf.__version__.encode() + grpc_tools.__file__.encode()).hexdigest()[:16]
    root = os.environ.get("SPLITANS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "splitans")
    return os.path.join(root, "proto", key)


def _compile(out: str) -> None:
    from grpc_tools import protoc
    import grpc_tools

    os.makedirs(os.path.dirname(out), exist_ok=True)
    # Compile into a fresh folder, then rename: concurrent first imports (Ray replicas) never see
    # a half-written module.
    tmp = tempfile.mkdtemp(dir=os.path.dirname(out))
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    rc = protoc.main(["grpc_tools.protoc", f"-I{os.path.dirname(_PROTO)}", f"-I{include}",
                      f"--python_out={tmp}", f"--grpc_python_out={tmp}", _PROTO])
    if rc != 0:
        raise RuntimeError(f"grpc_tools.protoc failed on {_PROTO} (exit {rc})")
    try:
        os.rename(tmp, out)
    except OSError:
        if not os.path.isdir(out):
            raise
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def _load(folder: str, name: str, alias: str):
    spec = importlib.util.spec_from_file_location(alias, os.path.join(folder, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[alias] = module
    spec.loader.exec_module(module)
    return module


def _generate():
    folder = _cache_dir()
    if not os.path.exists(os.path.join(folder, "splitans_runtime_pb2_grpc.py")):
        try:
            _compile(folder)
        except OSError:  # no writable cache (read-only home): compile for this process only
            folder = os.path.join(tempfile.mkdtemp(prefix="splitans-proto-"), "out")
            _compile(folder)
    # The generated stub module imports the message module by its bare name.
    messages = _load(folder, "splitans_runtime_pb2", "splitans_runtime_pb2")
    stubs = _load(folder, "splitans_runtime_pb2_grpc", "splitans_runtime_pb2_grpc")
    return messages, stubs


pb2, pb2_grpc = _generate()
