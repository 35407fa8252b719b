"""The GPU path: the same containers as the CPU path, byte for byte, produced and consumed on a
CUDA device through CuPy.

    import cupy as cp, splitans.gpu as sg
    blob = sg.compress_gpu(x_cuda, bits=8)          # == splitans.compress(x_cuda.get(), bits=8)
    y = sg.decompress_gpu(blob)                       # a CuPy array on the device
    blob = sg.rans_encode_gpu(symbols_cuda)           # == splitans.rans_encode(symbols)
    s = sg.rans_decode_gpu(blob)

What runs where:

* On the device (the kernels in ``splitans/cuda/*.cu``): the range scan, quantization and
  clamped count, the histograms, the CSR flags / prefix sums / compaction, the encoder and
  decoder tables, the rANS chunk coding (one warp per chunk, FORMAT.md 4.3-4.4), the packing of
  the coded chunks into the stream body, the CSR scatter and the dequantization.
* On the host: every decision that picks a byte, by the same Rust functions the CPU encoder
  calls (``splitans._core.gpu_*``): the frequency table and its precision (from the histogram,
  which is the only data besides the coded bytes that crosses to the host), the chunk size, the
  lanes, the raw fallback, the quantization parameters of a range, the CSR row count and mode.
  The container around the coded streams is written by the CPU encoder's own writers
  (``gpu_array_container``, ``gpu_feature_container``). Decoding, the container is validated
  by the Rust parser before any kernel sees an offset; the kernels check the end-of-chunk
  conditions and the CSR columns, so corrupt input raises ``splitans.CorruptDataError`` as on
  the CPU.

So the output is bit-identical to ``splitans.compress`` / ``splitans.rans_encode`` with the
same options (``threads`` does not apply). Not supported here: ``clip=splitans.Percentile(...)``
(numpy computes percentiles on the host; pass ``clip=(low, high)`` or a calibrated
``scale``/``zero_point``). Empty tensors are handed to the CPU path (nothing to move).

CuPy is optional: importing ``splitans`` never needs it. The kernels ship in the package and
are compiled once per device with NVRTC by ``cupy.RawModule`` on first use (CuPy adds the
device's architecture and caches the binary on disk).

The modules mirror the kernel files, one per stage: ``loader`` (sources, compilation, the base
of the device operations), ``histogram``, ``quantize``, ``rans`` (encode and decode), ``sparse``
(CSR) and ``pipelines`` (the calls below).
"""

from .loader import COMPILE_OPTIONS, HEADER_FILES, INSTALL_HINT, KERNEL_FILES, KERNELS, available, kernel_source
from .pipelines import compress_gpu, decompress_gpu, rans_decode_gpu, rans_encode_gpu

__all__ = [
    "COMPILE_OPTIONS",
    "HEADER_FILES",
    "INSTALL_HINT",
    "KERNELS",
    "KERNEL_FILES",
    "available",
    "compress_gpu",
    "decompress_gpu",
    "kernel_source",
    "rans_decode_gpu",
    "rans_encode_gpu",
]
