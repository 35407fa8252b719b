"""Hypothesis properties: exact round trips over dtype x shape x distribution."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import splitans

DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32"]


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
        flat = (rng.geometric(0.3, size) % (info.max - info.min + 1) + info.min).astype(dtype)
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
