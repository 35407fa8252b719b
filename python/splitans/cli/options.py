"""Options several commands share: the quantizer's (--bits, --axis, --clip, --mode, --nonfinite),
the output's (-o, -c, -f, -q, --threads) and --codec, with their parsing and checks."""

from __future__ import annotations

import argparse
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np

import splitans

from .._exit import EXIT_DATA, EXIT_USAGE, CliError
from .._options import GPU_MODES, MODES, NONFINITE  # the names _core defines, so the CLI cannot drift

#: What a command builder gets: ``command(name, help, description, run)`` adds a subcommand that
#: runs ``run(args)`` and returns its parser, for the builder to add the options.
Command = Callable[..., argparse.ArgumentParser]

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
    p.add_argument("--nonfinite", default="error", choices=NONFINITE,
                   help="NaN and infinity: error (default, exit 4) or clamp (NaN to 0, infinities to the range ends)")


def _quant_kwargs(args: argparse.Namespace, x: np.ndarray, name: str) -> Dict[str, Any]:
    _check_axis(args.axis, x, name)
    return dict(bits=args.bits, axis=args.axis, clip=_clip(args.clip), nonfinite=args.nonfinite)


def _quant_options(args: argparse.Namespace, x: np.ndarray, name: str, **extra: Any) -> splitans.Options:
    """The quantizer's options and ``extra`` as one ``splitans.Options``, validated once, as
    every door's are. Its ValueError/TypeError are the data's (exit 4): build it where those are
    caught."""
    return splitans.Options(**_quant_kwargs(args, x, name), **extra)


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


def _codec_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--codec", metavar="CODEC", default=None,
                   help=f"{what} with a fitted codec (a file splitans fit wrote); a blob only its codec decodes")
