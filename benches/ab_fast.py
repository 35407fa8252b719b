"""A/B of issue 15's calls across builds: run it once per build, alternating, e.g.

    PYTHONPATH=../before/python python benches/ab_fast.py > before.json
    PYTHONPATH=python python benches/ab_fast.py > after.json

It prints JSON (microseconds, best of 10 rounds): the 1x256x56x56 block3.expand map at 8 bits
(decompress also into out=) and a 1x32x7x7 block12.expand map at 4 and 8 bits, auto, beside
memcpy, numpy and zstd -1 in the same run, and a batch of 256 small maps through compress_many /
decompress_many on one thread. It uses only calls every build has."""

import json
import os
import sys

import numpy as np
import zstandard

import splitans

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_fast as bf  # noqa: E402

big, smalls = bf.maps()
x = smalls[0]
zc, zd = zstandard.ZstdCompressor(level=1), zstandard.ZstdDecompressor()
blob = splitans.compress(big, bits=8, threads=1)
dst = np.empty_like(big)
s4, s8 = splitans.compress(x, bits=4), splitans.compress(x, bits=8)
scale = np.float32(big.max() / 255)
codes = np.round(big / scale).astype(np.uint8)
zcodes = zc.compress(codes)
fns = {
    "memcpy big": lambda: np.copyto(dst, big),
    "big compress": lambda: splitans.compress(big, bits=8, threads=1),
    "big decompress": lambda: splitans.decompress(blob, threads=1),
    "zstd-1 dec codes big": lambda: zd.decompress(zcodes),
    "numpy quantize big": lambda: np.round(big / scale).astype(np.uint8),
}
t = bf.race(fns, 10, 5)
fns2 = {
    "small4 compress": lambda: splitans.compress(x, bits=4),
    "small8 compress": lambda: splitans.compress(x, bits=8),
    "small4 decompress": lambda: splitans.decompress(s4),
    "small8 decompress": lambda: splitans.decompress(s8),
    "numpy+zstd-1 compress small": lambda: zc.compress(np.round(x / np.float32(x.max() / 15)).astype(np.uint8)),
}
t.update(bf.race(fns2, 10, 200))
batch = [smalls[i % len(smalls)] for i in range(bf.N_BATCH)]
blobs = splitans.compress_many(batch, bits=8)
dst_big = np.empty_like(big)
fns3 = {
    "big decompress out=": lambda: splitans.decompress(blob, threads=1, out=dst_big),
    "batch256 compress_many t1": lambda: splitans.compress_many(batch, bits=8, threads=1),
    "batch256 decompress_many t1": lambda: splitans.decompress_many(blobs, threads=1),
}
t.update(bf.race(fns3, 10, 5))
print(json.dumps({"so": splitans._core.__file__, "blob": len(blob), "s4": len(s4), "s8": len(s8),
                  **{k: round(v * 1e6, 1) for k, v in t.items()}}, indent=1))
