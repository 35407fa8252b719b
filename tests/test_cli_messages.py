"""What the CLI prints and which inputs it takes, beyond test_cli.py (issue 27): the ratios in
compress's message and in inspect's tables (a bfloat16 codec's elements counted at 2 bytes), every
integer width compressed losslessly, a .npy error's first line, 1-d arrays refused by fit, and
the defaults of --threads and --repeat."""

import re

import numpy as np
import pytest

import splitans
from splitans import cli


def call(capsys, *args):
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as e:  # argparse
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def _ratio(text):
    """(ratio, bits per element) of the first ``N.NNx, B.BBB bits/element`` in ``text``."""
    m = re.search(r"([0-9.]+)x, ([0-9.]+) bits/element", text)
    assert m, text
    return float(m.group(1)), float(m.group(2))


def test_compress_message_states_the_ratio(tmp_path, capsys):
    x = np.maximum(np.random.default_rng(0).normal(size=(8, 16, 16)), 0).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code, _, err = call(capsys, "compress", tmp_path / "x.npy", "--bits", "4", "-o", tmp_path / "x.spl")
    assert code == 0, err
    size = (tmp_path / "x.spl").stat().st_size
    ratio, bpe = _ratio(err)
    assert ratio == pytest.approx(x.nbytes / size, abs=0.006) and bpe == pytest.approx(8 * size / x.size, abs=6e-4)
    assert f"{x.nbytes:,} -> {size:,} bytes" in err


def test_inspect_table_states_the_ratio(tmp_path, capsys):
    x = np.linspace(0, 1, 3000, dtype=np.float16).reshape(30, 100)
    (tmp_path / "x.spl").write_bytes(splitans.compress(x, bits=6))
    size = (tmp_path / "x.spl").stat().st_size
    code, out, err = call(capsys, "inspect", tmp_path / "x.spl")
    assert code == 0, err
    ratio, bpe = _ratio(out)
    assert ratio == pytest.approx(x.nbytes / size, abs=0.006) and bpe == pytest.approx(8 * size / x.size, abs=6e-4)
    assert f"float16 (30, 100), 3,000 elements, {x.nbytes:,} bytes" in out


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_fitted_blob_table_counts_elements_at_the_codec_dtype(tmp_path, capsys, dtype):
    cal = np.maximum(np.random.default_rng(1).normal(size=(6, 4, 12, 12)), 0).astype(np.float32)
    if dtype == "bfloat16":
        torch = pytest.importorskip("torch")
        codec = splitans.Codec.fit(torch.from_numpy(cal).to(torch.bfloat16), bits=4)
        itemsize = 2
    else:
        codec = splitans.Codec.fit(cal, bits=4)
        itemsize = 4
    (tmp_path / "c.codec").write_bytes(codec.to_bytes())
    blob = codec.compress(cal[0])
    (tmp_path / "b.bin").write_bytes(blob)
    code, out, err = call(capsys, "inspect", tmp_path / "b.bin", "--codec", tmp_path / "c.codec")
    assert code == 0, err
    n = cal[0].size
    assert f"{dtype} (4, 12, 12), {n:,} elements, {n * itemsize:,} bytes" in out
    ratio, bpe = _ratio(out)
    assert ratio == pytest.approx(n * itemsize / len(blob), abs=0.006)
    assert bpe == pytest.approx(8 * len(blob) / n, abs=6e-4)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64"])
def test_every_integer_width_round_trips_losslessly(tmp_path, capsys, dtype):
    info = np.iinfo(dtype)
    q = np.concatenate([np.array([info.min, info.max, 0], dtype), (np.arange(497) * 7 - 1700).astype(dtype)]).reshape(20, 25)
    np.save(tmp_path / "q.npy", q)
    code, _, err = call(capsys, "compress", tmp_path / "q.npy", "-q")
    assert code == 0, err
    code, _, err = call(capsys, "decompress", tmp_path / "q.spl", "-o", tmp_path / "back.npy", "-q")
    assert code == 0, err
    back = np.load(tmp_path / "back.npy")
    assert back.dtype == q.dtype and np.array_equal(back, q)


