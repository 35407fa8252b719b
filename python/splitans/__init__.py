"""splitans: rANS compression of intermediate feature tensors for split computing.

>>> import numpy as np, splitans
>>> x = np.random.default_rng(0).integers(0, 16, size=(4, 64, 8), dtype=np.uint8)
>>> blob = splitans.compress(x)
>>> bool((splitans.decompress(blob) == x).all())
True
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
from ._feature import Percentile, plan
from ._fitted import Codec
from ._calibrate import CalibrationReport, CalibrationWarning, calibrate
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
    if name == "split":  # needs torch: `splitans.runtime.cut`, imported on first use
        import importlib

        return importlib.import_module(".runtime.cut", __name__).split
    if name == "gpu" or name in _GPU_NAMES:
        import importlib

        gpu = importlib.import_module(".gpu", __name__)
        return gpu if name == "gpu" else getattr(gpu, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
