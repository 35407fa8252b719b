#!/usr/bin/env python3
"""One prepared GPU check for a lent H100/H200 machine: install, bit-exact tests, timings.

On the device machine, from the repository root, in one call (about 2-4 minutes):

    python3 benches/gpu_check.py                 # wheels from .whl/ if present, then everything
    python3 benches/gpu_check.py --quick         # fewer timed runs
    python3 benches/gpu_check.py --dry-run       # say what would run; exit 0 (works without a GPU)

Steps:
1. Install: every wheel in --wheels (default .whl/) into /tmp/splitans-site with
   `pip install --no-index --no-deps --target`, put first on sys.path and PYTHONPATH (nothing can
   be downloaded there). The machine's image already has CuPy (cupy-cuda13x), numpy, pytest and
   torch; carry a splitans wheel built for its Python (3.12), and nvidia-nvcomp-cu13 for the
   nvCOMP row. Build the splitans wheel here with
   `maturin build --release -i python3.12 -o .whl` (and `echo /.whl/ >> .git/info/exclude`).
2. tests/test_gpu.py (pytest, --noconftest): GPU blobs == CPU blobs byte for byte, each side
   decodes the other's, corrupt input raises CorruptDataError.
3. Timings with CUDA events (warm-up runs discarded, median of the timed runs), each checked
   against the CPU bytes: 64 MiB of 8-bit symbols (zero-heavy quantized-activation codes)
   encode/decode in GB/s of symbols (whole call, and the chunk-coding kernel alone), with the
   default chunks and with 2^16-symbol chunks; the CPU coder on the same data; nvCOMP ANS on the
   same bytes when `nvidia.nvcomp` imports; and a 1x256x56x56 float32 activation at 8 bits,
   mode "auto", compress/decompress end to end in microseconds (GPU and CPU).
4. A final table; with $OUT set, also $OUT/gpu_check.json and $OUT/test_gpu.log.
"""

from __future__ import annotations

import argparse
import glob
import importlib
import importlib.util
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional

REPO = pathlib.Path(__file__).resolve().parents[1]
SITE = "/tmp/splitans-site"
MIB = 1 << 20


def log(msg: str = "") -> None:
    print(msg, flush=True)


def have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def install(wheels: pathlib.Path, dry: bool) -> List[str]:
    found = sorted(glob.glob(str(wheels / "*.whl")))
    if not found:
        log(f"install: no wheels in {wheels}; using what is installed")
        return []
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-index",
        "--no-deps",
        "--no-compile",
        "--no-cache-dir",
        "--upgrade",
        "--target",
        SITE,
        *found,
    ]
    log(f"install: {len(found)} wheel(s) from {wheels} into {SITE}: " + ", ".join(os.path.basename(w) for w in found))
    if dry:
        log("  would run: " + " ".join(cmd[:10]) + " ...")
        return found
    subprocess.run(cmd, check=True)
    sys.path.insert(0, SITE)
    os.environ["PYTHONPATH"] = SITE + os.pathsep + os.environ.get("PYTHONPATH", "")
    importlib.invalidate_caches()
    return found


def environment() -> Dict[str, Any]:
    env: Dict[str, Any] = {"python": platform.python_version()}
    for mod in ("numpy", "splitans", "cupy", "torch"):
        env[mod] = None
        if have(mod):
            try:
                env[mod] = getattr(importlib.import_module(mod), "__version__", "?")
            except Exception as e:  # importable name, broken package
                env[mod] = f"import failed: {e}"
    env["nvcomp"] = None
    try:
        from nvidia import nvcomp

        env["nvcomp"] = getattr(nvcomp, "__version__", "?")
    except Exception:
        pass
    env["device"] = None
    if env["cupy"] and not str(env["cupy"]).startswith("import failed"):
        try:
            import cupy as cp

            dev = cp.cuda.Device()
            props = cp.cuda.runtime.getDeviceProperties(dev.id)
            name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
            env["device"] = f"{name}, sm_{dev.compute_capability}, {dev.attributes['MultiProcessorCount']} SMs"
            env["cuda_runtime"] = cp.cuda.runtime.runtimeGetVersion()
            env["driver"] = cp.cuda.runtime.driverGetVersion()
        except Exception as e:
            env["device"] = f"none: {e}"
    return env


