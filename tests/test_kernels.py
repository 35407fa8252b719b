"""The vector kernels (rust/src/cpu.rs): which run on this CPU, and that turning them off
(SPLITANS_DISABLE_SIMD=1, read once at the first call, hence subprocesses) changes no byte: the
portable loops, which CPUs without AVX2 or NEON run, give the same blobs and the same decoded
arrays as AVX2 (x86-64) or NEON (aarch64); and so does the AVX2 rANS decoder where the AVX-512
one runs (SPLITANS_DISABLE_AVX512=1). Runs in the emulated arm64 root too (.ci/arm64-test). Where the CPU has both, the SSE4.1 and AVX2
rANS decoders (SPLITANS_RANS_KERNEL) give the same bytes too."""

from __future__ import annotations

import json
import os
import pathlib
import platform
import subprocess
import sys

import splitans

# Inputs that reach every vector pass: runs of >= 64 floats (the range scan), 32-lane rANS
# streams (>= 8192 symbols) of u8 and u16 codes, NaN clamped, per-channel ranges, fitted codecs
# whose chunks have 8 lanes or more (32 at 8 bits, with NaN clamped too). Built with integer-exact numpy (the same everywhere).
SCRIPT = r"""
import hashlib, json
import numpy as np
import splitans

def raw(seed, n):
    with np.errstate(over="ignore"):
        z = (np.arange(1, n + 1, dtype=np.uint64) + np.uint64(seed)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))

def relu(seed, shape):
    r = raw(seed, int(np.prod(shape)))
    v = ((r >> np.uint64(40)) & np.uint64(0xFFFF)).astype(np.float32) * np.float32(2.0**-12) - np.float32(6)
    coarse = np.repeat(v.reshape(shape)[..., ::2, :], 2, axis=-2)[..., : shape[-2], :]
    return np.maximum(coarse + v.reshape(shape) * np.float32(0.125), 0).astype(np.float32)

def sha(b):
    return hashlib.sha256(bytes(b)).hexdigest()[:16]

out = {"kernels": splitans._core.simd_kernels()}
x = relu(1, (1, 64, 28, 28))
nan = x.copy()
nan.ravel()[::97] = np.nan
nan.ravel()[5::101] = np.inf
cases = {
    "b4": (x, dict(bits=4)),
    "b8": (x, dict(bits=8)),
    "b12": (x, dict(bits=12)),
    "b8_axis": (x, dict(bits=8, axis=1)),
    "b8_nan": (nan, dict(bits=8, nonfinite="clamp")),
    "b16_nan": (nan, dict(bits=16, nonfinite="clamp")),
    "int16": ((raw(2, 70000) % np.uint64(3000)).astype(np.int16).reshape(70, 1000), {}),
}
for name, (a, kw) in cases.items():
    blob = splitans.compress(a, **kw)
    out[name] = [sha(blob), sha(np.ascontiguousarray(splitans.decompress(blob)).tobytes())]
for shape in [(16, 14, 14), (64, 28, 28)]:
    cal = np.stack([relu(100 + i, shape) for i in range(24)])
    codec = splitans.Codec.fit(cal, bits=4)
    blob = codec.compress(relu(7, shape))
    out["fitted" + "x".join(map(str, shape))] = [sha(blob), sha(codec.decompress(blob).tobytes())]
# Chunks of 16 or 32 lanes (the 16-lane encoder steps) at 8 bits, and the fixed quantizer's pass
# that finds a NaN or infinity and quantizes again (a zero point above 0, where NaN's code shows).
shape = (16, 128, 128)
codec = splitans.Codec.fit(np.stack([relu(200 + i, shape) - 1 for i in range(6)]), bits=8)
good = relu(9, shape) - 1
bad = good.copy()
bad.ravel()[::89] = np.nan
bad.ravel()[3::113] = -np.inf
for name, a, kw in [("fitted8", good, {}), ("fitted8_nan", bad, dict(nonfinite="clamp"))]:
    blob = codec.compress(a, **kw)
    out[name] = [sha(blob), sha(codec.decompress(blob).tobytes())]
print(json.dumps(out))
"""


