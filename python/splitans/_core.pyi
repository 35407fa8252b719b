"""Type stubs of the native module (Rust, PyO3). The public API is in ``splitans``."""

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

__version__: str
FORMAT_VERSION: int
MAX_NDIM: int

class CorruptDataError(ValueError): ...
class UnsupportedVersionError(CorruptDataError): ...
class OutputTooLargeError(ValueError): ...

def encode(
    array: np.ndarray,
    dtype: str,
    kind: int,
    precision_bits: Optional[int],
    chunk_log2: int,
    threads: int,
) -> bytes: ...
def decode(data: bytes, max_output_bytes: int, threads: int) -> Tuple[str, np.ndarray, List[int]]: ...
def inspect(data: bytes, max_output_bytes: int) -> Dict[str, Any]: ...
def max_compressed_size(n: int, dtype: str, ndim: int) -> int: ...