def run_tests(out: Optional[pathlib.Path], timeout: int) -> Dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-rs",
        "--noconftest",
        "-p",
        "no:cacheprovider",
        str(REPO / "tests" / "test_gpu.py"),
    ]
    log("tests: " + " ".join(cmd))
    t = time.perf_counter()
    try:
        r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        text, code = r.stdout + r.stderr, r.returncode
    except subprocess.TimeoutExpired as e:
        text, code = (e.stdout or "") + (e.stderr or "") if isinstance(e.stdout, str) else "", -1
        text += f"\n(timed out after {timeout} s)"
    if out:
        (out / "test_gpu.log").write_text(text)
    tail = text.strip().splitlines()[-25:]
    log("\n".join("  " + line for line in tail))
    summary = next(
        (line for line in reversed(tail) if " passed" in line or " failed" in line or " error" in line), "no summary"
    )
    return {"exit_code": code, "summary": summary.strip(), "seconds": round(time.perf_counter() - t, 1)}


def median_us(cp, fn: Callable[[], Any], warmup: int, runs: int) -> float:
    """Median over `runs` timed calls of fn (after `warmup` untimed ones), in microseconds, from
    CUDA events recorded around each call on the current stream. fn may block on the host (a
    call that returns bytes): the end event is recorded after it returns, so host work counts."""
    for _ in range(warmup):
        fn()
    cp.cuda.Device().synchronize()
    times = []
    for _ in range(runs):
        start, end = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, end) * 1000.0)
    return statistics.median(times)


def median_cpu_us(fn: Callable[[], Any], warmup: int, runs: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e6)
    return statistics.median(times)


def symbols_64mib():
    import numpy as np

    rng = np.random.default_rng(2024)
    n = 64 * MIB
    # Quantized post-ReLU codes: 60% zero point, the rest a decaying tail (about 3.6 bits/symbol).
    tail = np.minimum(rng.exponential(18.0, n), 255).astype(np.uint8)
    return np.where(rng.random(n, dtype=np.float32) < 0.6, np.uint8(0), tail)


def activation():
    import numpy as np

    rng = np.random.default_rng(7)
    x = rng.normal(-0.2, 1.0, (1, 256, 56, 56)).astype(np.float32)
    return np.maximum(x, 0) * rng.uniform(0.3, 3.0, (1, 256, 1, 1)).astype(np.float32)


