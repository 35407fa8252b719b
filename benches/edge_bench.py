"""The codec on an edge device: one thread, one sample per blob, at the sizes of split computing.

    python edge_bench.py                  # about a minute on a Raspberry-Pi-class board
    python edge_bench.py --quick          # fewer repetitions (e.g. under emulation)
    python edge_bench.py --json out.json  # the same figures, to compare with another machine

Needs numpy and splitans (`pip install splitans-...-manylinux2014_aarch64...whl`); zstandard
(`pip install zstandard`) adds the peer: numpy quantization to the same bits, then zstd level 1
on the codes. Prints the machine (architecture, CPU, cores, SIMD features, numpy and splitans
versions, the vector kernels splitans runs there), then per case the blob size and the
compress and decompress times (best of several batches) and speeds in MB/s of float32 input,
and a memcpy of the largest input for scale. Run the same script on an x86-64 machine and
compare line by line: the inputs are built with integer-only arithmetic, so every machine
compresses the very same arrays, and the `digest` column (the first bytes of the blob's
SHA-256) must be the same everywhere: splitans gives the same bytes on every architecture.

Cases: ReLU feature maps of 1x32x7x7, 1x64x28x28 and 1x256x56x56 (a ResNet's late, middle and
early split points) at 4 and 8 bits with `splitans.compress`, and a fitted codec
(`splitans.Codec.fit` on 64 calibration maps, 4 bits) on 32x7x7 and 16x14x14 maps.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import time

# One thread: the figures are per core, as an edge device runs one request at a time.
os.environ.setdefault("RAYON_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import splitans  # noqa: E402

try:
    import zstandard
except ImportError:
    zstandard = None

_M64 = (1 << 64) - 1


def _raw(seed: int, n: int) -> np.ndarray:
    """n uint64 of splitmix64 (wrapping integer arithmetic: the same on every machine)."""
    with np.errstate(over="ignore"):
        z = (np.arange(1, n + 1, dtype=np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15) & _M64)) * np.uint64(
            0x9E3779B97F4A7C15
        )
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _bell(seed: int, shape) -> np.ndarray:
    """Bell-shaped float32 (four 16-bit uniforms summed, centred, times 2^-15), exact."""
    r = _raw(seed, math.prod(shape))
    m = np.uint64(0xFFFF)
    s = sum(((r >> np.uint64(k)) & m).astype(np.int64) for k in (0, 16, 32, 48)) - 2 * 0xFFFF
    return (s.astype(np.float32) * np.float32(2.0**-15)).reshape(shape)


def relu_map(shape, seed: int, zeros: float = 0.5) -> np.ndarray:
    """A feature map after a ReLU: per channel a smooth field (a quarter-resolution grid,
    repeated) plus finer detail, channel gains of 1/2, 1 or 2, and the share `zeros` of the
    elements at zero (the threshold is an element: an exact order statistic). Every operation
    is exact in float32, so the array is the same on every machine."""
    c, h, w = shape[-3:]
    lead = shape[:-3]
    k = 4 if min(h, w) >= 14 else 2
    hc, wc = -(-h // k), -(-w // k)
    coarse = _bell(seed, (*lead, c, hc, wc)).repeat(k, axis=-2).repeat(k, axis=-1)[..., :h, :w]
    fine = _bell(seed + 1, shape) * np.float32(0.25)
    gain = np.array([0.5, 1.0, 2.0], np.float32)[(_raw(seed + 2, c) % np.uint64(3)).astype(np.int64)]
    x = (coarse + fine) * gain.reshape(c, 1, 1)
    t = np.partition(x.ravel(), int(zeros * (x.size - 1)))[int(zeros * (x.size - 1))]
    return np.ascontiguousarray(np.maximum(x - t, np.float32(0)), dtype=np.float32)


def best_per_call(fn, quick: bool) -> float:
    """Seconds per call: the least mean over several batches, each of at least ~20 ms."""
    fn()
    t = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t, 1e-7)
    reps = max(1, int((0.005 if quick else 0.02) / once))
    best = float("inf")
    for _ in range(3 if quick else 7):
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t) / reps)
    return best


class NumpyZstd:
    """The peer: per-tensor affine quantization in numpy (as splitans quantizes: the range
    widened to include 0, round half to even), codes as uint8, zstd level 1."""

    def __init__(self, bits: int):
        self.bits = bits
        self.cctx = zstandard.ZstdCompressor(level=1)
        self.dctx = zstandard.ZstdDecompressor()

    def compress(self, x: np.ndarray):
        lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
        levels = (1 << self.bits) - 1
        scale = np.float32((hi - lo) / levels) if hi > lo else np.float32(1)
        zp = np.float32(np.round(-lo / scale))
        q = np.clip(np.rint(x / scale) + zp, 0, levels).astype(np.uint8)
        return scale, zp, x.shape, self.cctx.compress(q.tobytes())

    def decompress(self, blob):
        scale, zp, shape, data = blob
        q = np.frombuffer(self.dctx.decompress(data), dtype=np.uint8).reshape(shape)
        return (q.astype(np.float32) - zp) * scale


def cpu_description() -> dict:
    info = {"arch": platform.machine(), "cores": os.cpu_count()}
    try:
        info["cores_usable"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    text = ""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        pass
    fields = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = (s.strip() for s in line.split(":", 1))
            fields.setdefault(k, v)
    model = fields.get("model name") or fields.get("Model") or fields.get("Hardware")
    if not model and "CPU part" in fields:
        model = f"implementer {fields.get('CPU implementer', '?')} part {fields['CPU part']}"
    for path in ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model"):
        try:
            with open(path) as f:
                info["board"] = f.read().strip("\x00\n ")
            break
        except OSError:
            pass
    info["cpu"] = model or platform.processor() or "unknown"
    flags = set((fields.get("Features") or fields.get("flags") or "").split())
    wanted = ["asimd", "asimdhp", "asimddp", "sve", "sve2", "sse2", "sse4_2", "popcnt", "avx", "avx2", "fma", "avx512f"]
    simd = [f for f in wanted if f in flags]
    if info["arch"] in ("aarch64", "arm64") and "asimd" in simd:
        simd.insert(0, "neon")
    info["simd"] = simd
    if info["arch"] in ("aarch64", "arm64") and "flags" in fields and "Features" not in fields:
        # qemu user-mode emulation shows the host's /proc/cpuinfo.
        info["note"] = "/proc/cpuinfo describes an x86 CPU: emulated, timings mean nothing"
    return info


def run(quick: bool):
    rows = []

    def measure(case: str, x: np.ndarray, codec: str, compress, decompress, digest: bool):
        blob = compress(x)
        y = decompress(blob)
        assert y.shape == x.shape
        nbytes = x.size * 4
        size = len(blob) if isinstance(blob, (bytes, bytearray)) else len(blob[-1])
        tc = best_per_call(lambda: compress(x), quick)
        td = best_per_call(lambda: decompress(blob), quick)
        rows.append(
            {
                "case": case,
                "elements": int(x.size),
                "codec": codec,
                "blob_bytes": size,
                "ratio": nbytes / size,
                "compress_us": tc * 1e6,
                "compress_MBps": nbytes / tc / 1e6,
                "decompress_us": td * 1e6,
                "decompress_MBps": nbytes / td / 1e6,
                "max_error": float(np.abs(y - x).max()),
                "digest": hashlib.sha256(blob).hexdigest()[:12] if digest else "",
            }
        )

    shapes = [(1, 32, 7, 7), (1, 64, 28, 28), (1, 256, 56, 56)]
    for shape in shapes:
        x = relu_map(shape, seed=sum(shape))
        for bits in (4, 8):
            case = f"relu {'x'.join(map(str, shape))} {bits}-bit"
            measure(
                case,
                x,
                "splitans",
                lambda a, b=bits: splitans.compress(a, bits=b, threads=1),
                lambda blob: splitans.decompress(blob, threads=1),
                True,
            )
            if zstandard is not None:
                peer = NumpyZstd(bits)
                measure(case, x, "numpy+zstd-1", peer.compress, peer.decompress, False)
    for shape in [(32, 7, 7), (16, 14, 14)]:
        calibration = np.stack([relu_map(shape, seed=1000 + i) for i in range(64)])
        codec = splitans.Codec.fit(calibration, bits=4)
        x = relu_map(shape, seed=5000)
        case = f"fitted {'x'.join(map(str, shape))} 4-bit"
        measure(case, x, "splitans Codec", codec.compress, codec.decompress, True)
        if zstandard is not None:
            peer = NumpyZstd(4)
            measure(case, x, "numpy+zstd-1", peer.compress, peer.decompress, False)
    big = relu_map(shapes[-1], seed=sum(shapes[-1]))
    dst = np.empty_like(big)
    t = best_per_call(lambda: np.copyto(dst, big), quick)
    memcpy = {"bytes": big.nbytes, "us": t * 1e6, "MBps": big.nbytes / t / 1e6}
    return rows, memcpy


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer, shorter batches (e.g. under emulation)")
    ap.add_argument("--json", metavar="FILE", help="also write the machine and every figure as JSON")
    args = ap.parse_args(argv)
    machine = cpu_description()
    kernels = splitans._core.simd_kernels() if hasattr(splitans._core, "simd_kernels") else []
    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "splitans": splitans.__version__,
        "splitans_kernels": kernels,
        "zstandard": getattr(zstandard, "__version__", None),
    }
    print("splitans edge benchmark (benches/edge_bench.py)")
    board = f", board {machine['board']}" if "board" in machine else ""
    print(
        f"machine: {machine['arch']}, CPU {machine['cpu']}{board}, {machine['cores']} cores "
        f"({machine.get('cores_usable', '?')} usable), SIMD: {' '.join(machine['simd']) or 'none listed'}"
    )
    if "note" in machine:
        print(f"note: {machine['note']}")
    print(
        f"Python {versions['python']}, numpy {versions['numpy']}, splitans {versions['splitans']} "
        f"(vector kernels: {', '.join(kernels) or 'none, portable loops'}), "
        f"zstandard {versions['zstandard'] or 'not installed (no peer)'}; "
        f"{platform.system()} {platform.release()}"
    )
    print("one thread, one sample per blob, best of several batches; MB/s of float32 input\n")
    rows, memcpy = run(args.quick)
    head = ("case", "codec", "blob B", "ratio", "comp us", "comp MB/s", "dec us", "dec MB/s", "max err", "digest")
    fmt = "{:<26} {:<15} {:>8} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12}"
    print(fmt.format(*head))
    for r in rows:
        print(
            fmt.format(
                r["case"],
                r["codec"],
                r["blob_bytes"],
                f"{r['ratio']:.1f}",
                f"{r['compress_us']:.1f}",
                f"{r['compress_MBps']:.0f}",
                f"{r['decompress_us']:.1f}",
                f"{r['decompress_MBps']:.0f}",
                f"{r['max_error']:.3g}",
                r["digest"],
            )
        )
    print(f"\nmemcpy (numpy copyto) of {memcpy['bytes']:,} bytes: {memcpy['us']:.0f} us, {memcpy['MBps']:.0f} MB/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "versions": versions, "rows": rows, "memcpy": memcpy}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
