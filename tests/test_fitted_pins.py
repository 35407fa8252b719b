"""Fitted codecs pinned (issue 27): the model that fitting chooses and the bytes it writes, on
every predictor and layout path of the context coder (raster and channels-last, with and without
the median predictor), for every quantizer kind; forged constant blobs whose code is out of
range; float16/bfloat16 saturation at both ends of the range; codec equality; and per-channel
ranges along axes other than 0.

The inputs are built with integer arithmetic and single IEEE float32 operations (splitmix64, as
tests/golden/cases.py does), so the pins hold on every numpy version and architecture. A pin
changes only with the fitted-codec format or the fit's choices: a decoder of the old bytes would
misread the new ones, so such a change is a format change (docs/FORMAT.md 9)."""

import hashlib
import math
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import splitans
from splitans import CorruptDataError

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))
from cases import raw  # noqa: E402 - the golden record's integer-exact generator


def uniform(seed, shape):
    """float32 in [0, 1) with 24 random bits: exact."""
    return ((raw(seed, math.prod(shape)) >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-24)).reshape(shape)


def smooth(seed, shape):
    """C x H x W ramps, steeper in later channels, plus a little noise: the median predictor wins."""
    c, h, w = shape
    ramp = (np.arange(h, dtype=np.float32)[:, None] + np.arange(w, dtype=np.float32)[None, :]) / np.float32(h + w)
    return ramp[None] * np.arange(1, c + 1, dtype=np.float32)[:, None, None] + uniform(seed, shape) * np.float32(0.05)


def sparse(seed, shape):
    """Mostly zeros, the rest uniform: neighbours' codes, not a prediction, are the context."""
    return np.where(uniform(seed, shape) < np.float32(0.8), np.float32(0), uniform(seed + 1000, shape))


def channel_rates(seed, shape):
    """H x W x C binary maps whose density grows with the channel (channels last)."""
    h, w, c = shape
    rate = np.arange(c, dtype=np.float32) / np.float32(c)
    return (uniform(seed, shape) < rate).astype(np.float32)


def walk(seed, n):
    """A random walk of integer steps in -8..7, scaled: exact (integer cumulative sum)."""
    steps = (raw(seed, n) >> np.uint64(60)).astype(np.int64) - 8
    return (np.cumsum(steps) * 0.125).astype(np.float32)


def batch(fn, seeds, *args):
    return np.stack([fn(s, *args) for s in seeds])


def sha(b):
    return hashlib.sha256(bytes(b)).hexdigest()


# name -> (calibration samples, a held-out sample, fit kwargs, (predictor, axis_x, axis_y))
def _cases():
    hwc = lambda s, shape: np.moveaxis(smooth(s, shape), 0, -1)  # noqa: E731
    return {
        "raster_med": (batch(smooth, range(6), (8, 24, 24)), smooth(50, (8, 24, 24)), {}, ("med", 2, 1)),
        "chw_sparse": (batch(sparse, range(6), (8, 24, 24)), sparse(51, (8, 24, 24)), {}, ("none", 1, 0)),
        "channels_last_med": (batch(hwc, range(6), (16, 20, 20)), hwc(52, (16, 20, 20)), {}, ("med", 1, 0)),
        "hwc_binary": (batch(channel_rates, range(6), (20, 20, 16)), channel_rates(53, (20, 20, 16)), {},
                       ("none", 2, 1)),
        "channels_last_per_channel": (batch(hwc, range(6), (16, 20, 20)), hwc(54, (16, 20, 20)), {"axis": -1},
                                      ("med", 1, 0)),
        "per_channel_axis0": (batch(smooth, range(6), (8, 24, 24)), smooth(55, (8, 24, 24)), {"axis": 0},
                              ("med", 2, 1)),
        "per_sample_params": (batch(smooth, range(6), (8, 24, 24)), smooth(56, (8, 24, 24)) * np.float32(3),
                              {"clip": None, "axis": 0}, ("med", 2, 1)),
    "dead_zone": (batch(sparse, range(6), (8, 24, 24)), sparse(57, (8, 24, 24)),
                      {"clip": (0.0, 1.0), "dead_zone": 0.8}, ("none", 1, 0)),
        "lloyd_levels": (batch(sparse, range(6), (8, 24, 24)), sparse(58, (8, 24, 24)), {"levels": "lloyd"},
                         ("none", 1, 0)),
        "ecsq_levels": (batch(sparse, range(6), (8, 24, 24)), sparse(63, (8, 24, 24)),
                        {"levels": "ecsq", "rate_weight": 0.5}, ("none", 1, 0)),
        "channel_bits": (batch(smooth, range(6), (8, 24, 24)), smooth(59, (8, 24, 24)),
                         {"axis": 0, "channel_bits": [0, 1, 2, 3, 4, 4, 3, 2]}, ("med", 2, 1)),
        "tokens": (batch(sparse, range(6), (40, 64)), sparse(60, (40, 64)), {"axis": 1}, ("none", 1, 0)),
        "vector": (batch(walk, range(6), 3000), walk(61, 3000), {}, ("med", 0, None)),
        "two_chunks": (batch(smooth, range(3), (4, 160, 160)), smooth(62, (4, 160, 160)), {}, ("med", 2, 1)),
    }


