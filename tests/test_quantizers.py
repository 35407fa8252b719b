"""The quantizers of fitted codecs beyond the affine grid (FORMAT.md 9.2): dead zones, trained
levels, per-channel bits, searched clip ranges, per-token parameters. Each one's decode error
bound, its serialization, and an independent reading of the format's test vectors."""

import pathlib
import re
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import splitans
from splitans import CorruptDataError, _quantizers
from reference import varint
from splitans._fitted import Codec

ROOT = pathlib.Path(__file__).resolve().parents[1]



def _version_2_or_3(d):
    """The version a codec with a version-2 quantizer needs: 3 if its model's predictor is
    med-residual (FORMAT.md 9.2), else 2."""
    return 3 if d["model"]["predictor"] == "med-residual" else 2

def relu_maps(n, shape, seed=0, sparsity=0.5):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *shape)).astype(np.float32)
    return np.maximum(x - np.quantile(x, sparsity), 0).astype(np.float32)


def channel_of(shape, axis):
    """Channel index of every element (C order)."""
    if axis is None:
        return np.zeros(shape, np.int64)
    idx = np.arange(shape[axis]).reshape([-1 if a == axis else 1 for a in range(len(shape))])
    return np.broadcast_to(idx, shape)


# ------------------------------------------------------------------------------ error bounds


