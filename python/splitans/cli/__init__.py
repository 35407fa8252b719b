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

This module assembles the parser and runs a command; each group of commands lives in its own
module with the builder of its parsers: ``codec`` (compress, decompress, inspect, plan, fit),
``bench``, ``evaluation`` (demo, eval, train-fmnist, report); ``files`` and ``options`` hold
what they share, and the runtime's commands (serve, export, edge) are ``splitans.runtime.cli``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Callable, List, Optional

import splitans

# Exit status, documented in every codec command's --help (EXIT_HELP); shared with the runtime's
# commands (splitans.runtime.cli), so they live in a module both import.
from .._exit import (
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
from . import bench, codec, evaluation
from .bench import _codes, bench_rows  # noqa: F401 - tests and benches/ call them as splitans.cli.*
from .evaluation import DEMO_SPLITS, FAMILIES  # noqa: F401
from .options import MODES, _threads  # noqa: F401

__all__ = ["main", "build_parser", "MODES", "DEMO_SPLITS", "FAMILIES", "bench_rows", "EXIT_OK", "EXIT_USAGE",
           "EXIT_IO", "EXIT_DATA", "EXIT_MISSING", "EXIT_INTERNAL", "EXIT_INTERRUPTED"]


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (``prog: message``) instead of the usage block."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


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

    codec.add_compress(command)
    codec.add_decompress(command)
    codec.add_inspect(command)
    codec.add_plan(command)
    bench.add_bench(command)
    codec.add_fit(command)
    evaluation.add_demo(command)
    evaluation.add_eval(command)
    evaluation.add_train_fmnist(command)
    evaluation.add_report(command)
    from ..runtime import cli as runtime_cli  # argparse only: no grpc, torch or Ray until a command runs

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