CASES = _cases()

# (codec id, blob SHA-256, blob bytes), recorded from this build; the comment says the path.
PINS = {
    "ecsq_levels": ("47b4e5840dc7e5f31534a9c4bab9d552cd43fe3cc7e4740e58e12634d841ff3b", "74dbba0522671107ea8d503cea74d270edce1f84d6baa57b6dad3df2e2503b46", 765),  # none 1 0 coded
    "channel_bits": ("4e755dd07dcbb4f5908ef733b51e64b922bea477ecd3462cff9e7c4fb33b8702", "40717308bda003a1b561a19a3c029c08c87d745844bdc96fcd3eaa46f2f6a553", 147),  # med 2 1 coded
    "channels_last_med": ("53bb21b610cc6848f49616f88bb74be2aa9176b43917368d3ee6a1d05baa3ace", "14f728dab7599113ccb77f4cca488d43b21ec81c4eee6d6968419565ea01b96c", 173),  # med 1 0 coded
    "channels_last_per_channel": ("f664c738479666daaca4fce351e9bad09f8997fa3c1efaf1dc9efd223cb5b51c", "678dba1f96da270e6375da55bcc766a2ff248b4d6dd869f10ea812940780d632", 229),  # med 1 0 coded
    "chw_sparse": ("8e14bc4f93381d0c0903842445b9d7f97d1c036c60b21f9054c086b059ff1dd0", "ec8b3b8239581c255bb6ba9672f79440d48165d37d69593736cb2598648a9e71", 873),  # none 1 0 coded
    "dead_zone": ("11d7e575a4f4a919b1dc5b30884d66bb97a76b136c20fceb07597563d90a42d4", "a6d318dd1221bcf66bb96c66f452ea4fb40cf2d5cf597f7869bde7bb99b7a812", 861),  # none 1 0 coded
    "hwc_binary": ("6eb95aaf7cc5db9d87cfb67d250536e58a09a959654b60e0a47fc8013b80c881", "c1296dc170e1c003b1ea32274bd76b1f55ff063fce1eaad7161dced8facca6d1", 583),  # none 2 1 coded
    "lloyd_levels": ("9a6c3dc929a2092589f2ff9211280e393a8fb0ed6a4953bd56cd01fe9a7683eb", "cb7859617652164c78a3734e249c07f79095e13cfa4618a057fc2abc8011a692", 843),  # none 1 0 coded
    "per_channel_axis0": ("952640a4de96ce475e36aa15c3df74cdb7e9211d64567e3377a35d9830c15247", "2dc2ebc5057b3cb63bffadca45cca587189a5528ee2c4d43ff19ec634301a6ec", 307),  # med 2 1 coded
    "per_sample_params": ("55d047005b41963aa257c126e2e1bde5d426e0df03ac9690b51d29d206ba1835", "bd690894b05002367ab4c70d9dd1fcfe4e5840fbb008e824f7f5b913426aae50", 353),  # med 2 1 coded
    "raster_med": ("b18cc29a5f4caad5a43d0e359b42b7d3a1e0d95f073983164d3de8f4f6331f41", "3655c2c1ebc41d96e49e0b10cf8920e52cfebafb1b23e9fe3b9e39f89d54d5bc", 199),  # med 2 1 coded
    "tokens": ("ea20c87cd42878a83385098b86275b9f5d49027b084b23a9088dff8a9827261b", "567dc800c907cd2e0a2cf66de2428629493c0f690f7a63c1fc07c217648a9d29", 501),  # none 1 0 coded
    "two_chunks": ("95eea7c1556152d3450f7576a3015ee2ec9646884ff444472db9f1bf261f5869", "88b1a2e3479275c4335e14f3a4cc019772c38d864e8920cf0e9d578b7f2a84d7", 4099),  # med 2 1 coded
    "vector": ("e92f5d02fa7c91c3fdbbafd501811b6ad2b312c18e1fa333dbee83f5673596dd", "97b74668eb70659e39e3419b6f172a73bece0c452bab6c626933a7b712ca62fa", 95),  # med 0 None coded
}


