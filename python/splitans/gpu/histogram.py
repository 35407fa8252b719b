"""Histograms of device symbols (histogram.cu): the only data besides the coded bytes that
crosses to the host when encoding."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .loader import blocks, u32, u64


class HistogramOps:
    """The kernels of histogram.cu (mixed into the device operations, ``pipelines.CupyOps``)."""

    def histogram(self, syms, width: int, bins: Optional[int] = None) -> np.ndarray:
        cp = self.cp
        counts = cp.zeros(1 << (8 * width), dtype=cp.uint64)
        n = int(syms.size)
        if n:
            if width == 1:
                part_bits = 8
            else:
                part_bits = 16
                while (4 << part_bits) > self.smem_optin:
                    part_bits -= 1
            smem = 4 << part_bits
            kernel = self._k("histogram.cu", "histogram_u8" if width == 1 else "histogram_u16")
            if smem > 48 * 1024:
                kernel.max_dynamic_shared_size_bytes = smem
            block = 512
            gx = max(min(blocks(n, block), self.sms * 4), -(-n // (1 << 31)))
            kernel(
                (gx, 1 << (8 * width - part_bits)), (block,), (syms, u64(n), u32(part_bits), counts), shared_mem=smem
            )
        if bins is not None:
            counts = counts[:bins]
        return cp.asnumpy(counts)
