"""The general-purpose codecs the evaluation compares with, on the same quantized codes."""

from __future__ import annotations

from typing import Dict, Iterable, Optional

import numpy as np

__all__ = ["peer_bytes"]


def peer_bytes(codes: Iterable[np.ndarray]) -> Dict[str, Optional[float]]:
    """Mean bytes per item of zstd-19 and blosc2 (bitshuffle + zstd, level 9) on the codes."""
    codes = list(codes)
    out: Dict[str, Optional[float]] = {"zstd19": None, "blosc2": None}
    try:
        import zstandard

        zc = zstandard.ZstdCompressor(level=19)
        out["zstd19"] = float(np.mean([len(zc.compress(c.tobytes())) for c in codes]))
    except ImportError:
        pass
    try:
        import blosc2

        out["blosc2"] = float(np.mean([
            len(blosc2.compress(c.tobytes(), typesize=1, clevel=9, filter=blosc2.Filter.BITSHUFFLE,
                                codec=blosc2.Codec.ZSTD))
            for c in codes
        ]))
    except ImportError:
        pass
    return out