def test_the_cases_cover_every_predictor_and_layout_path():
    """The raster path (left = the last axis, up = the one before) and the strided one (e.g.
    channels last: left and up are the two axes before the last), each with and without the
    median predictor."""
    paths = set()
    for cal, _, _, (predictor, ax, ay) in CASES.values():
        d = cal.ndim - 1
        paths.add((predictor, ax == d - 1 and (ay == d - 2 if d >= 2 else ay is None)))
    assert paths == {("med", True), ("med", False), ("none", True), ("none", False)}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fitted_model_and_bytes_are_pinned(name):
    cal, x, kw, (predictor, ax, ay) = CASES[name]
    bits = 4
    codec = splitans.Codec.fit(cal, bits=bits, **kw)
    model = codec.describe()["model"]
    assert (model["predictor"], model["axis_x"], model["axis_y"]) == (predictor, ax, ay), model
    blob = codec.compress(x)
    # The blob decodes to what quantization alone gives (the coder is lossless on the codes).
    assert np.array_equal(codec.decompress(blob), codec.round_trip(x[None])[0])
    assert codec.inspect(blob)["kind"] == "coded"
    got = (codec.id, sha(blob), len(blob))
    assert name in PINS, f"new case: pin {name!r}: {got}"
    assert got == PINS[name]


def test_codec_id_of_fixed_data_and_its_serialization():
    cal, _, _, _ = CASES["raster_med"]
    codec = splitans.Codec.fit(cal, bits=4)
    data = codec.to_bytes()
    assert codec.id == sha(data) == PINS["raster_med"][0]
    assert splitans.Codec.from_bytes(data).id == codec.id
    # Fitting is deterministic: the same data, the same codec, byte for byte.
    assert splitans.Codec.fit(cal.copy(), bits=4).to_bytes() == data


# ------------------------------------------------------------------------------ forged blobs


def _forge(codec, blob, body):
    """``blob`` with its body after the 7-byte header replaced, and a valid CRC (FORMAT.md 9.5)."""
    b = bytearray(blob[:7]) + bytearray(body)
    crc = zlib.crc32(bytes(b[7:]), zlib.crc32(bytes(b[:3]), zlib.crc32(bytes.fromhex(codec.id))))
    b[3:7] = crc.to_bytes(4, "little")
    return bytes(b)


