"""Fitted codecs at the sizes users send (issue 27): maps of 1-30 K elements, channels first or
last, token matrices and vectors, every float dtype, per tensor or per channel along any axis,
each clip kind. Each drawn codec decodes its blobs to exactly what quantization alone gives,
within half a step of the value clamped to its channel's grid, in the codec's dtype, and a
serialized copy decodes the same blobs. test_fitted.py's property covers toy shapes in depth.

The CI profile draws a dozen examples; ``HYPOTHESIS_PROFILE=slow`` draws hundreds."""

import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import splitans

_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")


@st.composite
def maps(draw):
    """(shape, channel axis) of one sample: 1 K to 30 K elements."""
    layout = draw(st.sampled_from(["chw", "hwc", "tokens", "vector"]))
    elements = draw(st.integers(1_000, 30_000))
    if layout in ("chw", "hwc"):
        c = draw(st.sampled_from([3, 8, 16, 32, 64]))
        h = draw(st.integers(2, max(2, int(math.sqrt(elements / c)) + 2)))
        w = max(1, elements // (c * h))
        return ((c, h, w), 0) if layout == "chw" else ((h, w, c), 2)
    if layout == "tokens":
        d = draw(st.sampled_from([16, 64, 96, 384]))
        return (max(1, elements // d), d), 1
    return (elements,), 0


@settings(max_examples=12 if _PROFILE == "ci" else 300, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    shape_axis=maps(),
    per_channel=st.booleans(),
    bits=st.integers(1, 8),
    clip=st.sampled_from(["calibration", None, "percentile", "mse"]),
    dtype=st.sampled_from(["float32", "float16", "float64", "bfloat16"]),
    n_cal=st.integers(2, 6),
    sparsity=st.sampled_from([0.0, 0.5, 0.9]),
    seed=st.integers(0, 2**32 - 1),
)
def test_fitted_codec_at_real_sizes(shape_axis, per_channel, bits, clip, dtype, n_cal, sparsity, seed):
    shape, channel_axis = shape_axis
    axis = channel_axis if per_channel else None
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_cal + 2, *shape)) * rng.uniform(0.1, 10, size=(1,) + tuple(
        shape[a] if a == channel_axis else 1 for a in range(len(shape))))
    x = x + np.roll(x, 1, -1)  # neighbours alike
    x = np.where(x < np.quantile(x, sparsity), 0, x).astype(np.float32)
    if dtype == "bfloat16":
        torch = pytest.importorskip("torch")
        cal = torch.from_numpy(x[:n_cal]).to(torch.bfloat16)
        samples = [torch.from_numpy(s).to(torch.bfloat16) for s in x[n_cal:]]
        as32 = [s.float().numpy() for s in samples]
        out_dtype = np.float32  # numpy has no bfloat16: decoded as float32
    else:
        cal = x[:n_cal].astype(dtype)
        samples = [s.astype(dtype) for s in x[n_cal:]]
        as32 = [s.astype(np.float32) for s in samples]
        out_dtype = np.dtype(dtype)
    spec = {"calibration": "calibration", None: None, "percentile": splitans.Percentile(0.5, 99.5), "mse": "mse"}[clip]
    codec = splitans.Codec.fit(cal, bits=bits, axis=axis, clip=spec)
    assert codec.shape == shape and codec.dtype == dtype and codec.bits == bits
    again = splitans.Codec.from_bytes(codec.to_bytes())
    assert again == codec
    C = 1 if axis is None else shape[axis]
    for s, s32 in zip(samples, as32):
        blob = codec.compress(s)
        y = codec.decompress(blob)
        assert y.shape == shape and y.dtype == out_dtype
        want = codec.round_trip(s32[None])[0]
        assert np.array_equal(y, want.astype(out_dtype)), "decode differs from quantization alone"
        assert np.array_equal(again.decompress(blob), y)
        info = codec.inspect(blob)
        # Packed codes bound the blob: 7 bytes of header, per-sample parameters, the codes.
        assert len(blob) <= 7 + (C * 9 if clip is None else 0) + math.ceil(s32.size * bits / 8) + 1
        d = codec.describe()
        if clip is None:
            scale = np.asarray(info["scale"], np.float64)
            zp = np.asarray(info["zero_point"], np.float64)
        else:
            scale = np.asarray(d["scale"], np.float64)
            zp = np.asarray(d["zero_point"], np.float64)
        assert scale.shape == (C,)
        bshape = [1] * len(shape)
        if axis is not None:
            bshape[axis] = C
        s_el = scale.reshape(bshape)
        z_el = zp.reshape(bshape)
        lo, hi = -z_el * s_el, ((1 << bits) - 1 - z_el) * s_el
        inside = np.clip(s32.astype(np.float64), lo, hi)
        tol = s_el / 2 * (1 + 1e-5) + np.abs(inside) * 2e-7
        if dtype in ("float16", "bfloat16"):
            tol = tol + np.abs(inside) * (1e-3 if dtype == "float16" else 8e-3) + 1e-4
        assert (np.abs(want.astype(np.float64) - inside) <= tol).all()
    if clip is None:
        return
    # A fixed grid is that of its own channel's calibration values: it covers them all (min/max)
    # and never reaches past them by more than a step.
    s = np.asarray(codec.describe()["scale"], np.float64)
    z = np.asarray(codec.describe()["zero_point"], np.float64)
    lo, hi = -z * s, ((1 << bits) - 1 - z) * s
    c32 = np.asarray(cal.float().numpy() if dtype == "bfloat16" else cal, np.float64)
    rows = c32.reshape(n_cal, -1)[None] if axis is None else np.moveaxis(c32, axis + 1, 0).reshape(C, -1)
    rows = rows.reshape(C, -1)
    vlo, vhi = np.minimum(rows.min(1), 0), np.maximum(rows.max(1), 0)
    slack = s * (1 + 1e-5) + np.maximum(np.abs(vlo), np.abs(vhi)) * 1e-6
    assert (lo >= vlo - slack).all() and (hi <= vhi + slack).all()
    if clip == "calibration":
        assert (lo <= vlo + slack / 2).all() and (hi >= vhi - slack / 2).all()
