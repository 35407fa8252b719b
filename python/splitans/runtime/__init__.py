"""Split computing end to end: cut a model (`split`), serve its tail over gRPC (`serve`, alone
or on Ray Serve replicas), and send the head's compressed activations from the edge
(`EdgeClient`). Needs the ``runtime`` extra (torch, grpcio, grpcio-tools,
grpcio-health-checking; ``ray[serve]`` for scale-out). ``import splitans`` never loads this.

Names are imported on first use, so ``splitans.runtime.split`` needs torch only, not grpc.
"""

__all__ = ["EdgeClient", "RemoteError", "Result", "Server", "serve", "split", "split_points"]

_WHERE = {"EdgeClient": "client", "RemoteError": "client", "Result": "client", "Server": "server", "serve": "server",
          "split": "cut", "split_points": "cut"}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
