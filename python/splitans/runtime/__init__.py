"""Split computing end to end: serve the tail of a cut model over gRPC (`serve`, alone or on
Ray Serve replicas), and send the head's compressed activations from the edge (`EdgeClient`,
with the head as a torch module or as an ONNX file run by ONNX Runtime: `OnnxHead`).

What each side installs: the edge ``pip install 'splitans[edge,onnx]'`` (grpcio, protobuf,
onnxruntime: no torch), the server ``'splitans[runtime]'`` (torch, the health service, the
ONNX export), Ray Serve replicas ``'splitans[ray]'``. ``import splitans`` never loads this, and
names here are imported on first use: importing this package, `EdgeClient` or `OnnxHead` loads
neither torch nor Ray. Cutting the model is `splitans.split` (`splitans.cut`; ``split`` here is
the same function).
"""

__all__ = ["EdgeClient", "OnnxHead", "Policy", "RemoteError", "Result", "Server", "export_onnx", "serve", "split",
           "split_points"]

_WHERE = {"EdgeClient": "client", "RemoteError": "client", "Result": "client", "OnnxHead": "onnx_head", "Policy": "server",
          "Server": "server", "serve": "server", "split": "cut", "split_points": "cut", "export_onnx": "cut"}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
