"""splitans: rANS compression of intermediate feature tensors for split computing.

An edge device runs the first layers of a model, compresses the activation and sends it; a
server decompresses it and runs the rest. A float feature is quantized (here to 4 bits) and
coded; it comes back within half a quantization step of every element:

>>> import numpy as np, splitans
>>> x = np.maximum(np.random.default_rng(0).normal(size=(1, 64, 28, 28)), 0).astype(np.float32)
>>> blob = splitans.compress(x, bits=4)           # bytes: a checksummed, versioned container
>>> len(blob) < x.nbytes // 10                    # about 2 bits per element on this sparse map
True
>>> y = splitans.decompress(blob)                 # float32, the same shape
>>> bool(np.abs(y - x).max() <= splitans.inspect(blob)["scale"][0] / 2 + 1e-6)
True

Integers are coded losslessly:

>>> q = np.random.default_rng(1).integers(0, 16, size=(4, 64, 8), dtype=np.uint8)
>>> bool((splitans.decompress(splitans.compress(q)) == q).all())
True

One split point's samples share a fitted codec (`Codec.fit`: blobs of a few bytes plus the
codes); `calibrate` picks the smallest within an accuracy budget; `split` cuts a torch model into
head and tail (and writes the head as ONNX for an edge without torch); `splitans.runtime`
serves the tail over gRPC and sends from the edge. The ``splitans`` command does all of it from
a shell (``splitans --help``).
"""

from ._codec import (
    DEFAULT_MAX_OUTPUT_BYTES,
    compress,
    decompress,
    inspect,
    max_compressed_size,
    rans_decode,
    rans_encode,
)
from ._batch import compress_many, decompress_many
from ._options import Options
from ._feature import Percentile, plan
from ._fitted import Codec
from .calibration import CalibrationReport, CalibrationWarning, calibrate
from ._core import (
    FORMAT_VERSION,
    CorruptDataError,
    OutputTooLargeError,
    UnsupportedVersionError,
    __version__,
)

__all__ = [
    "CalibrationReport",
    "CalibrationWarning",
    "Codec",
    "DEFAULT_MAX_OUTPUT_BYTES",
    "FORMAT_VERSION",
    "CorruptDataError",
    "Options",
    "OutputTooLargeError",
    "Percentile",
    "UnsupportedVersionError",
    "__version__",
    "calibrate",
    "compress",
    "compress_gpu",
    "compress_many",
    "decompress",
    "decompress_gpu",
    "decompress_many",
    "gpu",
    "inspect",
    "max_compressed_size",
    "plan",
    "rans_decode",
    "rans_decode_gpu",
    "rans_encode",
    "rans_encode_gpu",
    "split",
]

#: Names served by the GPU subpackage, imported on first use: ``import splitans`` never loads the
#: GPU path (nor CuPy), and ``splitans.gpu`` depends on the codec modules, not the other way.
_GPU_NAMES = ("compress_gpu", "decompress_gpu", "rans_decode_gpu", "rans_encode_gpu")


def __getattr__(name: str):
    if name == "split":  # needs torch: `splitans.cut`, imported on first use
        import importlib

        return importlib.import_module(".cut", __name__).split
    if name == "gpu" or name in _GPU_NAMES:
        import importlib

        gpu = importlib.import_module(".gpu", __name__)
        return gpu if name == "gpu" else getattr(gpu, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
