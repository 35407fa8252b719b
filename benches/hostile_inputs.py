#!/usr/bin/env python3
"""Hostile inputs of issue 23 (items 5-7), run against the installed splitans, each in a fresh
process with the address-space limit the issue names where it names one; one line each:

    python benches/hostile_inputs.py

- fitted blobs (FORMAT.md 9.5): 12 bytes declaring 4 GiB at the default cap and 8 GiB with no
  cap under a 3 GiB address-space limit (MemoryError, never an abort), 8 GiB at a 1 GiB cap,
  a 1 GiB blob at a 1 GiB cap (peak RSS against the README's cap x 1.1 + 64 MiB), inspect;
- a 23-byte chunk declaring 1 GiB through numcodecs (decode into a 64 x 64 `out`) and a zarr v3
  array of 64 x 64 chunks, under 0.6 GiB;
- `splitans compress` of a truncated .npy header and of a .npy declaring 10^6 x 10^6 (exit 4).

Every case is also a test (tests/test_hardening.py, tests/test_cli.py); this prints what a user
sees. Needs zarr 3 for the zarr row (`pip install '.[zarr]'`).
"""
import os
import resource
import subprocess
import sys
import tempfile
import textwrap

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peak_rss as P  # noqa: E402

GiB = 1 << 30


def child(code: str, as_gb=None) -> str:
    def lim():
        if as_gb:
            n = int(as_gb * GiB)
            resource.setrlimit(resource.RLIMIT_AS, (n, n))
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, preexec_fn=lim, timeout=300)
    tail = (r.stdout.strip().splitlines() or [""])[-1]
    if r.returncode < 0:
        return f"the process died ({'SIGABRT' if r.returncode == -6 else f'signal {-r.returncode}'}): {r.stderr.strip()[-200:]}"
    return tail


PRE = """
import sys, time, resource
import numpy as np, splitans
def outcome(f):
    t = time.perf_counter()
    try:
        y = f(); r = 'ok ' + str(getattr(y, 'shape', ''))
    except BaseException as e:
        r = type(e).__name__ + ': ' + str(e)
    print(f'[{time.perf_counter() - t:.3f} s, peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB] {r}')
"""

codec = P.fitted_codec("float32")
c_hex = codec.to_bytes().hex()
b4 = P.fitted_constant_bomb(codec, (1 << 28) - 1)
b8 = P.fitted_constant_bomb(codec, 1 << 29)
print(f"fitted blob declaring 4 GiB: {len(b4)} bytes")
dec = f"codec = splitans.Codec.from_bytes(bytes.fromhex('{c_hex}'))\n"
print("1. 12-byte blob, default cap, RLIMIT_AS 3 GiB:", child(PRE + dec + f"outcome(lambda: codec.decompress(bytes.fromhex('{b4.hex()}')))", 3))
print("2. 8 GiB declared, max_output_bytes=None, RLIMIT_AS 3 GiB:", child(PRE + dec + f"outcome(lambda: codec.decompress(bytes.fromhex('{b8.hex()}'), max_output_bytes=None))", 3))
print("3. 8 GiB declared, cap 1 GiB:", child(PRE + dec + f"outcome(lambda: codec.decompress(bytes.fromhex('{b8.hex()}'), max_output_bytes=1<<30))"))
b1 = P.fitted_constant_bomb(codec, (1 << 26) - 1)
print("4. a 1 GiB blob at a 1 GiB cap (README bound cap x 1.1 + 64 MiB = 1,190 MiB):", child(PRE + dec + f"outcome(lambda: codec.decompress(bytes.fromhex('{b1.hex()}'), max_output_bytes=1<<30))"))
print("5. codec.inspect of the 12-byte 4 GiB blob:", child(PRE + dec + f"outcome(lambda: codec.inspect(bytes.fromhex('{b4.hex()}')))"))

# numcodecs / zarr: the smallest chunk that declares 1 GiB (the compact container of a constant array)
big = np.zeros(1 << 28, np.float32)
import splitans
chunk = splitans.compress(big, bits=8)
del big
print(f"6. numcodecs decode into a 64x64 out, a {len(chunk)}-byte chunk declaring 1 GiB, RLIMIT_AS 0.6 GiB:",
      child(PRE + f"from splitans.numcodecs import Splitans\nout = np.empty((64, 64), np.float32)\noutcome(lambda: Splitans(bits=8).decode(bytes.fromhex('{chunk.hex()}'), out=out))", 0.6))
d = tempfile.mkdtemp()
print("7. zarr v3 array of 64x64 chunks, that chunk on disk, RLIMIT_AS 0.6 GiB:", child(PRE + f"""
import os, zarr
from splitans.zarr3 import Splitans as S3
d = {d!r}
z = zarr.create_array(store=d, shape=(64, 64), chunks=(64, 64), dtype='float32', serializer=S3(bits=8), compressors=None, zarr_format=3)
z[:] = 1.0
(path,) = [os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs if f != 'zarr.json']
open(path, 'wb').write(bytes.fromhex('{chunk.hex()}'))
outcome(lambda: zarr.open_array(d, mode='r')[:])
""", 0.6))

# CLI .npy cases
t = tempfile.mkdtemp()
full = os.path.join(t, "trunc.npy")
np.save(full, np.ones((4, 4), np.float32))
data = open(full, "rb").read()
open(full, "wb").write(data[:40])
huge = os.path.join(t, "huge.npy")
with open(huge, "wb") as f:
    np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)})
for name, p in (("truncated header", full), ("10^6 x 10^6 declared", huge)):
    r = subprocess.run([sys.executable, "-m", "splitans", "compress", p, "--bits", "8", "-o", os.path.join(t, "o.spl")], capture_output=True, text=True)
    print(f"8. CLI compress, .npy {name}: exit {r.returncode}: {(r.stderr.strip().splitlines() or [''])[-1][:200]}")
