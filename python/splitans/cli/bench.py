"""``splitans bench``: splitans beside zstd, lz4 and blosc2 on the user's own .npy file, every
codec measured in the same run."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np

import splitans

from .._exit import EXIT_DATA, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, CliError
from .files import _display, _load_npy, _read_input
from .options import MODES, NONFINITE, Command, _kind, _positive, _quant_kwargs

def _best_seconds(fn: Callable[[], Any], repeat: int, budget: float = 1.0):
    """Best time of up to ``repeat`` runs, stopping early once ``budget`` seconds are spent."""
    best, spent, out = float("inf"), 0.0, None
    for _ in range(max(1, repeat)):
        t = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t
        best, spent = min(best, dt), spent + dt
        if spent > budget:
            break
    return out, best


def _codes(y: np.ndarray, info: Dict[str, Any]) -> np.ndarray:
    """The integer codes splitans coded, recovered from the dequantized array: what the peers get."""
    scale = np.asarray(info["scale"], dtype=np.float64)
    zero = np.asarray(info["zero_point"], dtype=np.float64)
    if info["axis"] is not None:
        shape = [1] * y.ndim
        shape[info["axis"]] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    q = np.rint(y.astype(np.float64) / scale + zero)
    return q.astype(np.uint8 if info["bits"] <= 8 else np.uint16)


def _peers(threads: int) -> List[tuple]:
    """(name, encode, decode or a reason it is missing) for each general-purpose codec."""
    peers: List[tuple] = []
    try:
        import zstandard
    except ImportError:
        peers.append(("zstd", None, "not installed (pip install zstandard)"))
    else:
        for level in (3, 19):
            zc = zstandard.ZstdCompressor(level=level, threads=threads if threads > 1 else 0)
            peers.append((f"zstd -{level}", zc.compress, zstandard.ZstdDecompressor().decompress))
    try:
        import lz4.frame
    except ImportError:
        peers.append(("lz4", None, "not installed (pip install lz4)"))
    else:
        peers.append(("lz4", lz4.frame.compress, lz4.frame.decompress))
    try:
        import blosc2
    except ImportError:
        peers.append(("blosc2", None, "not installed (pip install blosc2)"))
    else:
        blosc2.set_nthreads(max(1, threads))

        def blosc(codec, filt):
            return lambda b, typesize: blosc2.compress(b, typesize=typesize, clevel=5, filter=filt, codec=codec)

        peers.append(("blosc2 zstd+bitshuffle", blosc(blosc2.Codec.ZSTD, blosc2.Filter.BITSHUFFLE), blosc2.decompress))
        peers.append(("blosc2 lz4+shuffle", blosc(blosc2.Codec.LZ4, blosc2.Filter.SHUFFLE), blosc2.decompress))
    return peers


def bench_rows(x: np.ndarray, *, bits: Optional[int], axis: Optional[int] = None, clip: Any = None,
               nonfinite: str = "error", threads: int = 1, repeat: int = 3) -> List[Dict[str, Any]]:
    """Sizes and speeds of splitans and of every installed peer on ``x``, all measured now.

    An integer array is coded losslessly by all of them. A float array is quantized to ``bits``
    by splitans once; each splitans mode codes it from the float tensor (quantization included
    in its time), and each peer codes the same integer codes (quantization not counted). MB/s
    are megabytes of ``x`` per second; ratios are ``x.nbytes`` over the compressed bytes.
    """
    mb = x.nbytes / 1e6
    rows: List[Dict[str, Any]] = []

    def row(codec, size, t_enc, t_dec, note=""):
        rows.append({
            "codec": codec, "bytes": size, "ratio": x.nbytes / size if size else None,
            "bits_per_element": 8 * size / x.size if size is not None and x.size else None,
            "encode_MBps": mb / t_enc if t_enc else None, "decode_MBps": mb / t_dec if t_dec else None, "note": note,
        })

    if x.dtype.kind in "iu":
        variants = [("splitans", splitans.Options(threads=threads))]
        payload = np.ascontiguousarray(x)
    else:
        base = splitans.Options(bits=bits, axis=axis, clip=clip, nonfinite=nonfinite, threads=threads)
        variants = [(f"splitans {m}", base.replace(mode=m)) for m in MODES if m not in ("context", "pcontext") or bits <= 8]
    reference = None
    for label, opts in variants:
        blob, t_enc = _best_seconds(lambda: splitans.compress(x, opts), repeat)
        y, t_dec = _best_seconds(lambda: splitans.decompress(blob, threads=threads), repeat)
        if reference is None:
            reference = y
            if x.dtype.kind == "f":
                payload = _codes(y, splitans.inspect(blob))
        if not np.array_equal(y, reference) or (x.dtype.kind in "iu" and not np.array_equal(y, x)):
            raise CliError(EXIT_INTERNAL, f"{label} did not round-trip: please report this")
        note = splitans.inspect(blob).get("mode", "") if x.dtype.kind == "f" else "lossless"
        row(label, len(blob), t_enc, t_dec, note)
    raw = payload.tobytes()
    what = "lossless" if x.dtype.kind in "iu" else f"on the {bits}-bit codes"
    for name, enc, dec in _peers(threads):
        if enc is None:
            row(name, None, None, None, dec)
            continue
        typesize = payload.dtype.itemsize
        encode = (lambda: enc(raw, typesize)) if name.startswith("blosc2") else (lambda: enc(raw))
        blob, t_enc = _best_seconds(encode, repeat)
        back, t_dec = _best_seconds(lambda: dec(blob), repeat)
        if bytes(back) != raw:
            raise CliError(EXIT_INTERNAL, f"{name} did not round-trip")
        row(name, len(blob), t_enc, t_dec, what)
    return rows


def cmd_bench(args: argparse.Namespace) -> int:
    name = _display(args.input)
    x = _load_npy(_read_input(args.input), name)
    kind = _kind(x, name)
    if kind == "int" and (args.bits is not None or args.axis is not None or args.clip is not None):
        raise CliError(EXIT_USAGE, f"{name}: holds {x.dtype}, which is coded losslessly; --bits, --axis and "
                                   "--clip apply to float arrays only")
    bits = args.bits if kind == "float" and args.bits is not None else (8 if kind == "float" else None)
    kw = _quant_kwargs(argparse.Namespace(**{**vars(args), "bits": bits}), x, name) if kind == "float" else {}
    kw.pop("bits", None)
    try:
        rows = bench_rows(x, bits=bits, threads=args.threads, repeat=args.repeat, **kw)
    except (ValueError, TypeError) as e:
        raise CliError(EXIT_DATA, f"{name}: cannot compress: {e}") from None
    if args.json:
        print(json.dumps({"file": name, "dtype": str(x.dtype), "shape": list(x.shape), "bytes": x.nbytes,
                          "bits": bits, "threads": args.threads, "rows": rows}, indent=2))
        return EXIT_OK
    how = ("integers, every codec lossless" if kind == "int" else
           f"quantized to {bits} bits {'per tensor' if args.axis is None else f'along axis {args.axis}'} by splitans; "
           f"the peers code those {bits}-bit codes (quantization not counted in their time)")
    print(f"{name}: {x.dtype} {x.shape}, {x.nbytes:,} bytes; {how}")
    print(f"{args.threads} thread(s), best of up to {args.repeat} runs; MB/s are MB of the input tensor per second\n")
    head = ("codec", "bytes", "ratio", "bits/elem", "encode MB/s", "decode MB/s", "")
    table = [head]
    for r in rows:
        if r["bytes"] is None:
            table.append((r["codec"], "-", "-", "-", "-", "-", r["note"]))
            continue
        table.append((r["codec"], f"{r['bytes']:,}", f"{r['ratio']:.2f}", f"{r['bits_per_element']:.3f}",
                      f"{r['encode_MBps']:,.0f}", f"{r['decode_MBps']:,.0f}", r["note"]))
    widths = [max(len(t[i]) for t in table) for i in range(len(head))]
    for t in table:
        print("  ".join(c.ljust(w) if i in (0, 6) else c.rjust(w) for i, (c, w) in enumerate(zip(t, widths))).rstrip())
    return EXIT_OK


def add_bench(command: Command) -> None:
    p = command("bench", "compare splitans with zstd, lz4 and blosc2 on your own .npy file",
                "Compress a .npy file with splitans (every mode) and with each general-purpose codec\n"
                "that is installed (zstd, lz4, blosc2; pip install 'splitans[bench]'), all measured in\n"
                "this run, and print sizes, ratios and MB/s. Float arrays are quantized by splitans\n"
                "once and the peers code the same integer codes.", cmd_bench)
    p.add_argument("input", metavar="IN.npy", help="the .npy file to measure ('-': stdin)")
    p.add_argument("--bits", "-b", type=int, choices=range(1, 17), metavar="{1..16}", default=None,
                   help="quantization bit width for a float array (default 8); refused for integers")
    p.add_argument("--axis", type=int, default=None, metavar="AXIS",
                   help="quantize per channel along AXIS; default: per tensor")
    p.add_argument("--clip", default=None, metavar="LO,HI",
                   help="quantize within [LO, HI] (LO%%,HI%%: percentiles); default: min/max")
    p.add_argument("--nonfinite", default="error", choices=NONFINITE,
                   help="NaN and infinity: error (default) or clamp")
    p.add_argument("--threads", "-T", type=_positive, default=1, metavar="N",
                   help="threads for splitans, zstd and blosc2 (default 1; lz4 is single-threaded)")
    p.add_argument("--repeat", type=_positive, default=3, metavar="R",
                   help="best of up to R runs per codec, fewer once a codec has spent a second (default 3)")
    p.add_argument("--json", action="store_true", help="print the measurements as JSON")
