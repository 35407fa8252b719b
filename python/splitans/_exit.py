"""Exit statuses of the ``splitans`` command and the exception that carries one: shared by
``splitans.cli`` (the codec and evaluation commands) and ``splitans.runtime.cli`` (serve, export,
edge), which ``splitans.cli`` imports, so neither imports the other back."""

from __future__ import annotations

__all__ = ["EXIT_DATA", "EXIT_HELP", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_IO", "EXIT_MISSING", "EXIT_OK",
           "EXIT_USAGE", "CliError"]

# Exit status, documented in every codec command's --help (EXIT_HELP).
EXIT_OK = 0
EXIT_INTERNAL = 1  # a bug: an exception nobody anticipated
EXIT_USAGE = 2  # a bad or conflicting option (argparse uses 2 as well)
EXIT_IO = 3  # a file that cannot be read or written, an output that exists, binary to a terminal
EXIT_DATA = 4  # input that is not a .npy / splitans file, is damaged, newer, too large, or not codable
EXIT_MISSING = 5  # an optional package the command needs is not installed
EXIT_INTERRUPTED = 130

EXIT_HELP = """exit status:
  0    success
  1    internal error (a bug; SPLITANS_DEBUG=1 shows the traceback)
  2    usage: a bad or conflicting option, e.g. --bits for an integer array
  3    I/O: a file cannot be read or written, the output exists (use -f),
       or binary output would go to a terminal
  4    bad input: not a .npy or splitans file, damaged, a newer format,
       larger than --max-output-bytes, or values that cannot be coded as asked
  5    an optional package is missing (the message names what to install)
  130  interrupted"""


class CliError(Exception):
    """An expected failure: its message is printed as one line and ``code`` is the exit status."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
