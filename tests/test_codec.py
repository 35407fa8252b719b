"""Round trips and argument handling of the lossless codec, against the installed package."""

import numpy as np
import pytest

import splitans

INTEGER_DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64"]


def assert_same(a, b):
    assert b.dtype == a.dtype
    assert b.shape == a.shape
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", INTEGER_DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (1,), (7,), (2, 3, 4), (1, 64, 9, 9)])
def test_round_trip_dtypes_and_shapes(dtype, shape):
    info = np.iinfo(dtype)
    rng = np.random.default_rng(0)
    x = rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    blob = splitans.compress(x)
    assert isinstance(blob, bytes)
    assert len(blob) <= splitans.max_compressed_size(x.size, dtype, x.ndim)
    assert_same(x, splitans.decompress(blob))


def test_zero_dimensional_keeps_its_shape():
    x = np.array(-7, dtype=np.int32)
    y = splitans.decompress(splitans.compress(x))
    assert y.shape == () and y.dtype == np.int32 and int(y) == -7


@pytest.mark.parametrize("dtype", ["uint8", "int16", "int32"])
def test_non_contiguous_and_byte_swapped(dtype):
    rng = np.random.default_rng(1)
    base = rng.integers(-50, 50, size=(40, 30, 6)).astype(dtype)
    for view in (base[::2, 1::3], base.transpose(2, 0, 1), base[..., ::-1], np.asfortranarray(base)):
        assert_same(np.ascontiguousarray(view), splitans.decompress(splitans.compress(view)))
    swapped = base.astype(np.dtype(dtype).newbyteorder(">"))
    y = splitans.decompress(splitans.compress(swapped))
    np.testing.assert_array_equal(y, base)
    assert y.dtype == np.dtype(dtype)


def test_skewed_data_is_coded_close_to_its_entropy():
    rng = np.random.default_rng(2)
    x = np.minimum(rng.geometric(0.3, size=1 << 20) - 1, 255).astype(np.uint8)
    blob = splitans.compress(x)
    info = splitans.inspect(blob)
    stream = info["streams"][0]
    assert stream["mode"] == "rans"
    assert stream["compressed_bytes"] <= 1.01 * stream["entropy_bound_bytes"] + 2048
    counts = np.bincount(x, minlength=256)
    p = counts[counts > 0] / x.size
    assert stream["entropy_bound_bytes"] == pytest.approx(-(counts[counts > 0] * np.log2(p)).sum() / 8)


def test_incompressible_data_is_stored_raw_within_the_bound():
    x = np.random.default_rng(3).integers(0, 256, size=5000, dtype=np.uint8)
    blob = splitans.compress(x)
    assert splitans.inspect(blob)["streams"][0]["mode"] == "raw"
    assert len(blob) <= splitans.max_compressed_size(x.size, "uint8", 1)


def test_constant_and_empty_streams():
    assert splitans.inspect(splitans.compress(np.full((100, 100), 9, np.uint16)))["streams"][0]["mode"] == "constant"
    assert splitans.inspect(splitans.compress(np.zeros((0, 5), np.uint8)))["streams"][0]["mode"] == "empty"


def test_int32_uses_two_planes():
    x = np.arange(-1000, 1000, dtype=np.int32)
    info = splitans.inspect(splitans.compress(x))
    assert len(info["streams"]) == 2
    assert info["dtype"] == "int32" and info["shape"] == (2000,)


def test_rans_symbols_round_trip():
    rng = np.random.default_rng(4)
    for dtype, hi in (("uint8", 256), ("uint16", 65536)):
        s = rng.integers(0, hi, size=200_000).astype(dtype)
        blob = splitans.rans_encode(s)
        back = splitans.rans_decode(blob)
        assert back.dtype == s.dtype and back.ndim == 1
        np.testing.assert_array_equal(back, s)


def test_full_16_bit_alphabet():
    s = np.random.default_rng(5).permutation(np.arange(65536, dtype=np.uint16).repeat(3))
    blob = splitans.rans_encode(s)
    stream = splitans.inspect(blob)["streams"][0]
    assert stream["distinct_symbols"] == 65536 and stream["alphabet_size"] == 65536
    np.testing.assert_array_equal(splitans.rans_decode(blob), s)


@pytest.mark.parametrize("precision_bits", [8, 11, 16])
@pytest.mark.parametrize("chunk_symbols", [256, 4096, 1 << 20])
def test_coder_options(precision_bits, chunk_symbols):
    s = (np.random.default_rng(6).geometric(0.1, size=30_000) % 200).astype(np.uint8)
    blob = splitans.rans_encode(s, precision_bits=precision_bits, chunk_symbols=chunk_symbols, threads=1)
    stream = splitans.inspect(blob)["streams"][0]
    assert stream["precision_bits"] == precision_bits
    assert stream["chunk_symbols"] == chunk_symbols
    np.testing.assert_array_equal(splitans.rans_decode(blob, threads=2), s)


def test_thread_count_does_not_change_the_bytes():
    s = (np.random.default_rng(7).geometric(0.05, size=1 << 20) % 256).astype(np.uint8)
    assert splitans.rans_encode(s, threads=1) == splitans.rans_encode(s) == splitans.rans_encode(s, threads=3)


def test_accepts_bytes_like_input():
    x = np.arange(1000, dtype=np.uint16) % 7
    blob = splitans.compress(x)
    for data in (bytearray(blob), memoryview(blob), np.frombuffer(blob, np.uint8)):
        np.testing.assert_array_equal(splitans.decompress(data), x)


def test_float_input_names_the_lossy_option():
    with pytest.raises(TypeError, match="bits="):
        splitans.compress(np.zeros(4, np.float32))


@pytest.mark.parametrize(
    "value",
    [np.zeros(3, bool), np.zeros(3, complex), np.array(["a"]), np.array([object()])],
)
def test_unsupported_dtypes(value):
    with pytest.raises(TypeError):
        splitans.compress(value)


def test_bad_options():
    s = np.zeros(10, np.uint8)
    with pytest.raises(ValueError, match="precision_bits"):
        splitans.rans_encode(s, precision_bits=17)
    with pytest.raises(ValueError, match="chunk_symbols"):
        splitans.rans_encode(s, chunk_symbols=1000)
    with pytest.raises(ValueError, match="threads"):
        splitans.rans_encode(s, threads=0)
    with pytest.raises(TypeError):
        splitans.rans_encode(s.astype(np.int8))
    with pytest.raises(ValueError):
        splitans.rans_encode(np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="distinct symbols"):
        splitans.rans_encode(np.arange(256, dtype=np.uint8), precision_bits=7)
    with pytest.raises(TypeError):
        splitans.decompress("not bytes")


def test_rans_decode_rejects_array_containers():
    with pytest.raises(ValueError, match="decompress"):
        splitans.rans_decode(splitans.compress(np.zeros(4, np.uint8)))


def test_max_compressed_size_grows_with_n():
    assert splitans.max_compressed_size(0) < splitans.max_compressed_size(1000) < splitans.max_compressed_size(1001)
    assert splitans.max_compressed_size(100, "int32", 2) > splitans.max_compressed_size(100, "int16", 2)


def test_version_comes_from_cargo():
    import pathlib
    import re

    from strict import need

    cargo = pathlib.Path(__file__).resolve().parents[1] / "Cargo.toml"
    need(cargo.exists(), "the version comparison needs the repository's Cargo.toml")
    version = re.search(r'^version = "([^"]+)"', cargo.read_text(), re.M).group(1)
    assert splitans.__version__ == version
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", splitans.__version__)
