"""Files, stdin and stdout for the codec commands: reading inputs, writing outputs whole or not
at all, and telling a .npy file, a container, a fitted codec and a fitted codec's blob apart."""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import sys
import tempfile
from typing import Any, Iterator, Optional

import numpy as np

import splitans

from .._exit import EXIT_DATA, EXIT_IO, EXIT_USAGE, CliError

NPY_MAGIC = b"\x93NUMPY"
SPLITANS_MAGIC = b"SPNS"
CODEC_MAGIC = b"SPNC"  # a fitted codec's serialization (FORMAT.md 9.2)


def _is_fitted_blob(data: bytes) -> bool:
    """A fitted codec's blob: its tag byte is 0xE0 | kind (FORMAT.md 9.5)."""
    return len(data) >= 7 and data[0] >> 4 == 0xE and data[0] & 0xF <= 2


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
