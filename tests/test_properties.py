"""Hypothesis properties: exact round trips over dtype x shape x distribution, small inputs and
large ones (32-lane chunks, several chunks a stream, every integer dtype)."""

import os

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import reference
import splitans

DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64"]
LARGE = settings(settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci") + "-large"))


@st.composite
def arrays(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=40))
    size = int(np.prod(shape))
    info = np.iinfo(dtype)
    kind = draw(st.sampled_from(["constant", "two", "skewed", "uniform", "extremes", "small"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "constant":
        flat = np.full(size, draw(st.integers(info.min, info.max)), dtype)
    elif kind == "two":
        flat = np.where(rng.random(size) < 0.01, info.max, info.min).astype(dtype)
    elif kind == "skewed":
        flat = (rng.geometric(0.3, size) - 1).astype(dtype) + dtype.type(info.min)
    elif kind == "extremes":
        flat = rng.choice(np.array([info.min, info.max, 0, -1 if info.min < 0 else 1], dtype=dtype), size)
    elif kind == "small":
        flat = rng.integers(-3, 4, size).astype(dtype)
    else:
        flat = rng.integers(info.min, info.max, size, dtype=dtype, endpoint=True)
    x = flat.reshape(shape)
    if x.ndim >= 2 and draw(st.booleans()):
        x = x.T
    return x


@given(arrays())
def test_compress_round_trip(x):
    blob = splitans.compress(x)
    assert len(blob) <= splitans.max_compressed_size(x.size, x.dtype, x.ndim)
    y = splitans.decompress(blob)
    assert y.dtype == x.dtype and y.shape == x.shape
    np.testing.assert_array_equal(x, y)


@given(
    st.sampled_from(["uint8", "uint16"]),
    st.integers(0, 70_000),
    st.integers(1, 65536),
    st.floats(0.0, 1.0),
    st.one_of(st.none(), st.integers(1, 16)),
    st.sampled_from([256, 1024, 65536]),
    st.integers(0, 2**32 - 1),
)
def test_rans_round_trip(dtype, n, alphabet, skew, precision_bits, chunk_symbols, seed):
    rng = np.random.default_rng(seed)
    alphabet = min(alphabet, np.iinfo(dtype).max + 1)
    # Mix of a skewed head and a uniform tail over the alphabet, including the edges.
    s = np.where(rng.random(n) < skew, rng.geometric(0.5, n) - 1, rng.integers(0, alphabet, n)) % alphabet
    s = s.astype(dtype)
    distinct = len(np.unique(s))
    if precision_bits is not None and distinct > 1 << precision_bits:
        precision_bits = 16 if distinct <= 65536 else None
    blob = splitans.rans_encode(s, precision_bits=precision_bits, chunk_symbols=chunk_symbols)
    np.testing.assert_array_equal(splitans.rans_decode(blob), s)
    stream = splitans.inspect(blob)["streams"][0]
    assert stream["symbols"] == n
    assert stream["distinct_symbols"] == distinct


@st.composite
def large_arrays(draw):
    """An integer array of any dtype in a size class: "lanes32" (2^16 to 140,000 elements: full
    32-lane chunks), "multichunk" (2^18 to 400,000: several default chunks, which are at most
    2^18 symbols), "chunked" (an
    explicit small chunk size: many chunks of fewer lanes) or "small". Skewed values, so that
    the least significant plane is rANS-coded."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    size_class = draw(st.sampled_from(["lanes32", "multichunk", "chunked", "small"]))
    n = {"lanes32": st.integers(65_536, 140_000), "multichunk": st.integers((1 << 18) + 1, 400_000),
         "chunked": st.integers(5_000, 40_000), "small": st.integers(0, 300)}[size_class]
    n = draw(n)
    chunk_symbols = draw(st.sampled_from([256, 1024, 4096])) if size_class == "chunked" else None
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    info = np.iinfo(dtype)
    p = draw(st.sampled_from([0.5, 0.1, 0.02] if size_class == "small" else [0.6, 0.3]))
    v = rng.geometric(p, n) - 1
    if info.min < 0:
        v = v * rng.choice([-1, 1], n)
    if draw(st.booleans()):  # some values far out, in the high planes
        v = np.where(rng.random(n) < 0.001, info.max, v)
    return v.astype(dtype), size_class, chunk_symbols


@LARGE
@given(large_arrays(), st.sampled_from([None, 1, 2]))
def test_large_round_trips_reach_32_lanes_and_many_chunks(case, threads):
    x, size_class, chunk_symbols = case
    blob = splitans.compress(x, chunk_symbols=chunk_symbols, threads=threads)
    assert len(blob) <= splitans.max_compressed_size(x.size, x.dtype, x.ndim)
    y = splitans.decompress(blob, threads=threads)
    assert y.dtype == x.dtype and y.shape == x.shape
    np.testing.assert_array_equal(x, y)
    plane = splitans.inspect(blob)["streams"][0]
    if size_class == "small":
        return
    # The path each class is there for was taken.
    assert plane["mode"] == "rans", plane
    chunks = -(-plane["symbols"] // plane["chunk_symbols"])
    if size_class == "lanes32":
        assert plane["lanes"] == 32
    elif size_class == "multichunk":
        assert plane["lanes"] == 32 and chunks >= 2
    else:
        assert plane["chunk_symbols"] == chunk_symbols and chunks >= 2


@LARGE
@given(st.integers(1, 16), st.integers(65_536, 200_000), st.integers(0, 2**32 - 1),
       st.sampled_from(["dense", "csr", "auto", "context"]), st.sampled_from(["float32", "float16", "float64"]))
def test_large_features_decode_to_the_documented_values(bits, n, seed, mode, dtype):
    if mode == "context" and bits > 8:
        mode = "auto"
    rng = np.random.default_rng(seed)
    x = (np.maximum(rng.normal(size=n), 0) * rng.uniform(0.1, 100)).astype(dtype).reshape(-1, 256 if n % 256 == 0 else 1)
    blob = splitans.compress(x, bits=bits, mode=mode)
    want, scale, wide, params = reference.expected(x.astype(np.float32), bits, None)
    y = splitans.decompress(blob)
    np.testing.assert_array_equal(y, reference.to_float16(want) if dtype == "float16" else want.astype(dtype))
    codes = splitans.inspect(blob)["streams"]
    if mode == "dense" and codes[0]["mode"] == "rans":
        assert codes[0]["lanes"] == 32
