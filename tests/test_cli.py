"""The command line, run as a user runs it (``python -m splitans``, a new process each time):
round trips through files and through stdin/stdout, refusals, one-line errors and exit codes."""

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import splitans
from splitans import cli


def run(*args, input=None, cwd=None, stdout=subprocess.PIPE):
    return subprocess.run(
        [sys.executable, "-m", "splitans", *map(str, args)],
        input=input, stdout=stdout, stderr=subprocess.PIPE, cwd=cwd, timeout=300,
    )


def err(out) -> str:
    return out.stderr.decode()


def assert_one_line_error(out, code: int, *fragments: str) -> str:
    text = err(out)
    assert out.returncode == code, (out.returncode, text)
    assert "Traceback" not in text and text.count("\n") == 1, text
    for fragment in fragments:
        assert fragment in text, text
    return text.strip()


@pytest.fixture
def feature(tmp_path):
    x = np.maximum(np.random.default_rng(0).normal(size=(2, 16, 12, 12)), 0).astype(np.float32)
    np.save(tmp_path / "f.npy", x)
    return x


@pytest.fixture
def ints(tmp_path):
    q = np.random.default_rng(1).geometric(0.2, size=(7, 50, 3)).astype(np.int16) - 3
    np.save(tmp_path / "q.npy", q)
    return q


def test_float_round_trip_through_files(tmp_path, feature):
    out = run("compress", tmp_path / "f.npy", "-o", tmp_path / "f.spl", "--bits", "8")
    assert out.returncode == 0, err(out)
    assert "f.npy -> " in err(out) and "bits/element" in err(out)
    blob = (tmp_path / "f.spl").read_bytes()
    assert blob == splitans.compress(feature, bits=8), "the CLI writes exactly what compress() returns"
    out = run("decompress", tmp_path / "f.spl", "-o", tmp_path / "g.npy")
    assert out.returncode == 0, err(out)
    y = np.load(tmp_path / "g.npy")
    assert y.dtype == np.float32 and y.shape == feature.shape
    assert np.abs(y - feature).max() <= splitans.inspect(blob)["scale"][0] / 2 + 1e-6


def test_integers_round_trip_losslessly_with_default_names(tmp_path, ints):
    out = run("compress", "q.npy", cwd=tmp_path)  # no --bits: integers are exact
    assert out.returncode == 0, err(out)
    assert (tmp_path / "q.spl").exists(), "x.npy compresses to x.spl"
    (tmp_path / "q.npy").rename(tmp_path / "original.npy")
    out = run("decompress", "q.spl", cwd=tmp_path)
    assert out.returncode == 0, err(out)
    y = np.load(tmp_path / "q.npy")
    assert y.dtype == ints.dtype and y.shape == ints.shape and (y == ints).all()


def test_stdin_to_stdout_pipeline(tmp_path, feature, ints):
    for x, extra in ((feature, ["--bits", "4", "--mode", "best", "--axis", "1"]), (ints, [])):
        np.save(tmp_path / "x.npy", x)
        raw = (tmp_path / "x.npy").read_bytes()
        comp = run("compress", "-", *extra, input=raw)
        assert comp.returncode == 0 and comp.stderr == b"", err(comp)
        assert comp.stdout[:4] == b"SPNS"
        dec = run("decompress", "-", input=comp.stdout)
        assert dec.returncode == 0, err(dec)
        np.save(tmp_path / "y.npy", splitans.decompress(comp.stdout))
        assert dec.stdout == (tmp_path / "y.npy").read_bytes()
        # -c writes to stdout from a named file, and -o - does the same.
        assert run("compress", tmp_path / "x.npy", "-c", *extra).stdout == comp.stdout
        assert run("compress", tmp_path / "x.npy", "-o", "-", *extra).stdout == comp.stdout


def test_refuses_to_overwrite_without_force(tmp_path, feature):
    target = tmp_path / "f.spl"
    target.write_bytes(b"keep me")
    out = run("compress", tmp_path / "f.npy", "-o", target, "--bits", "8")
    assert_one_line_error(out, cli.EXIT_IO, "already exists", "-f")
    assert target.read_bytes() == b"keep me"
    out = run("compress", tmp_path / "f.npy", "-o", target, "--bits", "8", "-f", "-q")
    assert out.returncode == 0 and out.stderr == b"", err(out)
    assert target.read_bytes()[:4] == b"SPNS"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".splitans-")] == [], "no temporary files left"


