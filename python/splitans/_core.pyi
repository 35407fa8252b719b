"""Type stubs of the native module (Rust, PyO3). The public API is in ``splitans``."""

from typing import Any, Dict, List, Literal, Optional, Tuple, Union

import numpy as np

__version__: str
FORMAT_VERSION: int
MAX_NDIM: int
MODES: Tuple[str, ...]
GPU_MODES: Tuple[str, ...]
NONFINITE: Tuple[str, ...]
RESHAPES: Tuple[str, ...]
VERSIONS: Tuple[int, ...]

class CoderOptions:
    """The native half of ``splitans.Options`` (frozen): what the codec reads, parsed once."""

    def __new__(
        cls,
        bits: Optional[int],
        mode: Literal["auto", "dense", "csr", "context", "pcontext", "best"],
        reshape: Union[int, Literal["model", "search"]],
        nonfinite: Literal["error", "clamp"],
        precision_bits: Optional[int],
        chunk_log2: Optional[int],
        threads: int,
        version: Literal[1, 3],
    ) -> "CoderOptions": ...
    @property
    def bits(self) -> Optional[int]: ...
    @property
    def mode(self) -> str: ...
    @property
    def reshape(self) -> Union[int, str]: ...
    @property
    def nonfinite(self) -> str: ...
    @property
    def precision_bits(self) -> Optional[int]: ...
    @property
    def chunk_log2(self) -> Optional[int]: ...
    @property
    def threads(self) -> int: ...
    @property
    def version(self) -> int: ...

def simd_kernels() -> List[str]: ...

class CorruptDataError(ValueError): ...
class UnsupportedVersionError(CorruptDataError): ...
class OutputTooLargeError(ValueError): ...

def encode(
    array: np.ndarray,
    dtype: str,
    kind: int,
    precision_bits: Optional[int],
    chunk_log2: Optional[int],
    threads: int,
) -> bytes: ...
def decode(
    data: bytes,
    max_output_bytes: int,
    threads: int,
    expect_shape: Optional[List[int]] = None,
    expect_dtype: Optional[str] = None,
    bf16_bits: bool = False,
) -> Tuple[str, np.ndarray, List[int], str]: ...
def inspect(data: bytes, max_output_bytes: int, threads: int = 0) -> Dict[str, Any]: ...
def decode_into(
    data: bytes,
    out: np.ndarray,
    out_dtype: str,
    max_output_bytes: int,
    threads: int,
    expect_shape: Optional[List[int]] = None,
    expect_dtype: Optional[str] = None,
) -> None: ...
def decode_many(
    blobs: List[bytes],
    outs: Optional[List[np.ndarray]],
    out_dtypes: Optional[List[str]],
    max_output_bytes: int,
    threads: int,
    bf16_bits: bool = False,
) -> List[Tuple[str, np.ndarray, List[int], str]]: ...
def encode_many(arrays: List[np.ndarray], dtypes: List[str], options: CoderOptions) -> List[bytes]: ...
def encode_feature_many(
    items: List[
        Tuple[
            np.ndarray,
            str,
            Optional[int],
            Optional[List[Tuple[float, float]]],
            Optional[List[float]],
            Optional[List[int]],
        ]
    ],
    options: CoderOptions,
) -> List[bytes]: ...
def compress_feature(
    x: np.ndarray,
    dtype: str,
    options: CoderOptions,
    axis: Optional[int],
    clip: Optional[List[Tuple[float, float]]],
    scale: Optional[List[float]],
    zero_point: Optional[List[int]],
) -> bytes: ...
def max_compressed_size(n: int, dtype: str, ndim: int) -> int: ...
def encode_feature(
    x: np.ndarray,
    dtype: str,
    options: CoderOptions,
    axis: Optional[int],
    clip: Optional[List[Tuple[float, float]]],
    scale: Optional[List[float]],
    zero_point: Optional[List[int]],
) -> Tuple[bytes, Dict[str, Any]]: ...
def plan_feature(
    x: np.ndarray,
    options: CoderOptions,
    axis: Optional[int],
    clip: Optional[List[Tuple[float, float]]],
    scale: Optional[List[float]],
    zero_point: Optional[List[int]],
    search_all: bool,
) -> Dict[str, Any]: ...
def decode_feature_stages(data: bytes, threads: int, max_output_bytes: int = ...) -> Dict[str, float]: ...
def gpu_plan_stream(
    counts: np.ndarray, symbol_bytes: int, precision_bits: Optional[int], chunk_log2: Optional[int]
) -> Dict[str, Any]: ...
def gpu_stream_head(
    mode: str,
    symbol_bytes: int,
    n: int,
    *,
    symbol: Optional[int] = None,
    coded: Optional[Tuple[int, int, int, bytes, np.ndarray, int]] = None,
) -> Optional[bytes]: ...
def gpu_estimated_len(
    counts: np.ndarray, symbol_bytes: int, precision_bits: Optional[int], chunk_log2: Optional[int]
) -> int: ...
def gpu_affine_from_range(lo: float, hi: float, bits: int) -> Tuple[float, int]: ...
def gpu_resolve_params(
    bits: int,
    channels: int,
    params: Optional[Tuple[List[float], List[int]]] = None,
    clip: Optional[List[Tuple[float, float]]] = None,
    min_max: Optional[Tuple[List[Tuple[float, float]], bool]] = None,
) -> Tuple[List[float], List[int], Optional[List[float]]]: ...
def gpu_model_rows(total: int, nonzeros: int) -> int: ...
def gpu_candidate_rows(total: int) -> List[int]: ...
def gpu_search_cost(row_hist: np.ndarray, col_hist: np.ndarray) -> float: ...
def gpu_layout(
    data: bytes, max_output_bytes: int, expect_shape: Optional[List[int]] = None, expect_dtype: Optional[str] = None
) -> Dict[str, Any]: ...
def gpu_stream_layout(
    data: bytes, offset: int, length: int, index: int, n: int, symbol_bytes: int, compact: bool = False
) -> Dict[str, Any]: ...
def gpu_auto_takes_csr(dense_bytes: float, csr_bytes: float) -> bool: ...
def gpu_compact_estimates(
    dense_bytes: float, rows_bytes: float, cols_bytes: float, values_bytes: float, rows: int, nonzeros: int
) -> Tuple[float, float]: ...
def gpu_array_container(kind: str, dtype: str, shape: Tuple[int, ...], streams: List[bytearray]) -> bytes: ...
def gpu_feature_container(
    version: int,
    dtype: str,
    shape: Tuple[int, ...],
    bits: int,
    mode: str,
    axis: Optional[int],
    scale: List[float],
    zero_point: List[int],
    clamped: int,
    rows: int,
    nnz: int,
    streams: List[bytearray],
) -> bytes: ...

