"""The codec commands on .npy files: compress, decompress, inspect, fit and plan, each with the
builder of its parser, and the tables inspect prints."""

from __future__ import annotations

import argparse
import json
from typing import Any, Dict, List, Sequence

import numpy as np

import splitans

from .._exit import EXIT_DATA, EXIT_OK, EXIT_USAGE, CliError
from .files import (
    CODEC_MAGIC,
    NPY_MAGIC,
    _decoding,
    _display,
    _is_fitted_blob,
    _load_blob,
    _load_codec,
    _load_npy,
    _npy_bytes,
    _output_path,
    _read_input,
    _say,
    _write_output,
)
from .options import (
    GPU_MODES,
    MODES,
    NONFINITE,
    Command,
    _add_quant_options,
    _check_axis,
    _clip,
    _codec_option,
    _io_options,
    _kind,
    _nonnegative,
    _positive,
    _quant_kwargs,
    _quant_options,
    _threads,
)

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
        work = lambda: splitans.compress(x, splitans.Options(threads=_threads(args.threads)))  # noqa: E731
    else:
        if args.bits is None:
            raise CliError(EXIT_USAGE, f"{name}: holds {x.dtype}, which is quantized: pass --bits B (1..16), "
                                       "e.g. --bits 8")
        _check_axis(args.axis, x, name)  # a usage error (exit 2), before the data's errors
        work = lambda: splitans.compress(  # noqa: E731
            x, _quant_options(args, x, name, mode=args.mode or "auto", threads=_threads(args.threads)))
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
# Their parsers


def add_compress(command: Command) -> None:
    p = command("compress", "compress a .npy file (integers losslessly, floats quantized to --bits)",
                "Compress the array in a .npy file into a splitans container. Integer arrays are coded\n"
                "losslessly; float arrays are quantized to --bits first (lossy: every element within scale/2).",
                cmd_compress)
    p.add_argument("input", metavar="IN.npy", help="the .npy file to compress ('-': stdin)")
    _io_options(p, "the container", "IN.spl")
    _add_quant_options(p, bits_help="quantization bit width, required for float arrays, refused for integers",
                       modes=MODES)
    _codec_option(p, "compress one sample")


def add_decompress(command: Command) -> None:
    p = command("decompress", "decompress a splitans container into a .npy file",
                "Decode a splitans container into a .npy file: integers exactly, float features\n"
                "dequantized in the dtype they had (bfloat16 as float32).", cmd_decompress)
    p.add_argument("input", metavar="IN.spl", help="the container to decompress ('-': stdin)")
    _io_options(p, "the .npy file", "IN.npy")
    p.add_argument("--max-output-bytes", type=_nonnegative, default=splitans.DEFAULT_MAX_OUTPUT_BYTES, metavar="N",
                   help="refuse (exit 4) before allocating when the array would exceed N bytes (default: 4 GiB)")
    _codec_option(p, "decode a blob made")


def add_inspect(command: Command) -> None:
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


def add_plan(command: Command) -> None:
    p = command("plan", "predict the size of each layout for a float .npy file, without coding",
                "What compress --bits B would do with a float array, predicted without coding: the\n"
                "quantization, the dense and CSR sizes, the CSR reshapes considered, and the choice.", cmd_plan)
    p.add_argument("input", metavar="IN.npy", help="a .npy file holding a float array ('-': stdin)")
    _add_quant_options(p, bits_help="quantization bit width (required)", modes=GPU_MODES)
    p.add_argument("--reshape", default="model", metavar="{model,search,N}",
                   help="CSR row count: model (default: predicted from the density), search (exact entropies "
                        "of every candidate) or a number of rows N")
    p.add_argument("--top", type=_positive, default=10, metavar="K", help="list the K smallest CSR reshapes (default 10)")
    p.add_argument("--json", action="store_true", help="print splitans.plan's result as JSON")


def add_fit(command: Command) -> None:
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
    p.add_argument("--nonfinite", default="error", choices=NONFINITE,
                   help="NaN and infinity in the samples: error (default) or clamp")
