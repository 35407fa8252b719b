"""Generates the gRPC stubs shipped beside ``splitans_runtime.proto``: a development tool.

``splitans_runtime_pb2.py`` (the messages) and ``splitans_runtime_pb2_grpc.py`` (the service
stubs) are made by ``grpc_tools.protoc`` and committed, so neither an install nor an import runs
a compiler and the edge needs only ``grpcio`` and ``protobuf``. Regenerate after editing the
.proto, with the ``grpcio-tools`` version pinned in the ``test`` extra (the stubs record it, and
refuse an older ``grpcio`` or ``protobuf`` at import)::

    python -m splitans.runtime.protogen            # rewrite the stubs in the source tree
    python -m splitans.runtime.protogen --check    # exit 1 when they are stale

``tests/test_proto.py`` runs the check.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Dict, Optional

__all__ = ["STUBS", "generate", "stale"]

#: The package-relative path of the .proto: protoc names the generated modules after it, so the
#: service stub imports the messages as ``splitans.runtime.splitans_runtime_pb2``.
PROTO = "splitans/runtime/splitans_runtime.proto"
STUBS = ("splitans_runtime_pb2.py", "splitans_runtime_pb2_grpc.py")
_HERE = os.path.dirname(os.path.abspath(__file__))


def _root(root: Optional[str]) -> str:
    """The folder holding ``splitans/`` (``python/`` in the source tree)."""
    return root or os.path.dirname(os.path.dirname(_HERE))


def generate(root: Optional[str] = None) -> Dict[str, str]:
    """{stub file name: text} generated from the .proto under `root`, nothing written there."""
    import grpc_tools
    from grpc_tools import protoc

    root = _root(root)
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    with tempfile.TemporaryDirectory(prefix="splitans-protogen-") as out:
        rc = protoc.main(["grpc_tools.protoc", f"-I{root}", f"-I{include}", f"--python_out={out}",
                          f"--grpc_python_out={out}", os.path.join(root, PROTO)])
        if rc != 0:
            raise RuntimeError(f"grpc_tools.protoc failed on {os.path.join(root, PROTO)} (exit {rc})")
        folder = os.path.join(out, os.path.dirname(PROTO))
        result = {}
        for name in STUBS:
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                result[name] = f.read()
        return result


def stale(root: Optional[str] = None) -> Dict[str, str]:
    """{stub file name: why} for each committed stub that differs from a fresh generation."""
    root = _root(root)
    fresh = generate(root)
    out = {}
    for name, text in fresh.items():
        path = os.path.join(root, os.path.dirname(PROTO), name)
        if not os.path.exists(path):
            out[name] = "missing"
            continue
        with open(path, encoding="utf-8") as f:
            if f.read() != text:
                out[name] = "differs from what grpc_tools.protoc makes of the .proto"
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m splitans.runtime.protogen", description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="only compare; exit 1 when a stub is stale")
    p.add_argument("--root", default=None, help="the folder holding splitans/ (default: this package's parent)")
    args = p.parse_args(argv)
    root = _root(args.root)
    if args.check:
        bad = stale(root)
        for name, why in bad.items():
            print(f"{name}: {why}; run python -m splitans.runtime.protogen", file=sys.stderr)
        return 1 if bad else 0
    for name, text in generate(root).items():
        with open(os.path.join(root, os.path.dirname(PROTO), name), "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {os.path.join(os.path.dirname(PROTO), name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