@settings(max_examples=30, deadline=None)
@given(
    bits=st.integers(1, 8),
    shape=st.lists(st.integers(1, 7), min_size=1, max_size=3).map(tuple),
    axis=st.one_of(st.none(), st.integers(0, 2)),
    dead_zone=st.floats(0, 3),
    signed=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_dead_zone_error_bound(bits, shape, axis, dead_zone, signed, seed):
    if axis is not None and axis >= len(shape):
        axis = None
    rng = np.random.default_rng(seed)
    cal = rng.normal(size=(5, *shape)).astype(np.float32) * 2
    if not signed:
        cal = np.maximum(cal, 0)
    codec = splitans.Codec.fit(cal, bits=bits, axis=axis, clip=splitans.Percentile(0, 100), dead_zone=dead_zone)
    d = codec.describe()
    assert d["quantizer"] == "dead-zone" and d["version"] == _version_2_or_3(d)
    x = (rng.normal(size=(3, *shape)) * 2.5).astype(np.float32)
    y = codec.round_trip(x)
    for xi, yi in zip(x, y):
        assert np.array_equal(codec.decompress(codec.compress(xi)), yi)
    s = np.asarray(d["scale"], np.float64)[channel_of(shape, axis)]
    z = np.asarray(d["zero_point"], np.float64)[channel_of(shape, axis)]
    t = np.asarray(d["dead_zone"], np.float64)[channel_of(shape, axis)]
    assert np.allclose(t, np.float32(dead_zone) * s, rtol=1e-6)
    inside = np.clip(x, -z * s, ((1 << bits) - 1 - z) * s)
    bound = np.maximum(s / 2, t) * (1 + 1e-5) + np.abs(inside) * 2e-7 + 1e-12
    assert (np.abs(y - inside) <= bound).all()
    # Everything in the dead zone is an exact zero.
    assert (y[np.abs(x) <= t] == 0).all()


@st.composite
def codebooks(draw, bits):
    k = draw(st.integers(1, 1 << bits))
    raw = np.sort(np.unique(np.asarray(draw(st.lists(st.floats(-50, 50, width=32), min_size=k, max_size=k)), np.float32)))
    if raw.size == 0:
        raw = np.zeros(1, np.float32)
    fracs = np.asarray(draw(st.lists(st.floats(0, 1), min_size=raw.size - 1, max_size=raw.size - 1)), np.float64)
    th = np.clip((raw[:-1] + fracs * (raw[1:].astype(np.float64) - raw[:-1])).astype(np.float32), raw[:-1], raw[1:])
    return raw.tolist(), th.tolist()


@settings(max_examples=40, deadline=None)
@given(data=st.data(), bits=st.integers(1, 4), channels=st.integers(1, 4), n=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_levels_codes_error_bound_and_serialization(data, bits, channels, n, seed):
    books = [data.draw(codebooks(bits)) for _ in range(data.draw(st.integers(1, channels)))]
    index = [data.draw(st.integers(0, len(books) - 1)) for _ in range(channels)]
    axis = 0 if channels > 1 or data.draw(st.booleans()) else None
    if axis is None:
        index = index[:1]
        channels = 1
    rng = np.random.default_rng(seed)
    cal = (rng.normal(size=(4, channels, n)) * 20).astype(np.float32)
    codec = Codec._from_spec(list(cal), "float32", bits, axis,
                             dict(kind="levels", codebooks=books, codebook_index=index))
    # The serialization round trip keeps the bytes, the id and every decoded value.
    again = splitans.Codec.from_bytes(codec.to_bytes())
    assert again.id == codec.id and again.to_bytes() == codec.to_bytes() and again.describe()["version"] == _version_2_or_3(codec.describe())
    x = (rng.normal(size=(channels, n)) * 30).astype(np.float32)
    x[0, 0] = 0.0
    blob = codec.compress(x)
    y = again.decompress(blob)
    assert np.array_equal(y, codec.round_trip(x[None])[0])
    d = codec.describe()
    for c in range(channels):
        lv, th = (np.asarray(a, np.float32) for a in books[index[c]])
        q = np.searchsorted(th, x[c], side="right")  # the documented rule
        assert np.array_equal(y[c], lv[q])
        inside = np.clip(x[c], lv[0], lv[-1])
        assert (np.abs(y[c] - inside) <= d["codebooks"][index[c]]["max_error"] * (1 + 1e-6)).all()
        assert d["zero_point"][c] == int(np.searchsorted(th, 0.0, side="right"))


@settings(max_examples=20, deadline=None)
@given(
    bits=st.integers(1, 6),
    method=st.sampled_from(["lloyd", "ecsq"]),
    axis=st.sampled_from([None, 0]),
    signed=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_trained_levels_keep_zero_exact_and_beat_the_grid(bits, method, axis, signed, seed):
    rng = np.random.default_rng(seed)
    cal = rng.laplace(size=(8, 3, 40)).astype(np.float32)
    if not signed:
        cal = np.maximum(cal, 0)
    codec = splitans.Codec.fit(cal, bits=bits, axis=axis, clip="mse", levels=method)
    d = codec.describe()
    assert d["quantizer"] == "levels" and d["version"] == _version_2_or_3(d)
    for b in d["codebooks"]:
        lv = np.asarray(b["levels"])
        assert len(lv) <= 1 << bits and (np.diff(lv) > 0).all()
        if lv[0] <= 0 <= lv[-1]:
            assert 0.0 in lv  # the cell of zero decodes to exactly zero
    y = codec.round_trip(cal)
    assert (y[cal == 0] == 0).all()
    if method == "lloyd" and bits >= 2:
        grid = splitans.Codec.fit(cal, bits=bits, axis=axis, clip="mse")
        assert np.mean((codec.round_trip(cal) - cal) ** 2) <= np.mean((grid.round_trip(cal) - cal) ** 2) * 1.05


def test_channel_bits_and_searched_clips():
    cal = relu_maps(16, (6, 8, 8), seed=3)
    bits = [0, 1, 2, 3, 4, 4]
    codec = splitans.Codec.fit(cal, bits=4, axis=0, clip="mse", channel_bits=bits)
    d = codec.describe()
    assert d["quantizer"] == "fixed" and d["version"] == 1
    y = codec.round_trip(cal)
    assert not y[:, 0].any()  # 0 bits: the channel is sent as zeros
    for c, b in enumerate(bits[1:], 1):
        assert len(np.unique(y[:, c])) <= 1 << 4  # within the codec's alphabet
    # ... while the grid of channel c spans its range with 2^b - 1 steps.
    lo, hi = _quantizers.mse_range(cal[:, 3], 3, signed=False)
    assert d["scale"][3] == pytest.approx(_quantizers.affine(lo, hi, 3)[0])
    for clip in ("mse", "aciq"):
        c = splitans.Codec.fit(cal, bits=3, clip=clip)
        lo, hi = (_quantizers.mse_range if clip == "mse" else _quantizers.aciq_range)(cal, 3)
        assert lo == 0 and 0 < hi < cal.max()
        assert c.describe()["scale"][0] == pytest.approx(_quantizers.affine(lo, hi, 3)[0])
    with pytest.raises(ValueError, match="channel_bits"):
        splitans.Codec.fit(cal, bits=2, axis=0, channel_bits=[3] * 6)
    # One bit width per channel: a list one short or one long is refused, not padded or cut.
    for n in (5, 7):
        with pytest.raises(ValueError, match="channel_bits must hold 6 integers"):
            splitans.Codec.fit(cal, bits=2, axis=0, channel_bits=[1] * n)
    with pytest.raises(ValueError, match="channel axis"):
        splitans.Codec.fit(cal, bits=2, channel_bits=[1])
    with pytest.raises(ValueError, match="dead zone"):
        splitans.Codec.fit(cal, bits=2, dead_zone=1.0, levels="lloyd")
    with pytest.raises(ValueError, match="levels"):
        splitans.Codec.fit(cal, bits=2, levels="kmeans")
    with pytest.raises(ValueError, match="fixed parameters"):
        splitans.Codec.fit(cal, bits=2, clip=None, dead_zone=1.0)


def test_mse_range_and_allocation_rules():
    rng = np.random.default_rng(0)
    v = rng.laplace(size=200_000).astype(np.float32)
    lo, hi = _quantizers.mse_range(v, 2)
    # Laplace(1) at 2 bits: the MSE-optimal symmetric clip is near 2.8 (ACIQ's table).
    assert -4 < lo < -1.5 and 1.5 < hi < 4
    a_lo, a_hi = _quantizers.aciq_range(v, 2)
    assert a_hi == pytest.approx(2.83 * np.mean(np.abs(v - np.median(v))) + np.median(v), rel=1e-3)
    # Never negative (a ReLU's output): clipped at the top only, at ACIQ's multiple of the mean
    # of the positive values (the scale of the exponential tail).
    r = np.maximum(v, 0)
    for bits in (2, 4):
        lo, hi = _quantizers.aciq_range(r, bits)
        assert lo == 0.0 and hi == pytest.approx(_quantizers.ACIQ_LAPLACE[bits] * r[r > 0].mean(), rel=1e-5)
        assert hi < r.max()
    # Nothing finite to fit: the empty range, not an error.
    for fn in (_quantizers.aciq_range, _quantizers.mse_range):
        for empty in (np.array([], np.float32), np.array([np.nan, np.inf], np.float32)):
            assert fn(empty, 4) == (0.0, 0.0)
    b = _quantizers.allocate_bits([1, 4, 16, 64, 0], 3, max_bits=8)
    assert b[4] == 0 and list(b[:4]) == sorted(b[:4]) and b[3] - b[0] == 3
    assert abs(b.mean() - 3) <= 0.6


def test_allocation_keeps_the_rule_s_rounding_when_its_mean_is_close_enough():
    """Per-channel bits: the rule b_c = mean + log2(w_c / geometric mean) / 2, rounded and
    clipped, is shifted only when its mean misses the asked one by half a bit per channel or
    more; within that, the rule's own rounding comes back (4 channels at 3.1 bits: 3, 3, 3, 3,
    not a fourth bit somewhere for a mean of 3.25)."""
    assert list(_quantizers.allocate_bits([40, 30, 50, 24], 3.1, max_bits=8)) == [3, 3, 3, 3]
    rng = np.random.default_rng(11)
    checked = 0
    for _ in range(300):
        c = int(rng.integers(2, 9))
        w = rng.integers(1, 65, c).astype(np.float64)
        mean = float(rng.choice([0.75, 1.25, 2.2, 2.7, 3.1]))
        lw = 0.5 * np.log2(w)
        rule = np.clip(np.rint(mean + lw - lw.mean()), 0, 8)
        if abs(rule.mean() - mean) < 0.5 / c - 1e-9:
            checked += 1
            assert list(_quantizers.allocate_bits(w, mean, max_bits=8)) == list(rule), (w, mean)
    assert checked > 100


def test_per_token_parameters_along_a_variable_axis():
    rng = np.random.default_rng(5)
    sentences = [(rng.normal(size=(n, 16)) * rng.uniform(0.1, 5, (n, 1))).astype(np.float32) for n in (4, 9, 7, 12)]
    codec = splitans.Codec.fit(sentences, bits=4, axis=0, clip=None)
    d = codec.describe()
    assert codec.shape == (None, 16) and d["quantizer"] == "per-sample" and d["axis"] == 0 and d["version"] == _version_2_or_3(d)
    for s in sentences + [rng.normal(size=(3, 16)).astype(np.float32)]:
        blob = codec.compress(s)
        info = codec.inspect(blob)
        assert len(info["scale"]) == s.shape[0]  # one scale per token
        y = codec.decompress(blob)
        assert (np.abs(y - s) <= np.asarray(info["scale"])[:, None] / 2 * (1 + 1e-5) + 1e-6).all()
    assert splitans.Codec.from_bytes(codec.to_bytes()).id == codec.id


def test_default_codecs_keep_version_1():
    cal = relu_maps(6, (3, 5, 5))
    for kw in (dict(), dict(axis=0), dict(clip=None), dict(clip=splitans.Percentile(0, 99))):
        assert splitans.Codec.fit(cal, bits=3, **kw).to_bytes()[4] == 1


# ----------------------------------------------------------------- serialization and damage


def _crc_fix(b: bytearray) -> bytes:
    b[8:12] = zlib.crc32(bytes(b[:8] + b[12:])).to_bytes(4, "little")
    return bytes(b)


def test_damaged_level_codecs_and_codes_past_the_last_level():
    cal = relu_maps(6, (2, 5, 5), seed=2)
    codec = splitans.Codec.fit(cal, bits=2, axis=0, levels="lloyd", clip="mse")
    data = codec.to_bytes()
    for k in range(len(data)):
        with pytest.raises(CorruptDataError):
            splitans.Codec.from_bytes(data[:k])
    rng = np.random.default_rng(1)
    for pos in rng.choice(len(data), size=min(len(data), 150), replace=False):
        b = bytearray(data)
        b[pos] ^= 1 << int(rng.integers(8))
        with pytest.raises(CorruptDataError):
            splitans.Codec.from_bytes(bytes(b))
    # A kind-3 quantizer labelled version 1 is refused, with the checksum made right.
    b = bytearray(data)
    b[4] = 1
    with pytest.raises(CorruptDataError, match="version-1"):
        splitans.Codec.from_bytes(_crc_fix(b))
    # Decreasing levels, or a threshold outside its levels, are refused (checksum made right).
    books = [([0.0, 1.0, 2.0], [0.5, 1.5])]
    good = Codec._from_spec([np.ones(4, np.float32)], "float32", 2, None,
                            dict(kind="levels", codebooks=books, codebook_index=[0])).to_bytes()
    at = good.index(np.float32(1.0).tobytes())
    for value in (3.0, -1.0):
        b = bytearray(good)
        b[at : at + 4] = np.float32(value).tobytes()
        with pytest.raises(CorruptDataError, match="codebook"):
            splitans.Codec.from_bytes(_crc_fix(b))
    # A raw blob whose code 3 is past a three-level codebook: Corrupt, not a wrong value.
    codec = splitans.Codec.from_bytes(good)
    blob = bytearray(codec.compress(np.array([0, 1, 2, 2], np.float32)))
    assert blob[0] == 0xE1
    blob[7] = 0b11_10_01_00 | 0  # codes 0 1 2 3
    ident = bytes.fromhex(codec.id)
    blob[3:7] = zlib.crc32(ident + bytes(blob[:3]) + bytes(blob[7:])).to_bytes(4, "little")
    with pytest.raises(CorruptDataError, match="last level"):
        codec.decompress(bytes(blob))


# ------------------------------------------------------- FORMAT.md 9.2 test vectors, independently


def _quantizer_from_format(b):
    """The sample shape and quantizer of a codec serialization, read by FORMAT.md 9.2 alone."""
    assert b[:4] == b"SPNC" and b[4] == 2
    bits, ndim = b[17], b[18]
    pos = 19
    shape = []
    for _ in range(ndim):
        d, pos = varint(b, pos)
        shape.append(d - 1)
    kind, axis = b[pos], b[pos + 1]
    pos += 2
    f32 = lambda p: float(np.frombuffer(b[p : p + 4], "<f4")[0])
    q = dict(kind=kind, axis=None if axis == 255 else axis, bits=bits)
    if kind == 2:
        p, pos = varint(b, pos)
        q["params"] = []
        for _ in range(p):
            s = f32(pos)
            z, pos = varint(b, pos + 4)
            q["params"].append((s, z, f32(pos)))
            pos += 4
    elif kind == 3:
        t, pos = varint(b, pos)
        q["books"] = []
        for _ in range(t):
            k, pos = varint(b, pos)
            lv = [f32(pos + 4 * i) for i in range(k)]
            th = [f32(pos + 4 * (k + i)) for i in range(k - 1)]
            pos += 4 * (2 * k - 1)
            q["books"].append((lv, th))
        p, pos = varint(b, pos)
        q["index"] = []
        for _ in range(p):
            i, pos = varint(b, pos)
            q["index"].append(i)
    return shape, q


def _reference_quantize(x, shape, q):
    """Codes and decoded values of a sample by 9.2's rules."""
    x = np.asarray(x, np.float32).reshape(shape)
    ch = channel_of(shape, q["axis"])
    codes = np.zeros(shape, np.int64)
    out = np.zeros(shape, np.float32)
    for i in np.ndindex(*shape):
        c, v = ch[i], x[i]
        if q["kind"] == 3:
            lv, th = q["books"][q["index"][c]]
            code = sum(1 for t in th if np.float32(t) <= v)
            codes[i], out[i] = code, lv[code]
        else:
            s, z, t = q["params"][c]
            levels = (1 << q["bits"]) - 1
            t_ = np.float32(v) / np.float32(s)
            code = int(np.clip(np.round(t_) + z, 0, levels))  # numpy rounds half to even
            if abs(v) <= t:
                code = z
            codes[i], out[i] = code, np.float32(code - z) * np.float32(s)
    return codes, out


def _vectors():
    text = (ROOT / "docs" / "FORMAT.md").read_text()
    sec = text[text.index("### 9.2 Codec serialization") : text.index("### 9.3 Context model")]
    blocks = [bytes.fromhex(m.replace("\n", " ")) for m in re.findall(r"```text\n([0-9a-f \n]+)```", sec)]
    blobs = [bytes.fromhex(m) for m in re.findall(r"blob is 9\s+bytes, `([0-9a-f ]+)`", sec.replace("\n", " "))]
    levels_codec, dz_head, dz_model = blocks
    return [(levels_codec, blobs[0], [0.1, -0.3, 0.75, 1.5, -2, 0.25, 0, 3]),
            (dz_head + dz_model, blobs[1], [[0.3, 0.4, 1, 1.6], [0.2, 0.3, 0.5, 0]])]


@pytest.mark.parametrize("which", [0, 1])
def test_format_quantizer_vectors(which):
    codec_bytes, blob, sample = _vectors()[which]
    codec = splitans.Codec.from_bytes(codec_bytes)
    assert codec.describe()["version"] == 2 and len(codec_bytes) == (115, 221)[which]
    assert codec.id.startswith(("23f2b6c1", "27a65986")[which])
    x = np.asarray(sample, np.float32)
    assert codec.compress(x) == blob
    shape, q = _quantizer_from_format(codec_bytes)
    codes, ref = _reference_quantize(x, shape, q)
    lib_codes, _ = codec._c.decode_codes(blob, 1 << 30)
    assert np.array_equal(lib_codes, codes.reshape(-1))
    assert np.array_equal(codec.decompress(blob), ref)
    # The raw body: the codes, two bits each from the low bits up.
    packed = np.packbits(((codes.reshape(-1)[:, None] >> np.arange(2)) & 1).reshape(-1).astype(np.uint8), bitorder="little")
    assert blob[7:] == packed.tobytes() and blob[0] == 0xE1


def test_the_gpu_path_refuses_quantizers_it_does_not_code():
    # Kinds 2 and 3 are coded on the CPU only: the device path must say so before it touches
    # a device (ops=None is never reached), and never code them as a min/max grid.
    from splitans.gpu import pctx

    rng = np.random.default_rng(0)
    x = np.maximum(rng.normal(size=(40, 4, 5, 5)), 0).astype(np.float32)
    for kw, name in ((dict(dead_zone=0.3, clip=(0.0, 2.0)), "dead-zone"), (dict(levels="lloyd"), "levels")):
        codec = splitans.Codec.fit(x, bits=3, **kw)
        blob = codec.compress(x[0])
        with pytest.raises(NotImplementedError, match=f"this codec's is '{name}'"):
            pctx.compress(None, codec, x[0])
        with pytest.raises(NotImplementedError, match=f"this codec's is '{name}'"):
            pctx.decompress(None, codec, blob)
    assert pctx._core_of(splitans.Codec.fit(x, bits=3)) is not None