def test_bad_files_give_one_line_errors_and_exit_codes(tmp_path, feature, ints):
    good = splitans.compress(feature, bits=8)
    (tmp_path / "bad.spl").write_bytes(good[:100])
    out = run("decompress", tmp_path / "bad.spl", "-o", tmp_path / "out.npy")
    text = assert_one_line_error(out, cli.EXIT_DATA, "bad.spl: not a valid splitans file", "truncated")
    print(text)  # the error text of a bad file, for the record
    assert not (tmp_path / "out.npy").exists(), "a failed run leaves no output"

    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x10
    (tmp_path / "flipped.spl").write_bytes(bytes(flipped))
    assert_one_line_error(run("decompress", tmp_path / "flipped.spl", "-c"), cli.EXIT_DATA, "not a valid splitans file")
    assert_one_line_error(run("inspect", tmp_path / "flipped.spl"), cli.EXIT_DATA, "not a valid splitans file")

    newer = bytearray(good)
    newer[4] = 200  # the format version
    (tmp_path / "newer.spl").write_bytes(bytes(newer))
    assert_one_line_error(run("decompress", tmp_path / "newer.spl", "-c"), cli.EXIT_DATA, "version 200", "upgrade")

    assert_one_line_error(run("decompress", tmp_path / "f.npy", "-c"), cli.EXIT_DATA, "a .npy file, not a splitans file")
    (tmp_path / "text.npy").write_text("hello")
    assert_one_line_error(run("compress", tmp_path / "text.npy", "-c", "--bits", "8"), cli.EXIT_DATA, "not a .npy file")
    (tmp_path / "cut.npy").write_bytes((tmp_path / "f.npy").read_bytes()[:200])
    assert_one_line_error(run("compress", tmp_path / "cut.npy", "-c", "--bits", "8"), cli.EXIT_DATA, "unreadable .npy")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert_one_line_error(run("compress", tmp_path / "objects.npy", "-c"), cli.EXIT_DATA, "unreadable .npy")
    np.save(tmp_path / "c.npy", np.zeros(4, np.complex64))
    assert_one_line_error(run("compress", tmp_path / "c.npy", "-c"), cli.EXIT_DATA, "complex64")
    nan = feature.copy()
    nan[0, 0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    assert_one_line_error(run("compress", tmp_path / "nan.npy", "-c", "--bits", "8"), cli.EXIT_DATA, "cannot compress")
    assert run("compress", tmp_path / "nan.npy", "-c", "--bits", "8", "--nonfinite", "clamp").returncode == 0
    limited = run("decompress", "-", "--max-output-bytes", "100", input=good)
    assert_one_line_error(limited, cli.EXIT_DATA, "--max-output-bytes")

    assert_one_line_error(run("decompress", tmp_path / "missing.spl"), cli.EXIT_IO, "missing.spl: No such file")
    assert_one_line_error(run("compress", tmp_path, "-c"), cli.EXIT_IO, "is a directory")
    assert_one_line_error(run("compress", tmp_path / "f.npy", "-o", tmp_path / "nodir" / "x.spl", "--bits", "8"),
                          cli.EXIT_IO, "No such file")


def test_usage_errors(tmp_path, feature, ints):
    assert_one_line_error(run("compress", tmp_path / "f.npy", "-c"), cli.EXIT_USAGE, "pass --bits")
    assert_one_line_error(run("compress", tmp_path / "q.npy", "-c", "--bits", "8"), cli.EXIT_USAGE, "losslessly")
    assert_one_line_error(run("compress", tmp_path / "q.npy", "-c", "--mode", "csr"), cli.EXIT_USAGE, "--mode")
    assert_one_line_error(run("compress", tmp_path / "f.npy", "-c", "--bits", "17"), cli.EXIT_USAGE, "invalid choice")
    assert_one_line_error(run("compress", tmp_path / "f.npy", "-c", "--bits", "8", "--axis", "4"), cli.EXIT_USAGE,
                          "out of range")
    assert_one_line_error(run("compress", tmp_path / "f.npy", "-c", "--bits", "8", "--clip", "3,1"), cli.EXIT_USAGE,
                          "LO < HI")
    assert_one_line_error(run("compress", tmp_path / "f.npy", "-c", "-o", "x", "--bits", "8"), cli.EXIT_USAGE, "-o and -c")
    assert_one_line_error(run("compress", tmp_path / "f.npy", "--bits", "8", "--threads", "0"), cli.EXIT_USAGE,
                          "positive integer")
    assert_one_line_error(run("decompress", "noext"), cli.EXIT_USAGE, "does not end in .spl")
    assert_one_line_error(run("compress", tmp_path / "f.npy", "--nosuch"), cli.EXIT_USAGE, "unrecognized arguments")
    assert_one_line_error(run("plan", tmp_path / "q.npy", "--bits", "4"), cli.EXIT_USAGE, "nothing to plan")
    assert run().returncode == cli.EXIT_USAGE


def test_clip_values_and_percentiles(tmp_path, feature):
    for clip, expected in (("0,1.5", (0.0, 1.5)), ("--clip=-1,2", (-1.0, 2.0))):
        args = [clip] if clip.startswith("--") else ["--clip", clip]
        out = run("compress", tmp_path / "f.npy", "-c", "--bits", "8", *args)
        assert out.returncode == 0, err(out)
        assert out.stdout == splitans.compress(feature, bits=8, clip=expected)
    out = run("compress", tmp_path / "f.npy", "-c", "--bits", "8", "--clip", "0.1%,99.9%")
    assert out.stdout == splitans.compress(feature, bits=8, clip=splitans.Percentile(0.1, 99.9))


def test_binary_output_is_not_written_to_a_terminal(tmp_path, feature):
    master, slave = os.openpty()
    try:
        out = run("compress", tmp_path / "f.npy", "--bits", "8", "-c", stdout=slave)
    finally:
        os.close(slave)
        os.close(master)
    assert_one_line_error(out, cli.EXIT_IO, "stdout is a terminal")


def test_inspect_table_and_json(tmp_path, feature):
    blob = splitans.compress(feature, bits=4, axis=1, mode="csr")
    (tmp_path / "f.spl").write_bytes(blob)
    out = run("inspect", tmp_path / "f.spl")
    assert out.returncode == 0, err(out)
    text = out.stdout.decode()
    for fragment in ("version 1, feature", "float32 (2, 16, 12, 12)", "4 bits per channel along axis 1", "csr",
                     "entropy bound", "row_counts", "col_indices"):
        assert fragment in text, text
    info = json.loads(run("inspect", "-", "--json", input=blob).stdout)
    expected = json.loads(json.dumps(splitans.inspect(blob)))
    assert info.pop("file") == "<stdin>" and info.pop("file_bytes") == len(blob) and info == expected
    ints = splitans.compress(np.arange(1000, dtype=np.uint16))
    assert "uint16 (1000,)" in run("inspect", "-", input=ints).stdout.decode()
    symbols = splitans.rans_encode(np.zeros(300, np.uint8))
    assert "300 uint8 symbols" in run("inspect", "-", input=symbols).stdout.decode()


def test_plan_matches_the_library(tmp_path, feature):
    out = run("plan", tmp_path / "f.npy", "--bits", "4", "--json")
    assert out.returncode == 0, err(out)
    p = json.loads(out.stdout)
    expected = splitans.plan(feature, bits=4)
    assert p["mode"] == expected["mode"] and p["rows"] == expected["rows"]
    text = run("plan", tmp_path / "f.npy", "--bits", "4", "--top", "3").stdout.decode()
    assert "choice" in text and text.count("\n") >= 8


def test_bench_measures_splitans_and_every_installed_peer(tmp_path, feature, ints):
    out = run("bench", tmp_path / "f.npy", "--bits", "4", "--repeat", "1", "--json")
    assert out.returncode == 0, err(out)
    result = json.loads(out.stdout)
    rows = {r["codec"]: r for r in result["rows"]}
    for mode in cli.MODES:
        assert rows[f"splitans {mode}"]["bytes"] > 0
    assert rows["splitans auto"]["bytes"] == len(splitans.compress(feature, bits=4))
    peers = {"zstd -3": "zstandard", "zstd -19": "zstandard", "lz4": "lz4.frame", "blosc2 zstd+bitshuffle": "blosc2"}
    for name, module in peers.items():
        try:
            __import__(module)
        except ImportError:
            continue
        assert rows[name]["bytes"] > 0 and rows[name]["encode_MBps"] > 0 and rows[name]["decode_MBps"] > 0, rows[name]
    text = run("bench", tmp_path / "q.npy", "--repeat", "1").stdout.decode()
    assert "every codec lossless" in text and "splitans" in text


def test_bench_codes_are_the_ones_splitans_coded():
    x = np.random.default_rng(2).normal(size=(3, 5, 7)).astype(np.float32)
    for bits, axis in ((4, None), (8, 1), (12, 2)):
        blob = splitans.compress(x, bits=bits, axis=axis)
        info = splitans.inspect(blob)
        y = splitans.decompress(blob)
        codes = cli._codes(y, info)
        assert codes.max() < 2**bits
        scale = np.asarray(info["scale"], np.float32)
        zero = np.asarray(info["zero_point"], np.float32)
        if axis is not None:
            shape = [1] * x.ndim
            shape[axis] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        np.testing.assert_array_equal((codes.astype(np.float32) - zero) * scale, y)


def _parsers():
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return parser, sub.choices


def test_every_option_has_help_and_the_codec_commands_list_exit_codes():
    parser, commands = _parsers()
    for name, p in [("splitans", parser), *commands.items()]:
        for action in p._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert action.help and action.help != argparse.SUPPRESS, f"{name} {action.option_strings or action.dest}"
    for name in ("compress", "decompress", "inspect", "plan", "bench"):
        text = commands[name].format_help()
        for code in (cli.EXIT_USAGE, cli.EXIT_IO, cli.EXIT_DATA, cli.EXIT_MISSING):
            assert f"\n  {code}  " in text, name
    out = run("compress", "--help")
    assert out.returncode == 0 and b"exit status" in out.stdout and b"-f, --force" in out.stdout


def test_demo_help_lists_the_split_points_and_rejects_others():
    out = run("demo", "--help")
    assert out.returncode == 0
    text = out.stdout.decode()
    for point in cli.DEMO_SPLITS:
        assert point in text
    bad = assert_one_line_error(run("demo", "--split", "nosuch"), cli.EXIT_USAGE, "invalid choice: 'nosuch'")
    assert all(point in bad for point in cli.DEMO_SPLITS)
    _, commands = _parsers()
    (mode,) = [a for a in commands["demo"]._actions if a.dest == "mode"]
    (compress_mode,) = [a for a in commands["compress"]._actions if a.dest == "mode"]
    assert list(mode.choices) == list(compress_mode.choices) == list(cli.MODES)


def test_demo_split_points_are_those_the_model_can_finish_from():
    torch = pytest.importorskip("torch")
    enet = pytest.importorskip("efficientnet_lite_pytorch")
    from splitans.eval import models

    model = enet.EfficientNet.from_name("efficientnet-lite0", num_classes=1000).eval()  # no weights needed
    x = torch.zeros(1, 3, 32, 32)
    usable = []
    for point in models.split_points(model):
        split = models.EfficientNetSplit(model, point)
        if point.endswith(".expand"):  # a block output always finishes; inside a block it may not
            try:
                split.tail(split.head(x))
            except ValueError:  # inside a residual block: the tail needs the block's input too
                continue
        usable.append(point)
    assert tuple(usable) == cli.DEMO_SPLITS


def test_demo_runs_with_the_context_coder():
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("sklearn")
    out = run("demo", "--split", "block11.expand", "--bits", "4", "--mode", "best")
    assert out.returncode == 0, err(out)
    assert "top-1" in out.stdout.decode() and "differs" not in out.stdout.decode()


def test_unexpected_errors_and_missing_packages_are_one_line(tmp_path, feature, monkeypatch, capsys):
    def boom(*a, **k):
        raise RuntimeError("something broke\nsecond line")

    monkeypatch.setattr(splitans, "compress", boom)
    assert cli.main(["compress", str(tmp_path / "f.npy"), "-c", "--bits", "8"]) == cli.EXIT_INTERNAL
    text = capsys.readouterr().err
    assert text.count("\n") == 1 and "internal error: RuntimeError: something broke" in text

    def needs_torch(args):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setattr(cli, "demo", needs_torch)
    assert cli.main(["demo"]) == cli.EXIT_MISSING
    assert "pip install 'splitans[demo]'" in capsys.readouterr().err


def test_python_dash_m_and_the_console_script_share_main():
    import splitans.__main__ as entry

    assert entry.main is cli.main
    out = run("--version")
    assert out.returncode == 0 and out.stdout.decode().strip() == f"splitans {splitans.__version__}"