@pytest.mark.parametrize("bits", [1, 2, 4, 7])
def test_forged_constant_blob_with_an_out_of_range_code_is_refused(bits):
    cal = np.stack([uniform(s, (4, 8, 8)) for s in range(4)])
    codec = splitans.Codec.fit(cal, bits=bits, clip=(0.0, 1.0))
    levels = (1 << bits) - 1
    zero = codec.compress(np.zeros((4, 8, 8), np.float32))
    assert codec.inspect(zero)["kind"] == "constant" and len(zero) == 8
    # The forgery is well formed: the top code is accepted and decodes to the range's top.
    top = _forge(codec, zero, [levels])
    y = codec.decompress(top)
    assert y.shape == (4, 8, 8) and np.all(y == y.flat[0]) and y.flat[0] == pytest.approx(1.0, abs=1e-6)
    for code in sorted({levels + 1, levels + 2, 200, 255}):
        bad = _forge(codec, zero, [code])
        with pytest.raises(CorruptDataError):
            codec.decompress(bad)
        with pytest.raises(CorruptDataError):
            codec.inspect(bad)
        with pytest.raises(CorruptDataError):
            codec._c.decode_codes(bad, 1 << 20)


def test_forged_constant_blob_of_a_per_sample_codec_is_refused():
    cal = np.stack([uniform(s, (4, 8, 8)) for s in range(4)])
    codec = splitans.Codec.fit(cal, bits=3, clip=None)
    zero = codec.compress(np.zeros((4, 8, 8), np.float32))
    assert codec.inspect(zero)["kind"] == "constant"
    params, code = zero[7:-1], zero[-1]
    ok = _forge(codec, zero, params + bytes([code]))
    assert np.array_equal(codec.decompress(ok), codec.decompress(zero))
    with pytest.raises(CorruptDataError):
        codec.decompress(_forge(codec, zero, params + bytes([8])))


# ------------------------------------------------------------------------------ half floats


def _end_codec(cal, edge, sign):
    """A 1-bit codec whose grid is {0, sign * edge}: its nonzero level is the range's end."""
    return splitans.Codec.fit(cal, bits=1, clip=(0.0, edge) if sign > 0 else (-edge, 0.0))


@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_float16_output_saturates_at_both_ends(dtype, sign):
    """A float16 codec whose range reaches past float16's finite range decodes that end to
    +-65504, never to infinity (float32 keeps the value)."""
    cal = np.stack([np.linspace(-1, 1, 64, dtype=np.float32).reshape(8, 8)] * 3).astype(dtype)
    codec = _end_codec(cal, np.float32(1e5), sign)
    assert codec.dtype == dtype
    x = np.zeros((8, 8), np.float32)
    x[0, 0] = sign * np.float32(1e30)
    y = codec.decompress(codec.compress(x))
    assert y.dtype == np.dtype(dtype) and np.isfinite(y).all() and y[0, 1] == 0
    assert y[0, 0] == (sign * np.float16(65504) if dtype == "float16" else sign * np.float32(1e5))


@pytest.mark.parametrize("sign", [1, -1])
def test_half_float_torch_output_saturates_at_both_ends(sign):
    torch = pytest.importorskip("torch")
    for dtype, edge in ((torch.float16, 1e5), (torch.bfloat16, 3.4e38)):
        top = float(torch.finfo(dtype).max)
        cal = torch.from_numpy(np.stack([np.linspace(-1, 1, 16, dtype=np.float32)] * 3)).to(dtype)
        codec = _end_codec(cal, np.float32(edge), sign)
        x = np.zeros(16, np.float32)
        x[0] = sign * np.inf
        y = codec.decompress(codec.compress(x, nonfinite="clamp"), output="torch")
        assert y.dtype == dtype and bool(torch.isfinite(y).all()) and float(y[1]) == 0
        assert float(y[0]) == sign * top
        # numpy output of a bfloat16 codec is float32: the value itself, no saturation needed.
        if dtype == torch.bfloat16:
            assert codec.decompress(codec.compress(x, nonfinite="clamp"))[0] == sign * np.float32(edge)


# ------------------------------------------------------------------------------ equality