def bench(quick: bool) -> List[Dict[str, Any]]:
    import cupy as cp
    import numpy as np

    import splitans
    from splitans import _core, gpu

    rows: List[Dict[str, Any]] = []
    runs, warm = (5, 1) if quick else (15, 3)
    s = symbols_64mib()
    s_dev = cp.asarray(s)
    nbytes = s.nbytes

    def gbs(us: float) -> float:
        return nbytes / (us * 1e-6) / 1e9

    for label, kw in (("default chunks", {}), ("2^16 chunks", dict(chunk_symbols=1 << 16))):
        cpu_blob = splitans.rans_encode(s, **kw)
        info = splitans.inspect(cpu_blob)["streams"][0]
        desc = (
            f"64 MiB u8, {label} ({info['chunk_symbols']} symbols, {info['lanes']} lanes, p={info['precision_bits']})"
        )
        ratio = len(cpu_blob) / nbytes
        gpu_blob = gpu.rans_encode_gpu(s_dev, **kw)
        exact = gpu_blob == cpu_blob
        dec_exact = bool((gpu.rans_decode_gpu(cpu_blob) == s_dev).all())
        enc_us = median_us(cp, lambda: gpu.rans_encode_gpu(s_dev, **kw), warm, runs)
        dec_us = median_us(cp, lambda: gpu.rans_decode_gpu(cpu_blob), warm, runs)
        # The chunk-coding kernels alone, on the plan and buffers of one call.
        ops = gpu.pipelines.ops_for()
        counts = ops.histogram(s_dev, 1)
        chunk_log2 = kw["chunk_symbols"].bit_length() - 1 if kw else None
        plan = _core.gpu_plan_stream(counts, 1, None, chunk_log2)
        assert plan["mode"] == "rans", plan["mode"]
        table = ops.enc_table(plan, 1)
        args = (s_dev, 1, s.size, plan["chunk_log2"], plan["lanes"], plan["precision_bits"], table)
        k_enc_us = median_us(cp, lambda: ops.encode(*args), warm, runs)
        hist_us = median_us(cp, lambda: ops.histogram(s_dev, 1), warm, runs)
        lay = _core.gpu_layout(cpu_blob, 1 << 40)
        st = lay["streams"][0]
        blob_dev = cp.asarray(np.frombuffer(cpu_blob, np.uint8))
        fb, dsym = ops.dec_table(st)
        k_dec_us = median_us(cp, lambda: ops.decode(blob_dev, st, fb, dsym, 1), warm, runs)
        cpu_enc_us = median_cpu_us(lambda: splitans.rans_encode(s, **kw), 1, max(3, runs // 3))
        cpu_dec_us = median_cpu_us(lambda: splitans.rans_decode(cpu_blob), 1, max(3, runs // 3))
        rows += [
            dict(
                case=desc,
                what="GPU rans_encode_gpu (whole call)",
                us=enc_us,
                gbs=gbs(enc_us),
                ratio=ratio,
                bit_exact=exact,
            ),
            dict(case=desc, what="GPU histogram kernel + copy", us=hist_us, gbs=gbs(hist_us)),
            dict(case=desc, what="GPU rans_encode kernel", us=k_enc_us, gbs=gbs(k_enc_us)),
            dict(case=desc, what="GPU rans_decode_gpu (whole call)", us=dec_us, gbs=gbs(dec_us), bit_exact=dec_exact),
            dict(case=desc, what="GPU rans_decode kernel", us=k_dec_us, gbs=gbs(k_dec_us)),
            dict(
                case=desc,
                what=f"CPU rans_encode ({os.cpu_count()} threads)",
                us=cpu_enc_us,
                gbs=gbs(cpu_enc_us),
                ratio=ratio,
            ),
            dict(case=desc, what=f"CPU rans_decode ({os.cpu_count()} threads)", us=cpu_dec_us, gbs=gbs(cpu_dec_us)),
        ]
        log(
            f"  {desc}: encode {gbs(enc_us):.1f} GB/s (kernel {gbs(k_enc_us):.1f}), decode {gbs(dec_us):.1f} GB/s (kernel {gbs(k_dec_us):.1f}), exact {exact and dec_exact}"
        )

    rows += bench_nvcomp(cp, s_dev, nbytes, warm, runs)

    x = activation()
    x_dev = cp.asarray(x)
    cpu_blob = splitans.compress(x, bits=8)
    info = splitans.inspect(cpu_blob)
    desc = f"1x256x56x56 f32, 8 bits, auto -> {info['mode']} ({len(cpu_blob)} B, {x.nbytes / len(cpu_blob):.1f}x)"
    exact = gpu.compress_gpu(x_dev, bits=8) == cpu_blob
    y_cpu = splitans.decompress(cpu_blob)
    dec_exact = bool(np.array_equal(gpu.decompress_gpu(cpu_blob).get().view(np.uint32), y_cpu.view(np.uint32)))
    f_runs = runs * 3
    rows += [
        dict(
            case=desc,
            what="GPU compress_gpu",
            us=median_us(cp, lambda: gpu.compress_gpu(x_dev, bits=8), warm, f_runs),
            bit_exact=exact,
        ),
        dict(
            case=desc,
            what="GPU decompress_gpu",
            us=median_us(cp, lambda: gpu.decompress_gpu(cpu_blob), warm, f_runs),
            bit_exact=dec_exact,
        ),
        dict(
            case=desc,
            what="GPU compress_gpu, dense",
            us=median_us(cp, lambda: gpu.compress_gpu(x_dev, bits=8, mode="dense"), warm, f_runs),
        ),
        dict(
            case=desc, what="CPU compress (numpy in)", us=median_cpu_us(lambda: splitans.compress(x, bits=8), 1, f_runs)
        ),
        dict(
            case=desc,
            what="CPU decompress (numpy out)",
            us=median_cpu_us(lambda: splitans.decompress(cpu_blob), 1, f_runs),
        ),
        dict(
            case=desc,
            what="CPU compress incl. device->host copy",
            us=median_cpu_us(lambda: splitans.compress(cp.asnumpy(x_dev), bits=8), 1, f_runs),
        ),
    ]
    rows += bench_fitted(cp, x, warm, f_runs)
    return rows


def bench_fitted(cp, x, warm: int, runs: int) -> List[Dict[str, Any]]:
    """Fitted codecs (pctx.cu): byte-exactness both ways and timings, on the 1x256x56x56 map and
    a 1x32x7x7 crop of it, against the CPU codec; and on smooth 32x56x56 ramps, whose fit takes
    the med-residual predictor (FORMAT.md 9.4, codec version 3). The 56x56 maps' fits take plane
    lanes (a lane per 3,136-element channel, codec version 4), the 7x7 crop's the default lanes."""
    import numpy as np

    import splitans

    rows: List[Dict[str, Any]] = []
    rng = np.random.default_rng(7)
    c, h, w = 32, 56, 56
    ramp = (np.arange(h)[:, None] + np.arange(w)[None, :]) / (h + w) * np.arange(1, c + 1)[:, None, None]
    smooth = (ramp + rng.random((c, h, w)) * 0.05).astype(np.float32)
    for shape, bits in (((256, 56, 56), 4), ((256, 56, 56), 8), ((32, 7, 7), 4), ("smooth", 4)):
        if shape == "smooth":
            sample, shape = smooth, smooth.shape
        else:
            sample = np.ascontiguousarray(x[0][: shape[0], : shape[1], : shape[2]])
        cal = [np.roll(sample, (int(rng.integers(-4, 5)), int(rng.integers(-4, 5))), axis=(1, 2)) for _ in range(6)]
        codec = splitans.Codec.fit(cal, bits=bits)
        blob = codec.compress(sample)
        dev = cp.asarray(sample)
        exact = codec.compress_gpu(dev) == blob
        y = codec.decompress(blob)
        dec_exact = bool(np.array_equal(codec.decompress_gpu(blob).get().view(np.uint32), y.view(np.uint32)))
        desc = (f"fitted codec 1x{'x'.join(map(str, shape))} f32, {bits} bits, "
                f"{codec.describe()['model']['predictor']}"
                f"{', plane lanes' if codec.describe()['model']['plane_lanes'] else ''} ({len(blob)} B)")
        rows += [
            dict(case=desc, what="GPU codec.compress_gpu", us=median_us(cp, lambda: codec.compress_gpu(dev), warm, runs),
                 bit_exact=exact),
            dict(case=desc, what="GPU codec.decompress_gpu",
                 us=median_us(cp, lambda: codec.decompress_gpu(blob), warm, runs), bit_exact=dec_exact),
            dict(case=desc, what="CPU codec.compress", us=median_cpu_us(lambda: codec.compress(sample), 1, runs)),
            dict(case=desc, what="CPU codec.decompress", us=median_cpu_us(lambda: codec.decompress(blob), 1, runs)),
        ]
        log(f"  {desc}: exact {exact and dec_exact}")
    return rows


def bench_nvcomp(cp, s_dev, nbytes: int, warm: int, runs: int) -> List[Dict[str, Any]]:
    try:
        from nvidia import nvcomp
    except Exception as e:
        log(f"  nvCOMP: skipped (nvidia.nvcomp does not import: {e})")
        return []
    desc = "64 MiB u8, nvCOMP ANS (its default 64 KiB chunks)"
    try:
        codec = nvcomp.Codec(algorithm="ANS")
        arr = nvcomp.as_array(s_dev)
        comp = codec.encode(arr)
        size = getattr(comp, "buffer_size", None) or cp.asarray(comp).nbytes
        back = cp.asarray(codec.decode(comp)).view(cp.uint8).reshape(-1)
        exact = bool(back.size == s_dev.size and (back == s_dev).all())
        enc_us = median_us(cp, lambda: codec.encode(arr), warm, runs)
        dec_us = median_us(cp, lambda: codec.decode(comp), warm, runs)
    except Exception as e:  # API differences between nvCOMP versions
        log(f"  nvCOMP: failed: {type(e).__name__}: {e}")
        return [dict(case=desc, what=f"nvCOMP failed: {type(e).__name__}: {e}")]
    gb = lambda us: nbytes / (us * 1e-6) / 1e9  # noqa: E731
    log(f"  nvCOMP ANS: encode {gb(enc_us):.1f} GB/s, decode {gb(dec_us):.1f} GB/s, ratio {size / nbytes:.3f}")
    return [
        dict(case=desc, what="nvCOMP ANS encode", us=enc_us, gbs=gb(enc_us), ratio=size / nbytes, roundtrip=exact),
        dict(case=desc, what="nvCOMP ANS decode", us=dec_us, gbs=gb(dec_us)),
    ]


def table(rows: List[Dict[str, Any]]) -> str:
    lines = [f"{'case / what':<78} {'time':>12} {'GB/s':>8} {'ratio':>7} {'exact':>6}"]
    case = None
    for r in rows:
        if r["case"] != case:
            case = r["case"]
            lines.append(case)
        t = r.get("us")
        tt = "" if t is None else (f"{t:,.0f} us" if t < 1e5 else f"{t / 1e3:,.1f} ms")
        g = f"{r['gbs']:.1f}" if "gbs" in r else ""
        ratio = f"{r['ratio']:.3f}" if "ratio" in r else ""
        ex = {True: "yes", False: "NO"}.get(r.get("bit_exact", r.get("roundtrip")), "")
        lines.append(f"  {r['what']:<76} {tt:>12} {g:>8} {ratio:>7} {ex:>6}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheels", default=str(REPO / ".whl"), help="folder of wheels to install first (default .whl)")
    ap.add_argument("--dry-run", action="store_true", help="say what would run and exit 0")
    ap.add_argument("--quick", action="store_true", help="fewer timed runs")
    ap.add_argument("--skip-tests", action="store_true")
    ap.add_argument("--test-timeout", type=int, default=300)
    args = ap.parse_args()
    out = pathlib.Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    t0 = time.perf_counter()

    log("== splitans GPU check" + (" (dry run)" if args.dry_run else ""))
    install(pathlib.Path(args.wheels), args.dry_run)
    env = environment()
    for k, v in env.items():
        log(f"  {k}: {v}")
    gpu_ok = (
        bool(env.get("splitans"))
        and bool(env.get("cupy"))
        and bool(env.get("device"))
        and not str(env["device"]).startswith("none")
    )
    if args.dry_run:
        log("would run:")
        log("  1. pytest --noconftest tests/test_gpu.py (GPU blobs == CPU blobs, cross decoding, corrupt input)")
        log("  2. 64 MiB of 8-bit symbols, default and 2^16 chunks: rans_encode_gpu / rans_decode_gpu whole call and")
        log("     kernels alone (CUDA events, median), the CPU coder, nvCOMP ANS if nvidia.nvcomp imports")
        log("  3. 1x256x56x56 float32, bits=8, mode auto: compress_gpu / decompress_gpu end to end, and the CPU path")
        log("  4. a table (and $OUT/gpu_check.json, $OUT/test_gpu.log)")
        log(f"GPU path usable here: {gpu_ok}" + ("" if gpu_ok else " (needs splitans, CuPy and a CUDA device)"))
        return 0
    if not gpu_ok:
        log("cannot run: needs the splitans package, CuPy and a CUDA device (see the install step above)")
        return 2

    result: Dict[str, Any] = {"environment": env}
    if not args.skip_tests:
        result["tests"] = run_tests(out, args.test_timeout)
    log("== timings")
    rows = bench(args.quick)
    result["rows"] = rows
    log("")
    log(table(rows))
    if "tests" in result:
        log(
            f"\ntests/test_gpu.py: {result['tests']['summary']} (exit {result['tests']['exit_code']}, {result['tests']['seconds']} s)"
        )
    log(f"device: {env['device']}; total {time.perf_counter() - t0:.0f} s")
    if out:
        (out / "gpu_check.json").write_text(json.dumps(result, indent=2, default=str))
    failed = result.get("tests", {}).get("exit_code", 0) != 0 or any(r.get("bit_exact") is False for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
