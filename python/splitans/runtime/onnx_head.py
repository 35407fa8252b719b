"""The head of a split model as an ONNX file, run by ONNX Runtime: the edge needs no torch.

>>> head = OnnxHead("head.onnx")                      # doctest: +SKIP
>>> activation = head(x)                              # numpy in, float32 numpy out

The file comes from ``splitans.split(model, point, sample, onnx="head.onnx")`` (or
``splitans export``). Needs ``onnxruntime`` (``pip install 'splitans[onnx]'``), which has wheels
for x86-64 and aarch64.
"""

from __future__ import annotations

import os
from typing import Any, List, Optional, Sequence, Union

import numpy as np

__all__ = ["OnnxHead"]

_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


class OnnxHead:
    """Runs an ONNX model with one input and one output: ``head(x)`` is its output as a numpy
    array. `x` (numpy, or anything ``np.asarray`` takes, torch CPU tensors included) is checked
    against the input's declared shape first (``ValueError``). A file exported with a fixed batch
    size runs a batch of any size in pieces of that size.

    `threads`: ONNX Runtime's intra-op threads (default: its own choice); `providers`: its
    execution providers (default: the CPU).
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"], *, threads: Optional[int] = None,
                 providers: Optional[Sequence[str]] = None):
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ImportError("an ONNX head needs onnxruntime: pip install 'splitans[onnx]'", name="onnxruntime") from e
        self.path = os.fspath(path)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(self.path, options, providers=list(providers or ["CPUExecutionProvider"]))
        except Exception as e:  # onnxruntime raises its own exception types for missing and broken files
            if not os.path.exists(self.path):
                raise FileNotFoundError(2, "No such file or directory", self.path) from None
            raise ValueError(f"{self.path}: not a model ONNX Runtime can load ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''})") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"{self.path}: a head takes one input and gives one output; this model has "
                             f"{len(inputs)} inputs and {len(outputs)} outputs")
        self.input_name = inputs[0].name
        #: The declared input shape: an int where fixed, None where dynamic (the batch axis, usually).
        self.input_shape: List[Optional[int]] = [d if isinstance(d, int) else None for d in inputs[0].shape]
        self.output_shape: List[Optional[int]] = [d if isinstance(d, int) else None for d in outputs[0].shape]
        if inputs[0].type not in _DTYPES:
            raise ValueError(f"{self.path}: input {self.input_name!r} is {inputs[0].type}; a head takes floats")
        self.input_dtype = _DTYPES[inputs[0].type]

    @property
    def batch(self) -> Optional[int]:
        """The fixed batch size the file was exported with, or None when it is dynamic."""
        return self.input_shape[0] if self.input_shape else None

    def __call__(self, x: Any) -> np.ndarray:
        if type(x).__module__.startswith("torch"):
            x = x.detach().cpu().numpy()
        x = np.ascontiguousarray(x, dtype=self.input_dtype)
        want = self.input_shape
        if x.ndim != len(want) or any(w is not None and w != d for w, d in zip(want[1:], x.shape[1:])):
            shape = ", ".join("N" if w is None else str(w) for w in want)
            raise ValueError(f"input of shape {x.shape}; {os.path.basename(self.path)} takes ({shape})"
                             + (", N any batch size" if want and want[0] is None else ""))
        n = self.batch
        if n is None or x.shape[0] == n:
            return self.session.run(None, {self.input_name: x})[0]
        if x.shape[0] % n:
            raise ValueError(f"{os.path.basename(self.path)} was exported for batches of {n}; got {x.shape[0]}")
        return np.concatenate([self.session.run(None, {self.input_name: x[i : i + n]})[0]
                               for i in range(0, x.shape[0], n)])

    def __repr__(self) -> str:
        return f"OnnxHead({self.path!r})"
