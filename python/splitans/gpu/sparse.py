"""The CSR stage on the device (sparse.cu): nonzero flags, compaction, positions, row counts,
the decoder's fill and scatter (FORMAT.md 6.4, 6.8)."""

from __future__ import annotations

import math

import numpy as np

from .. import _core
from .loader import BLOCK, blocks, u32, u64


class SparseOps:
    """The kernels of sparse.cu (mixed into the device operations, ``pipelines.CupyOps``)."""

    def _w(self, a) -> str:
        return "u8" if a.dtype == self.cp.uint8 else "u16"

    def csr_flags(self, q, channels: int, inner: int, zero_point: np.ndarray):
        cp = self.cp
        n = int(q.size)
        flags = cp.empty(n, dtype=cp.uint32)
        self._k("sparse.cu", "csr_flags_" + self._w(q))(
            (self._grid(n),), (BLOCK,), (q, u64(n), u32(channels), u64(inner), cp.asarray(zero_point), flags)
        )
        return flags

    def csr_compact(self, q, flags, prefix, cols: int, nnz: int):
        cp = self.cp
        n = int(q.size)
        col_idx = cp.empty(nnz, dtype=cp.uint16)
        values = cp.empty(nnz, dtype=q.dtype)
        if nnz:
            self._k("sparse.cu", "csr_compact_" + self._w(q))(
                (self._grid(n),), (BLOCK,), (q, u64(n), flags, prefix, u64(cols), col_idx, values)
            )
        return col_idx, values

    def csr_positions(self, flags, prefix, nnz: int):
        cp = self.cp
        n = int(flags.size)
        pos = cp.empty(nnz, dtype=cp.uint64)
        if nnz:
            self._k("sparse.cu", "csr_positions")((self._grid(n),), (BLOCK,), (u64(n), flags, prefix, pos))
        return pos

    def csr_row_counts(self, prefix, rows: int, cols: int):
        cp = self.cp
        counts = cp.empty(rows, dtype=cp.uint16)
        self._k("sparse.cu", "csr_row_counts")((self._grid(rows),), (BLOCK,), (prefix, u64(rows), u64(cols), counts))
        return counts

    def csr_fill(self, n: int, channels: int, inner: int, zero_point: np.ndarray, width: int):
        cp = self.cp
        out = cp.empty(n, dtype=cp.uint8 if width == 1 else cp.uint16)
        if n:
            self._k("sparse.cu", "csr_fill_zero_points_" + self._w(out))(
                (self._grid(n),), (BLOCK,), (out, u64(n), u32(channels), u64(inner), cp.asarray(zero_point))
            )
        return out

    def csr_scatter(self, counts, row_start, cols: int, col_idx, values, out) -> bool:
        cp = self.cp
        rows = int(counts.size)
        bad = cp.zeros(1, dtype=cp.uint32)
        warps = BLOCK // 32
        grid = min(blocks(rows, warps), self.sms * 64)
        self._k("sparse.cu", "csr_scatter_" + self._w(out))(
            (grid,), (BLOCK,), (counts, row_start, u64(rows), u64(cols), col_idx, values, out, bad)
        )
        return bool(int(bad[0]))


def search_rows(ops, flags, prefix, total: int, nnz: int) -> int:
    """reshape="search": the first candidate with the least search_cost (FORMAT.md 6.8)."""
    xp = ops.xp
    positions = ops.csr_positions(flags, prefix, nnz)
    best, best_cost = total, math.inf
    for rows in _core.gpu_candidate_rows(total):
        cols = total // rows
        row_hist = ops.histogram(ops.csr_row_counts(prefix, rows, cols), 2, bins=cols + 1)
        columns = xp.ascontiguousarray((positions % xp.uint64(cols)).astype(xp.uint16))
        col_hist = ops.histogram(columns, 2, bins=cols)
        cost = _core.gpu_search_cost(row_hist, col_hist)
        if cost < best_cost:
            best, best_cost = rows, cost
    return best