def test_equality_follows_the_fitted_model_and_quantizer():
    cal = batch(smooth, range(6), (8, 24, 24))
    a = splitans.Codec.fit(cal, bits=4)
    assert a == splitans.Codec.from_bytes(a.to_bytes()) and hash(a) == hash(splitans.Codec.from_bytes(a.to_bytes()))
    others = [
        splitans.Codec.fit(cal * np.float32(2), bits=4),  # another range
        splitans.Codec.fit(cal[:3], bits=4),  # the same range, another model
        splitans.Codec.fit(cal, bits=4, axis=0),  # per channel
        splitans.Codec.fit(cal, bits=5),
    ]
    for b in others:
        assert a != b and not (a == b) and b != a
        assert (a.shape, a.dtype) == (b.shape, b.dtype)
    assert len({a, *others}) == 1 + len(others)
    assert a != a.to_bytes() and a != a.id and a is not None


# ------------------------------------------------------------------------------ per-channel ranges


@pytest.mark.parametrize("shape,axis", [((6, 5, 4), 1), ((6, 5, 4), 2), ((6, 5, 4), -1), ((12, 7), 1)])
@pytest.mark.parametrize("clip", ["calibration", "percentile", "mse", "aciq", "dead_zone", "lloyd"])
def test_per_channel_ranges_along_any_axis(shape, axis, clip):
    """Each channel of ``axis`` gets the range of its own values: channel k of the calibration
    samples holds values in [k, 2k + 1] (and a negative tail in odd channels), so a range taken
    along another axis, or over every channel, is far off."""
    n = 5
    ax = axis % len(shape)
    C = shape[ax]
    u = np.stack([uniform(s, shape) for s in range(n)])
    k = np.arange(C, dtype=np.float32).reshape([-1 if a == ax + 1 else 1 for a in range(len(shape) + 1)])
    cal = (k + u * (k + np.float32(1))).astype(np.float32)
    cal = np.where((k % 2 == 1) & (u < np.float32(0.3)), -cal, cal).astype(np.float32)
    kw = {"calibration": {}, "percentile": {"clip": splitans.Percentile(0, 100)}, "mse": {"clip": "mse"},
          "aciq": {"clip": "aciq"}, "dead_zone": {"dead_zone": 0.5}, "lloyd": {"levels": "lloyd"}}[clip]
    codec = splitans.Codec.fit(cal, bits=6, axis=axis, **kw)
    d = codec.describe()
    assert d["axis"] == ax
    values = np.moveaxis(cal, ax + 1, 0).reshape(C, -1)
    if clip == "lloyd":
        books = d["codebooks"]
        assert len(books) == C
        for c in range(C):
            lv = np.asarray(books[c]["levels"], np.float64)
            vlo, vhi = float(min(values[c].min(), 0)), float(max(values[c].max(), 0))
            assert lv.min() >= vlo - 1e-5 and lv.max() <= vhi + 1e-5
            assert lv.max() - lv.min() >= 0.5 * (vhi - vlo)
    else:
        s = np.asarray(d["scale"], np.float64)
        z = np.asarray(d["zero_point"], np.float64)
        assert s.shape == (C,)
        lo, hi = -z * s, (63 - z) * s
        for c in range(C):
            vlo, vhi = float(min(values[c].min(), 0)), float(max(values[c].max(), 0))
            # The grid spans at most the channel's own range, and (clipped searches aside) all of it.
            assert lo[c] >= vlo - s[c] and hi[c] <= vhi + s[c], (c, lo[c], hi[c], vlo, vhi)
            if clip in ("calibration", "percentile", "dead_zone"):
                assert lo[c] <= vlo + s[c] and hi[c] >= vhi - s[c]
            else:
                assert hi[c] >= 0.5 * vhi
    # Decoding stays within each channel's own grid.
    x = cal[0]
    y = codec.decompress(codec.compress(x))
    err = np.abs(np.moveaxis(y - x, ax, 0).reshape(C, -1)).max(1)
    spread = values.max(1) - np.minimum(values.min(1), 0)
    assert (err <= spread * 0.51 + 1e-6).all()
