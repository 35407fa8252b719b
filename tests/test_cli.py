"""The command line, run as a user runs it (``python -m splitans``, a new process each time):
round trips through files and through stdin/stdout, refusals, one-line errors and exit codes."""

import argparse
import io
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


def call(capsys, *args, cwd=None):
    """``cli.main`` in this process (no interpreter start-up): (exit status, stderr). For the many
    refusals; the real process is tested by ``run`` wherever it matters."""
    old = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        try:
            code = cli.main([str(a) for a in args])
        except SystemExit as e:  # argparse
            code = e.code
    finally:
        os.chdir(old)
    return code, capsys.readouterr().err


def assert_refused(capsys, code, *args, fragments=(), cwd=None):
    got, text = call(capsys, *args, cwd=cwd)
    assert got == code, (got, text)
    assert "Traceback" not in text and text.count("\n") == 1, text
    for fragment in fragments:
        assert fragment in text, text


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
        # A float tensor is a compact container (FORMAT.md 10), integers version 1.
        assert comp.stdout[:4] == b"SPNS" if x is ints else comp.stdout[:1] == b"\xf3"
        dec = run("decompress", "-", input=comp.stdout)
        assert dec.returncode == 0, err(dec)
        np.save(tmp_path / "y.npy", splitans.decompress(comp.stdout))
        assert dec.stdout == (tmp_path / "y.npy").read_bytes()
        # -c writes to stdout from a named file, and -o - does the same.
        assert run("compress", tmp_path / "x.npy", "-c", *extra).stdout == comp.stdout
        assert run("compress", tmp_path / "x.npy", "-o", "-", *extra).stdout == comp.stdout


def test_every_mode_of_compress_is_a_mode_of_the_cli(tmp_path, feature):
    """The CLI takes each float mode splitans.compress takes (pcontext was missing) and writes
    the same bytes."""
    for mode in cli.MODES:
        out = run("compress", tmp_path / "f.npy", "-c", "--bits", "6", "--mode", mode)
        assert out.returncode == 0, (mode, err(out))
        assert out.stdout == splitans.compress(feature, bits=6, mode=mode), mode
        assert (splitans.decompress(out.stdout) == splitans.decompress(splitans.compress(feature, bits=6, mode=mode))).all()
    assert "pcontext" in cli.MODES


def test_refuses_to_overwrite_without_force(tmp_path, feature):
    target = tmp_path / "f.spl"
    target.write_bytes(b"keep me")
    out = run("compress", tmp_path / "f.npy", "-o", target, "--bits", "8")
    assert_one_line_error(out, cli.EXIT_IO, "already exists", "-f")
    assert target.read_bytes() == b"keep me"
    out = run("compress", tmp_path / "f.npy", "-o", target, "--bits", "8", "-f", "-q")
    assert out.returncode == 0 and out.stderr == b"", err(out)
    assert splitans.inspect(target.read_bytes())["shape"] == np.load(tmp_path / "f.npy").shape
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".splitans-")] == [], "no temporary files left"