class Codec:
    """A fitted codec (wrapped by ``splitans.Codec``)."""

    @staticmethod
    def from_bytes(data: bytes) -> "Codec": ...
    def to_bytes(self) -> bytes: ...
    @property
    def id(self) -> str: ...
    @property
    def bits(self) -> int: ...
    @property
    def dtype(self) -> str: ...
    @property
    def shape(self) -> List[Optional[int]]: ...
    def describe(self) -> Dict[str, Any]: ...
    def compress(self, x: np.ndarray, nonfinite: str) -> bytes: ...
    def decompress(self, data: bytes, max_output_bytes: int) -> Tuple[np.ndarray, List[int]]: ...
    def inspect(self, data: bytes, max_output_bytes: int) -> Dict[str, Any]: ...
    def decode_codes(self, data: bytes, max_output_bytes: int) -> Tuple[np.ndarray, List[int]]: ...
    def round_trip(self, batch: np.ndarray, nonfinite: str) -> np.ndarray: ...

def codec_fit(
    samples: List[np.ndarray],
    dtype: str,
    bits: int,
    axis: Optional[int],
    clip: Optional[List[Tuple[float, float]]],
    per_sample: bool,
    nonfinite: str,
) -> Tuple[Codec, Dict[str, Any]]: ...

def codec_fit_quantizer(
    samples: List[np.ndarray],
    dtype: str,
    bits: int,
    kind: str,
    axis: Optional[int],
    params: Optional[List[Tuple[float, int]]],
    dead_zone: Optional[List[float]],
    codebooks: Optional[List[Tuple[List[float], List[float]]]],
    codebook_index: Optional[List[int]],
    nonfinite: str,
) -> Tuple[Codec, Dict[str, Any]]: ...