def _run(disable: str, disable_avx512: str = "0", rans_kernel: str = "") -> dict:
    env = dict(
        os.environ,
        SPLITANS_DISABLE_SIMD=disable,
        SPLITANS_DISABLE_AVX512=disable_avx512,
        SPLITANS_RANS_KERNEL=rans_kernel,
    )
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_the_kernels_named_are_this_cpus():
    kernels = splitans._core.simd_kernels()
    machine = platform.machine().lower()
    if machine in ("aarch64", "arm64"):
        assert kernels == ["neon"]
    elif machine in ("x86_64", "amd64"):
        flags = pathlib.Path("/proc/cpuinfo").read_text().split() if pathlib.Path("/proc/cpuinfo").exists() else []
        # Under qemu user mode /proc/cpuinfo is the host's: only an x86-64 CPU is checked here.
        if flags:
            text = pathlib.Path("/proc/cpuinfo").read_text()
            intel = "GenuineIntel" in text
            wide = all(f in flags for f in ("avx512f", "avx512bw", "avx512vl", "avx512_vbmi2", "popcnt"))
            want = []
            if "avx2" in flags:
                want = ["avx2"] + (["avx512-decode"] if wide and intel and "popcnt" in flags else [])
            # The SSE4.1 rANS decoder where AVX2 is absent or runs as 128-bit halves (AMD family
            # 17h below model 30h), unless the AVX-512 one runs or the choice is forced.
            family = int(_cpuinfo_field(text, "cpu family") or 0)
            model = int(_cpuinfo_field(text, "model") or 0)
            halves = "AuthenticAMD" in text and family == 0x17 and model < 0x30
            sse41 = {"sse41": True, "avx2": "avx2" not in flags}.get(
                os.environ.get("SPLITANS_RANS_KERNEL", ""), "avx2" not in flags or halves
            )
            if sse41 and "sse4_1" in flags and "popcnt" in flags and "avx512-decode" not in want:
                want.append("sse41-decode")
            assert kernels == want
    stub = pathlib.Path(splitans.__file__).with_name("_core.pyi").read_text()
    assert "def simd_kernels() -> List[str]: ..." in stub


def _cpuinfo_field(text: str, name: str) -> str | None:
    """The first value of `name` in /proc/cpuinfo's text."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def test_portable_loops_give_the_same_bytes_as_the_vector_kernels():
    vector, portable = _run("0"), _run("1")
    assert portable.pop("kernels") == []
    assert vector.pop("kernels") == splitans._core.simd_kernels()
    assert portable == vector


def test_the_avx2_decoder_gives_the_same_bytes_as_the_avx512_one():
    """Where the AVX-512 rANS decoder runs, turning it off (SPLITANS_DISABLE_AVX512=1) leaves the
    AVX2 one, with the same blobs and decoded arrays (elsewhere both runs are the same kernels)."""
    wide, narrow = _run("0"), _run("0", "1")
    assert wide.pop("kernels") == splitans._core.simd_kernels()
    assert "avx512-decode" not in narrow.pop("kernels")
    assert narrow == wide


def test_the_sse41_decoder_gives_the_same_bytes_as_the_avx2_one():
    """Where the CPU has both, the rANS streams' SSE4.1 and AVX2 decoders (forced either way by
    SPLITANS_RANS_KERNEL) give the same blobs and decoded arrays; the kernel names say which
    ran (on an x86-64 CPU without AVX2 only the SSE4.1 one can run, and on aarch64 neither)."""
    sse41, avx2 = _run("0", rans_kernel="sse41"), _run("0", rans_kernel="avx2")
    ks, ka = sse41.pop("kernels"), avx2.pop("kernels")
    if platform.machine().lower() in ("x86_64", "amd64") and "avx2" in ks and "avx512-decode" not in ks:
        assert "sse41-decode" in ks and "sse41-decode" not in ka
    assert sse41 == avx2