def test_bad_files_give_one_line_errors_and_exit_codes(tmp_path, feature, ints, capsys):
    good = splitans.compress(feature, bits=8)
    (tmp_path / "bad.spl").write_bytes(good[:100])
    out = run("decompress", tmp_path / "bad.spl", "-o", tmp_path / "out.npy")
    text = assert_one_line_error(out, cli.EXIT_DATA, "bad.spl: not a valid splitans file", "truncated")
    print(text)  # the error text of a bad file, for the record
    assert not (tmp_path / "out.npy").exists(), "a failed run leaves no output"

    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x10
    (tmp_path / "flipped.spl").write_bytes(bytes(flipped))
    assert_refused(capsys, cli.EXIT_DATA, "decompress", tmp_path / "flipped.spl", "-c", fragments=("not a valid splitans file",))
    assert_refused(capsys, cli.EXIT_DATA, "inspect", tmp_path / "flipped.spl", fragments=("not a valid splitans file",))

    newer = bytearray(splitans.compress(feature, bits=8, version=1))
    newer[4] = 200  # the format version
    (tmp_path / "newer.spl").write_bytes(bytes(newer))
    assert_refused(capsys, cli.EXIT_DATA, "decompress", tmp_path / "newer.spl", "-c", fragments=("version 200", "upgrade",))
    newer = bytearray(good)
    newer[0] = 0xF9  # a compact container of version 9 (FORMAT.md 10)
    (tmp_path / "newer.spl").write_bytes(bytes(newer))
    assert_refused(capsys, cli.EXIT_DATA, "decompress", tmp_path / "newer.spl", "-c", fragments=("version 9", "upgrade",))

    assert_refused(capsys, cli.EXIT_DATA, "decompress", tmp_path / "f.npy", "-c", fragments=("a .npy file, not a splitans file",))
    (tmp_path / "text.npy").write_text("hello")
    assert_refused(capsys, cli.EXIT_DATA, "compress", tmp_path / "text.npy", "-c", "--bits", "8", fragments=("not a .npy file",))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "f.npy").read_bytes()[:200])
    assert_refused(capsys, cli.EXIT_DATA, "compress", tmp_path / "cut.npy", "-c", "--bits", "8", fragments=("unreadable .npy",))
    # A header declaring 4 TB in a 144-byte file: refused from the header (it was an internal
    # error after numpy's MemoryError).
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)})
    (tmp_path / "huge.npy").write_bytes(head.getvalue() + bytes(16))
    assert_refused(capsys, cli.EXIT_DATA, "compress", tmp_path / "huge.npy", "-c", "--bits", "8",
                   fragments=("truncated", "(1000000, 1000000)", "4,000,000,000,000 bytes"))
    head = io.BytesIO()
    np.lib.format.write_array_header_2_0(head, {"descr": "<i2", "fortran_order": False, "shape": (3, 1 << 40)})
    (tmp_path / "huge2.npy").write_bytes(head.getvalue())
    assert_refused(capsys, cli.EXIT_DATA, "compress", tmp_path / "huge2.npy", "-c", fragments=("truncated",))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert_refused(capsys, cli.EXIT_DATA, "compress", tmp_path / "objects.npy", "-c", fragments=("unreadable .npy",))
    np.save(tmp_path / "c.npy", np.zeros(4, np.complex64))
    assert_refused(capsys, cli.EXIT_DATA, "compress", tmp_path / "c.npy", "-c", fragments=("complex64",))
    nan = feature.copy()
    nan[0, 0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    assert_refused(capsys, cli.EXIT_DATA, "compress", tmp_path / "nan.npy", "-c", "--bits", "8", fragments=("cannot compress",))
    assert run("compress", tmp_path / "nan.npy", "-c", "--bits", "8", "--nonfinite", "clamp").returncode == 0
    limited = run("decompress", "-", "--max-output-bytes", "100", input=good)
    assert_one_line_error(limited, cli.EXIT_DATA, "--max-output-bytes")

    assert_one_line_error(run("decompress", tmp_path / "missing.spl"), cli.EXIT_IO, "missing.spl: No such file")
    assert_refused(capsys, cli.EXIT_IO, "compress", tmp_path, "-c", fragments=("is a directory",))
    assert_refused(capsys, cli.EXIT_IO, "compress", tmp_path / "f.npy", "-o", tmp_path / "nodir" / "x.spl", "--bits", "8", fragments=("No such file",))


def test_usage_errors(tmp_path, feature, ints, capsys):
    assert_one_line_error(run("compress", tmp_path / "f.npy", "-c"), cli.EXIT_USAGE, "pass --bits")
    assert_refused(capsys, cli.EXIT_USAGE, "compress", tmp_path / "q.npy", "-c", "--bits", "8", fragments=("losslessly",))
    assert_refused(capsys, cli.EXIT_USAGE, "compress", tmp_path / "q.npy", "-c", "--mode", "csr", fragments=("--mode",))
    assert_one_line_error(run("compress", tmp_path / "f.npy", "-c", "--bits", "17"), cli.EXIT_USAGE, "invalid choice")
    assert_refused(capsys, cli.EXIT_USAGE, "compress", tmp_path / "f.npy", "-c", "--bits", "8", "--axis", "4", fragments=("out of range",))
    assert_refused(capsys, cli.EXIT_USAGE, "compress", tmp_path / "f.npy", "-c", "--bits", "8", "--clip", "3,1", fragments=("LO < HI",))
    assert_refused(capsys, cli.EXIT_USAGE, "compress", tmp_path / "f.npy", "-c", "-o", "x", "--bits", "8", fragments=("-o and -c",))
    assert_refused(capsys, cli.EXIT_USAGE, "compress", tmp_path / "f.npy", "--bits", "8", "--threads", "0", fragments=("positive integer",))
    assert_refused(capsys, cli.EXIT_USAGE, "decompress", "noext", fragments=("does not end in .spl",))
    assert_refused(capsys, cli.EXIT_USAGE, "compress", tmp_path / "f.npy", "--nosuch", fragments=("unrecognized arguments",))
    assert_refused(capsys, cli.EXIT_USAGE, "plan", tmp_path / "q.npy", "--bits", "4", fragments=("nothing to plan",))
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
    for fragment in ("version 3, feature", "float32 (2, 16, 12, 12)", "4 bits per channel along axis 1", "csr",
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
    for name in ("compress", "decompress", "inspect", "plan", "bench", "fit"):
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


def test_demo_runs_with_the_context_coder(capsys):
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("sklearn")
    # In this process: test_demo.py already runs the demo as a new process.
    assert cli.main(["demo", "--split", "block11.expand", "--bits", "4", "--mode", "best"]) == 0
    text = capsys.readouterr().out
    assert "context" in text and "top-1" in text and "differs" not in text, text


def test_unexpected_errors_and_missing_packages_are_one_line(tmp_path, feature, monkeypatch, capsys):
    def boom(*a, **k):
        raise RuntimeError("something broke\nsecond line")

    monkeypatch.setattr(splitans, "compress", boom)
    assert cli.main(["compress", str(tmp_path / "f.npy"), "-c", "--bits", "8"]) == cli.EXIT_INTERNAL
    text = capsys.readouterr().err
    assert text.count("\n") == 1 and "internal error: RuntimeError: something broke" in text

    def needs_torch(args):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setattr(cli.evaluation, "demo", needs_torch)
    assert cli.main(["demo"]) == cli.EXIT_MISSING
    assert "pip install 'splitans[demo]'" in capsys.readouterr().err


def test_python_dash_m_and_the_console_script_share_main():
    import splitans.__main__ as entry

    assert entry.main is cli.main
    out = run("--version")
    assert out.returncode == 0 and out.stdout.decode().strip() == f"splitans {splitans.__version__}"


@pytest.fixture
def calibration(tmp_path):
    maps = np.maximum(np.random.default_rng(7).normal(size=(40, 8, 16, 16)), 0).astype(np.float32)
    np.save(tmp_path / "cal.npy", maps[:32])
    np.save(tmp_path / "one.npy", maps[35])
    np.save(tmp_path / "other.npy", maps[:32] * 3)
    return maps


def test_fit_then_compress_and_decompress_with_the_codec(tmp_path, calibration):
    out = run("fit", "cal.npy", "--bits", "4", "--axis", "0", cwd=tmp_path)
    assert out.returncode == 0, err(out)
    assert "cal.npy -> cal.codec" in err(out) and "bits/element on held-out samples" in err(out)
    codec = splitans.Codec.from_bytes((tmp_path / "cal.codec").read_bytes())
    assert codec == splitans.Codec.fit(calibration[:32], bits=4, axis=0), "the CLI fits what Codec.fit fits"
    assert f"id {codec.id}" in run("inspect", tmp_path / "cal.codec").stdout.decode()

    out = run("compress", "one.npy", "--codec", "cal.codec", cwd=tmp_path)
    assert out.returncode == 0, err(out)
    blob = (tmp_path / "one.spl").read_bytes()
    assert blob == codec.compress(calibration[35]) and len(blob) < 0.1 * calibration[35].nbytes
    out = run("decompress", "one.spl", "--codec", "cal.codec", "-o", "back.npy", cwd=tmp_path)
    assert out.returncode == 0, err(out)
    np.testing.assert_array_equal(np.load(tmp_path / "back.npy"), codec.decompress(blob))
    text = run("inspect", "one.spl", "--codec", "cal.codec", cwd=tmp_path).stdout.decode()
    assert codec.id in text and "float32 (8, 16, 16)" in text
    info = json.loads(run("inspect", "one.spl", "--codec", "cal.codec", "--json", cwd=tmp_path).stdout)
    assert info["codec"] == codec.id and info["bytes"] == len(blob)

    # Through pipes as well.
    piped = run("compress", "-", "--codec", tmp_path / "cal.codec", input=(tmp_path / "one.npy").read_bytes())
    assert piped.returncode == 0 and piped.stdout == blob
    back = run("decompress", "-", "--codec", tmp_path / "cal.codec", input=blob)
    assert back.returncode == 0 and back.stdout == (tmp_path / "back.npy").read_bytes()


def test_the_wrong_or_missing_codec_is_refused(tmp_path, calibration, capsys):
    assert run("fit", "cal.npy", "--bits", "4", "-q", cwd=tmp_path).returncode == 0
    assert run("fit", "other.npy", "--bits", "4", "-o", "other.codec", "-q", cwd=tmp_path).returncode == 0
    assert run("compress", "one.npy", "--codec", "cal.codec", "-q", cwd=tmp_path).returncode == 0
    assert_one_line_error(run("decompress", "one.spl", "-c", cwd=tmp_path), cli.EXIT_USAGE, "pass --codec")
    assert_refused(capsys, cli.EXIT_USAGE, "inspect", "one.spl", fragments=("pass --codec",), cwd=tmp_path)
    assert_one_line_error(run("decompress", "one.spl", "--codec", "other.codec", "-c", cwd=tmp_path), cli.EXIT_DATA, "another codec")
    assert_refused(capsys, cli.EXIT_DATA, "decompress", "cal.codec", "-c", fragments=("a fitted codec",), cwd=tmp_path)
    assert_refused(capsys, cli.EXIT_DATA, "compress", "one.npy", "--codec", "one.npy", "-c", fragments=("not a fitted codec",), cwd=tmp_path)
    assert_refused(capsys, cli.EXIT_USAGE, "compress", "one.npy", "--codec", "cal.codec", "--bits", "4", "-c", fragments=("the codec fixes",), cwd=tmp_path)
    assert_refused(capsys, cli.EXIT_DATA, "compress", "cal.npy", "--codec", "cal.codec", "-c", fragments=("shape",), cwd=tmp_path)
    damaged = bytearray((tmp_path / "cal.codec").read_bytes())
    damaged[-3] ^= 1
    (tmp_path / "damaged.codec").write_bytes(bytes(damaged))
    assert_refused(capsys, cli.EXIT_DATA, "compress", "one.npy", "--codec", "damaged.codec", "-c", fragments=("damaged.codec",), cwd=tmp_path)
    np.save(tmp_path / "ints.npy", np.arange(64, dtype=np.int16).reshape(4, 16))
    assert_refused(capsys, cli.EXIT_DATA, "fit", "ints.npy", "--bits", "4", "-c", fragments=("float samples",), cwd=tmp_path)
    assert_refused(capsys, cli.EXIT_USAGE, "fit", "cal.npy", "--bits", "9", "-c", fragments=("invalid choice",), cwd=tmp_path)
    assert_refused(capsys, cli.EXIT_USAGE, "fit", "cal.npy", "--bits", "4", "--axis", "3", "-c", fragments=("out of range",), cwd=tmp_path)
