"""Finite input decodes to finite output within the documented bound, for every input dtype at
its range ends and float32 ranges up to ±f32::MAX, at every bit width, against parameters
computed again from FORMAT.md 6.7 (tests/reference.py)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference
import splitans
from strict import need_module

F32_MAX = float(np.finfo(np.float32).max)
BF16_MAX = float(np.uint32(0x7F7F0000).view(np.float32))
TOP = {"float16": 65504.0, "bfloat16": BF16_MAX, "float32": F32_MAX, "float64": F32_MAX}


@st.composite
def finite_inputs(draw):
    """A finite tensor of a float dtype whose values reach toward (or exactly to) the ends of
    the dtype's range, or of float32's for float64, with a spread from tiny to the whole range."""
    dtype = draw(st.sampled_from(["float16", "bfloat16", "float32", "float64"]))
    top = TOP[dtype]
    n = draw(st.integers(1, 300))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    hi = draw(st.sampled_from([top, top, top * 0.999, top / 2, 1.0, 1e-30]))
    lo = draw(st.sampled_from([-top, -hi, 0.0, hi / 3, -top * 0.9]))
    kind = draw(st.sampled_from(["uniform", "ends", "log"]))
    if kind == "uniform":
        x = rng.uniform(0, 1, n) * (hi - lo) + lo if np.isfinite(hi - lo) else rng.uniform(lo, 0, n) + rng.uniform(0, hi, n)
    elif kind == "ends":
        x = rng.choice(np.array([lo, hi, 0.0, lo / 2, hi / 2]), n)
    else:
        top_log = np.log(max(abs(lo), abs(hi), 1e-30))
        x = np.sign(rng.normal(size=n)) * np.exp(rng.uniform(min(-30.0, top_log - 1), top_log, n))
    x[0], x[-1] = lo, hi
    x = np.clip(x, -top, top)
    return dtype, x


def as_input(dtype, x):
    if dtype == "bfloat16":
        torch = need_module("torch")
        t = torch.from_numpy(x.astype(np.float32)).to(torch.bfloat16)
        # torch rounds values near the top up to infinity: keep the input finite.
        t = torch.where(torch.isinf(t), torch.sign(t) * BF16_MAX, t).to(torch.bfloat16)
        return t, t.float().numpy()
    a = x.astype(dtype)
    return a, a.astype(np.float32)


@given(finite_inputs(), st.integers(1, 16), st.booleans(), st.sampled_from(["auto", "dense", "csr", "context"]))
def test_finite_input_decodes_finite_within_the_bound(inp, bits, per_channel, mode):
    dtype, values = inp
    x, x32 = as_input(dtype, values)
    assert np.isfinite(x32).all()
    if mode == "context" and bits > 8:
        mode = "auto"
    axis = 0 if per_channel and x32.size % 2 == 0 else None
    if axis is not None:
        x32 = x32.reshape(2, -1)
        x = x.reshape(2, -1)
    blob = splitans.compress(x, bits=bits, axis=axis, mode=mode)
    want, scale, wide, params = reference.expected(x32, bits, axis)
    info = splitans.inspect(blob)
    assert [(np.float32(s), z) for s, z in zip(info["scale"], info["zero_point"])] == params
    assert np.isfinite(want).all()
    y = splitans.decompress(blob, output="torch" if dtype == "bfloat16" else "numpy")
    if dtype == "bfloat16":
        torch = need_module("torch")
        assert y.dtype == torch.bfloat16
        y = y.float().numpy()
        half_ulp = np.abs(x32.astype(np.float64)) * 2.0**-8
    elif dtype == "float16":
        np.testing.assert_array_equal(y, reference.to_float16(want))
        half_ulp = np.abs(x32.astype(np.float64)) * 2.0**-11 + 2.0**-25
    else:
        np.testing.assert_array_equal(y, want.astype(dtype))
        half_ulp = 0.0
    y64 = y.astype(np.float64)
    assert np.isfinite(y64).all(), (dtype, bits, values[[0, -1]])
    x64 = x32.astype(np.float64)
    bound = (np.where(wide, scale, scale / 2) * (1 + 2.0**-20) + np.abs(x64) * 2.0**-22 + half_ulp
             + _range_rounding(x64, axis))
    assert (np.abs(y64 - x64) <= bound).all(), (dtype, bits, np.abs(y64 - x64).max(), bound.min())


@pytest.mark.parametrize("bits", range(1, 17))
def test_the_documented_extreme_ranges_at_every_width(bits):
    for lo, hi in [(-F32_MAX, F32_MAX), (-2.7e38, 2.82e38), (-F32_MAX, 0.0), (0.0, F32_MAX), (-65504.0, 65504.0)]:
        x = np.array([lo, hi, lo / 3, hi / 3, 0.0], np.float32)
        y = splitans.decompress(splitans.compress(x, bits=bits))
        want, scale, wide, params = reference.expected(x, bits, None)
        np.testing.assert_array_equal(y, want)
        assert np.isfinite(y).all(), (bits, lo, hi)
        bound = (np.where(wide, scale, scale / 2) * (1 + 2.0**-20) + np.abs(x.astype(np.float64)) * 2.0**-22
                 + _range_rounding(x.astype(np.float64), None))
        assert (np.abs(y.astype(np.float64) - x) <= bound).all(), (bits, lo, hi)


def test_an_element_that_clamps_at_an_end_gets_the_range_rounding_term():
    """The fuzz campaign's finding (round_trip, 2026-12-05): -lo'/s = 65517.4992 rounds to the
    tie 65517.5 in binary32 and then up, so the grid's top falls 0.502 steps short of the
    range's top element: past s/2, within FORMAT.md 6.7.3's s/2 + (|lo'| + hi') 2^-22."""
    x = np.array([-5.1803677e-9, -5.171579e-9, -4.9737986e-13, -4.9737986e-13, 1.3838651e-12], np.float32)
    blob = splitans.compress(x, bits=16, mode="dense")
    info = splitans.inspect(blob)
    scale, zero_point = info["scale"][0], info["zero_point"][0]
    assert (np.float32(scale), zero_point) == reference.expected(x, 16, None)[3][0] == (np.float32(7.906846e-14), 65518)
    err = np.abs(splitans.decompress(blob).astype(np.float64) - x.astype(np.float64))
    assert err[-1] > scale / 2 * 1.003  # the clamped top: 0.502 steps
    assert (err <= scale / 2 + _range_rounding(x.astype(np.float64), None)).all()


def _range_rounding(x64, axis):
    """(|lo'| + hi') 2^-22 of each element's channel (FORMAT.md 6.7.3: 6.7.2's binary32
    rounding, which can leave an end of the range past the grid by that much more than s/2)."""
    if axis is None:
        return (max(-x64.min(), 0.0) + max(x64.max(), 0.0)) * 2.0**-22
    lo = np.minimum(x64.min(axis=1, keepdims=True), 0.0)
    hi = np.maximum(x64.max(axis=1, keepdims=True), 0.0)
    return np.broadcast_to((hi - lo) * 2.0**-22, x64.shape)