def test_a_npy_error_prints_its_first_line(tmp_path, capsys):
    """numpy refuses a header beyond its safety limit with a three-line message: the CLI's one
    line is the first, the reason."""
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }"
    header = header + " " * (20_000 - len(header)) + "\n"
    data = b"\x93NUMPY\x02\x00" + len(header).to_bytes(4, "little") + header.encode() + b"\0" * 16
    (tmp_path / "big.npy").write_bytes(data)
    code, _, err = call(capsys, "compress", tmp_path / "big.npy", "--bits", "8", "-c")
    assert code == cli.EXIT_DATA
    assert err.count("\n") == 1 and "unreadable .npy file: Header info length" in err and "sandbox" not in err


def test_fit_refuses_a_single_vector(tmp_path, capsys):
    np.save(tmp_path / "v.npy", np.linspace(0, 1, 64, dtype=np.float32))
    code, _, err = call(capsys, "fit", tmp_path / "v.npy", "--bits", "4", "-q")
    assert code == cli.EXIT_DATA and "at least two dimensions" in err
    np.save(tmp_path / "m.npy", np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8))
    code, _, err = call(capsys, "fit", tmp_path / "m.npy", "--bits", "4", "-q")
    assert code == 0, err


def test_threads_and_repeat_defaults():
    assert cli._threads(None) is None and cli._threads(3) == 3 and cli._threads(1) == 1
    parser = cli.build_parser()
    assert parser.parse_args(["bench", "x.npy", "--bits", "8"]).repeat == 3
    assert parser.parse_args(["compress", "x.npy", "--bits", "8"]).threads is None
    with pytest.raises(SystemExit):
        parser.parse_args(["compress", "x.npy", "--threads", "0"])


def test_fit_refuses_an_array_of_no_samples(tmp_path, capsys):
    np.save(tmp_path / "none.npy", np.zeros((0, 8), np.float32))
    code, _, err = call(capsys, "fit", tmp_path / "none.npy", "--bits", "4", "-q")
    assert code == cli.EXIT_DATA and "at least two dimensions and one sample" in err, err


def test_float16_npy_compresses_and_comes_back_float16(tmp_path, capsys):
    x = np.linspace(-2, 2, 600, dtype=np.float16).reshape(20, 30)
    np.save(tmp_path / "h.npy", x)
    code, _, err = call(capsys, "compress", tmp_path / "h.npy", "--bits", "8", "-q")
    assert code == 0, err
    code, _, err = call(capsys, "decompress", tmp_path / "h.spl", "-o", tmp_path / "back.npy", "-q")
    assert code == 0, err
    back = np.load(tmp_path / "back.npy")
    assert back.dtype == np.float16 and back.shape == x.shape
    assert np.abs(back.astype(np.float32) - x.astype(np.float32)).max() <= 4 / 255 / 2 + 2e-3


def test_a_fitted_blob_without_its_codec_names_the_codec(tmp_path, capsys):
    cal = np.maximum(np.random.default_rng(2).normal(size=(6, 4, 8, 8)), 0).astype(np.float32)
    codec = splitans.Codec.fit(cal, bits=4)
    (tmp_path / "b.bin").write_bytes(codec.compress(cal[0]))
    for command in ("decompress", "inspect"):
        code, _, err = call(capsys, command, tmp_path / "b.bin", *(["-c"] if command == "decompress" else []))
        assert code == cli.EXIT_USAGE
        assert f"made by a fitted codec (id {codec.id[:4]}...): pass --codec CODEC" in err, (command, err)


def test_inspect_of_a_one_element_array_counts_its_bits(tmp_path, capsys):
    (tmp_path / "one.spl").write_bytes(splitans.compress(np.array([7], np.int32)))
    size = (tmp_path / "one.spl").stat().st_size
    code, out, err = call(capsys, "inspect", tmp_path / "one.spl")
    assert code == 0, err
    ratio, bpe = _ratio(out)
    assert ratio == pytest.approx(4 / size, abs=0.006) and bpe == pytest.approx(8 * size, abs=6e-4)


def test_plan_states_the_share_off_the_zero_point(tmp_path, capsys):
    x = np.zeros((4, 10, 10), np.float32)
    x.reshape(-1)[::8] = 1.0  # 50 of 400 elements
    np.save(tmp_path / "p.npy", x)
    code, out, err = call(capsys, "plan", tmp_path / "p.npy", "--bits", "4")
    assert code == 0, err
    assert "50 off the zero point (12.5%)" in out, out


def test_bench_rows_ratio_is_input_bytes_over_blob_bytes():
    x = np.maximum(np.random.default_rng(3).normal(size=(8, 32, 32)), 0).astype(np.float32)
    rows = cli.bench_rows(x, bits=8, repeat=1)
    sized = [r for r in rows if r["bytes"]]
    assert sized
    for r in sized:
        assert r["ratio"] == pytest.approx(x.nbytes / r["bytes"]) and r["bits_per_element"] == pytest.approx(8 * r["bytes"] / x.size)


def test_demo_takes_every_bit_width_from_1_to_16():
    parser = cli.build_parser()
    for bits in ("1", "16"):
        assert parser.parse_args(["demo", "--bits", bits]).bits == int(bits)
    for bits in ("0", "17"):
        with pytest.raises(SystemExit):
            parser.parse_args(["demo", "--bits", bits])


@pytest.mark.parametrize("x, kw", [(np.array(3.0, np.float32), {"bits": 8}), (np.array(5, np.int32), {})])
def test_inspect_of_a_zero_dimensional_array_counts_one_element(tmp_path, capsys, x, kw):
    (tmp_path / "s.spl").write_bytes(splitans.compress(x, **kw))
    code, out, err = call(capsys, "inspect", tmp_path / "s.spl")
    assert code == 0, err
    assert f"{x.dtype} (), 1 elements, {x.itemsize} bytes" in out, out


def test_decompress_to_stdout_writes_no_message(tmp_path):
    """`-o -` sends the .npy to stdout and says nothing on stderr (a pipe reads only the array);
    to a file, the message names it, whatever its first character."""
    import io
    import subprocess
    import sys

    x = np.arange(12, dtype=np.int16).reshape(3, 4)
    (tmp_path / "x.spl").write_bytes(splitans.compress(x))
    out = subprocess.run([sys.executable, "-m", "splitans", "decompress", str(tmp_path / "x.spl"), "-o", "-"],
                         capture_output=True, timeout=120)
    assert out.returncode == 0 and out.stderr == b"", out.stderr
    assert np.array_equal(np.load(io.BytesIO(out.stdout)), x)
    out = subprocess.run([sys.executable, "-m", "splitans", "decompress", "x.spl", "-o", "+back.npy"], cwd=tmp_path,
                         capture_output=True, timeout=120)
    assert out.returncode == 0 and b"x.spl -> +back.npy: int16 (3, 4)" in out.stderr, out.stderr
    assert np.array_equal(np.load(tmp_path / "+back.npy"), x)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "uint8"])
def test_inspect_table_counts_bytes_at_the_array_s_itemsize(tmp_path, capsys, dtype):
    x = (np.arange(600) % 37).astype(dtype).reshape(20, 30)
    (tmp_path / "x.spl").write_bytes(splitans.compress(x, **({"bits": 8} if x.dtype.kind == "f" else {})))
    code, out, err = call(capsys, "inspect", tmp_path / "x.spl")
    assert code == 0, err
    assert f"{dtype} (20, 30), 600 elements, {x.nbytes:,} bytes" in out, out
