"""Fitted codecs pinned (issue 27): the model that fitting chooses and the bytes it writes, on
every predictor and layout path of the context coder (raster and channels-last; none, med and
med-residual), for every quantizer kind; forged constant blobs whose code is out of
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


def plane(seed, shape):
    """C x H x W sums of a random walk along the rows and one down the columns: left + up -
    upper left predicts every element, so the residuals hold no context (med, not med-residual)."""
    c, h, w = shape
    return (walk(seed, c * w).reshape(c, 1, w) + walk(seed + 500, c * h).reshape(c, h, 1)).astype(np.float32)


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
        "raster_med": (batch(smooth, range(6), (8, 24, 24)), smooth(50, (8, 24, 24)), {}, ("med-residual", 2, 1)),
        "raster_plane": (batch(plane, range(6), (8, 24, 24)), plane(64, (8, 24, 24)), {}, ("med", 2, 1)),
        "chw_sparse": (batch(sparse, range(6), (8, 24, 24)), sparse(51, (8, 24, 24)), {}, ("none", 1, 0)),
        "channels_last_med": (batch(hwc, range(6), (16, 20, 20)), hwc(52, (16, 20, 20)), {}, ("med-residual", 1, 0)),
        "hwc_binary": (batch(channel_rates, range(6), (20, 20, 16)), channel_rates(53, (20, 20, 16)), {},
                       ("none", 2, 1)),
        "channels_last_per_channel": (batch(hwc, range(6), (16, 20, 20)), hwc(54, (16, 20, 20)), {"axis": -1},
                                      ("med", 1, 0)),
        "per_channel_axis0": (batch(smooth, range(6), (8, 24, 24)), smooth(55, (8, 24, 24)), {"axis": 0},
                              ("med-residual", 2, 1)),
        "per_sample_params": (batch(smooth, range(6), (8, 24, 24)), smooth(56, (8, 24, 24)) * np.float32(3),
                              {"clip": None, "axis": 0}, ("med-residual", 2, 1)),
    "dead_zone": (batch(sparse, range(6), (8, 24, 24)), sparse(57, (8, 24, 24)),
                      {"clip": (0.0, 1.0), "dead_zone": 0.8}, ("none", 1, 0)),
        "lloyd_levels": (batch(sparse, range(6), (8, 24, 24)), sparse(58, (8, 24, 24)), {"levels": "lloyd"},
                         ("none", 1, 0)),
        "ecsq_levels": (batch(sparse, range(6), (8, 24, 24)), sparse(63, (8, 24, 24)),
                        {"levels": "ecsq", "rate_weight": 0.5}, ("none", 1, 0)),
        "channel_bits": (batch(smooth, range(6), (8, 24, 24)), smooth(59, (8, 24, 24)),
                         {"axis": 0, "channel_bits": [0, 1, 2, 3, 4, 4, 3, 2]}, ("med-residual", 2, 1)),
        "tokens": (batch(sparse, range(6), (40, 64)), sparse(60, (40, 64)), {"axis": 1}, ("none", 1, 0)),
        "vector": (batch(walk, range(6), 3000), walk(61, 3000), {}, ("med", 0, None)),
        "two_chunks": (batch(smooth, range(3), (4, 160, 160)), smooth(62, (4, 160, 160)), {}, ("med-residual", 2, 1)),
        # Lanes of whole 60 x 50 planes (codec version 4): chunks of 32 and 8 lanes.
        "plane_lanes": (batch(smooth, range(3), (40, 60, 50)), smooth(65, (40, 60, 50)), {}, ("med-residual", 2, 1)),
    }


CASES = _cases()

# (codec id, blob SHA-256, blob bytes), recorded from this build; the comment says the path.
PINS = {
    "ecsq_levels": ("d345f2497bfb19c7883f8935c20583b614e94c2ba61c76ac2edbabacc53ee65d", "ff0f30e2c95dba20db2f97c5627bcadecb8d6db04d16a20f87b01c59adf3f57b", 765),  # none 1 0 coded
    "channel_bits": ("f562e31cd071512224bb153ff1700688258c16465b2007aa088d49601cf5cf65", "52ce6268f7cbf4358051c88773d3546e221dfd7719c3cc2ee0ff7093453fddb2", 119),  # med-residual 2 1 coded
    "channels_last_med": ("2ac7422ae935f8c0f39824c221c76b768bd7dc13dc787237c6e98d852944b32c", "f2271e81e5db5f6a482deb44fae343e7142646b45c200caf6bb5588be4fcb22d", 147),  # med-residual 1 0 coded
    "channels_last_per_channel": ("8ef469484365b8bc389c7a02e9403864a9380955e2fcb47fd25e72537e1f7327", "a5d0274002f83512109f30216d3a1b320a18a7122f802fa5fedcadc623ac8247", 227),  # med 1 0 coded
    "chw_sparse": ("906268dc71430e18c5ac2c1a872c1ab9d9a71e9e640a28b6bd4acb4d095640b7", "69d7662866127cc6a07ed76f6033d02e8d7738863d77a29c976cb1cb7e9ef25c", 873),  # none 1 0 coded
    "dead_zone": ("189137577d5e1527120b5f87201e7d95cb605c18acfe741d383c6321a2f12dad", "c395cbe7058e11432326ec3ae23611dbd0bdfa4761de2ef4455d89fae5ccae3a", 861),  # none 1 0 coded
    "hwc_binary": ("105a70c34cc10dcd03b7befb7de7592314248853fed377f6a62a1844fd3d0ee9", "f5dc3259736757df28d38e2b6265c6f29b9c9f9929a6b98a8fcd6bc1f2268666", 581),  # none 2 1 coded
    "lloyd_levels": ("d7fbf5d04106af3063f85e86552019d735ebf9bdf79724eacebf3255177bfd5c", "b842cce9e81c0306fae42e1bedd5a69022b04e0fea44db2b3ddbedfdc7545495", 843),  # none 1 0 coded
    "per_channel_axis0": ("3a7069ef3ba81627b98d0dcf115290536d33c699a6e098b1745f8ab460851d22", "b7739cafe08af5b03b1f65b4bf9c899c98cd8f6011fc1078e412c130c5167102", 227),  # med-residual 2 1 coded
    "per_sample_params": ("22d03a44934d78a537c1b37ece86344396a7bcc4c027d7c50d5b50cd6a32a2da", "3d160915a7f50af9a00e50c0bc35701d190b68cdb5e3a6f9bf6c02c0312b54d2", 277),  # med-residual 2 1 coded
    "plane_lanes": ("28f3dda1895e3b1f8aa269504e652cbddc4eca4ba64cafc587a2990bff65fee0", "73e1b738fa9afbe5ef2d3a6564fac28373affdbd12da482fe3620699689db2c9", 1465),  # med-residual 2 1 coded, version 4
    "raster_med": ("b95d59a7d5d2376fa85824ec95d7ce6562173ce9575465829d8ffb6b9ba401b2", "0c72720978fdbc800a459ba92f8bd31be81067781e36ace52a9e5529253863e2", 159),  # med-residual 2 1 coded
    "raster_plane": ("b7b480f5c2f64df803bb85f9b5ad8bc91f205cb9ad2a1ce9f44cdcedea02782a", "71a2ae650f4383a7331a85c16181df5bc1699c0d0d5486e35652fdf2d1b3952a", 435),  # med 2 1 coded
    "tokens": ("8c8a4732f79522ac25ba48bb17437d63ed32cad6c5b903f80959a59d316e2592", "3576200537e3c084fc0b67e59b02e93dae44e832ccb15a1cc40306571fcbe3d0", 499),  # none 1 0 coded
    "two_chunks": ("4ca3925e9f7deeb1b427baaca75b491d1280a3bb1ffbcf8f1952f71f1963c4c5", "0b414ffd1e06a188aeea58650445ac417028f2e0a4849f58acbbbef5eb29b43e", 3899),  # med-residual 2 1 coded
    "vector": ("1048bf43289771f0171fff94e33ded94dc88329cf4a3d85c886fdbca31feaab9", "a1c3b31db74706e2dc5b3d51cd73ed597f0b1bb943518aa00c175a1727ee059e", 93),  # med 0 None coded
}


def test_the_cases_cover_every_predictor_and_layout_path():
    """The raster path (left = the last axis, up = the one before) and the strided one (e.g.
    channels last: left and up are the two axes before the last), each with every predictor:
    none, med and med-residual."""
    paths = set()
    for cal, _, _, (predictor, ax, ay) in CASES.values():
        d = cal.ndim - 1
        paths.add((predictor, ax == d - 1 and (ay == d - 2 if d >= 2 else ay is None)))
    assert paths == {(p, raster) for p in ("none", "med", "med-residual") for raster in (True, False)}


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
    # Plane lanes (FORMAT.md 9.4) where they change the layout and keep the first chunk's lanes.
    assert model["plane_lanes"] == (name == "plane_lanes")
    assert (codec.describe()["version"] == 4) == (name == "plane_lanes")
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


# Codecs and blobs written before the fitted codec's precision rule (issue 24, benches/NOTES.md
# 30), every table at precision 12 as `precision_for(4)` gave: (codec id, SHA-256 of the decoded
# array's float32 bytes). The format did not change, so they decode as they did.
OLD_P12 = {
    "raster_med": ("b18cc29a5f4caad5a43d0e359b42b7d3a1e0d95f073983164d3de8f4f6331f41",
                   "f3d908e7417848f4"),
    "chw_sparse": ("8e14bc4f93381d0c0903842445b9d7f97d1c036c60b21f9054c086b059ff1dd0",
                   "bfaaa02f53022db1"),
    "channels_last_med": ("53bb21b610cc6848f49616f88bb74be2aa9176b43917368d3ee6a1d05baa3ace",
                          "3167c4bc33e7e99f"),
    "hwc_binary": ("6eb95aaf7cc5db9d87cfb67d250536e58a09a959654b60e0a47fc8013b80c881",
                   "59fdd17688ecb66f"),
}


@pytest.mark.parametrize("name", sorted(OLD_P12))
def test_codecs_and_blobs_of_the_old_precision_still_decode(name):
    here = Path(__file__).resolve().parent / "golden" / "fitted_p12"
    data, blob = (here / f"{name}.codec").read_bytes(), (here / f"{name}.blob").read_bytes()
    codec = splitans.Codec.from_bytes(data)
    assert codec.id == sha(data) == OLD_P12[name][0]
    assert codec.describe()["model"]["precision_bits"] == 12
    y = codec.decompress(blob)
    assert sha(y.tobytes()).startswith(OLD_P12[name][1])
    # ... which is the held-out sample quantized: what today's fit of the same data decodes too.
    _, x, kw, _ = CASES[name]
    assert np.array_equal(y, codec.round_trip(x[None])[0])
    new = splitans.Codec.fit(CASES[name][0], bits=4, **kw)
    assert new.describe()["model"]["precision_bits"] != 12
    assert np.array_equal(new.decompress(new.compress(x)), y)


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


# Codecs and blobs of the cases whose fit chose med before med-residual (codec version 3,
# benches/NOTES.md 41) existed, written by the build before it: (codec id, SHA-256 of the
# decoded array's float32 bytes). Their bytes are valid version-1 codecs and blobs and decode
# as they did; today's fit of the same data (med-residual, version 3) decodes the held-out
# sample to the same array.
OLD_MED = {
    "channel_bits": ("5e7a29fc49acbb3f1cd55f36b9e6ab990dab4d900f158a356782d7fac4e1cc02", "f7cd629fac6bdd98"),
    "channels_last_med": ("85faed191e910bb4dea3bbadfca76dfa938490fd1c2b258198f6271f85da17e8", "3167c4bc33e7e99f"),
    "per_channel_axis0": ("50cffe135899e4096460d214833ee2ee549d49660248936700cec20dfbb2d7d9", "a9860d5c8b43a8ca"),
    "per_sample_params": ("45804a97fa08c31626b1b305315cea0cc39053ce71622a1ddbc7a7452e4be90e", "cebf90bd71880cb0"),
    "raster_med": ("adc0a22cad68bc73e5c518354e4025ad1cbe97ea08e4264e2f97bfe23501deb9", "f3d908e7417848f4"),
    "two_chunks": ("c45f3e517ebde858a804ef62dece66f95f152eba1ac914e66107fb4b159f2128", "b7803f29de0fdd09"),
}


@pytest.mark.parametrize("name", sorted(OLD_MED))
def test_codecs_and_blobs_of_the_med_fits_still_decode(name):
    here = Path(__file__).resolve().parent / "golden" / "fitted_med"
    data, blob = (here / f"{name}.codec").read_bytes(), (here / f"{name}.blob").read_bytes()
    codec = splitans.Codec.from_bytes(data)
    assert codec.id == sha(data) == OLD_MED[name][0]
    assert codec.describe()["model"]["predictor"] == "med" and data[4] in (1, 2)
    assert codec.to_bytes() == data
    y = codec.decompress(blob)
    assert sha(y.tobytes()).startswith(OLD_MED[name][1])
    cal, x, kw, _ = CASES[name]
    assert np.array_equal(y, codec.round_trip(x[None])[0])
    new = splitans.Codec.fit(cal, bits=4, **kw)
    assert new.describe()["model"]["predictor"] == "med-residual" and new.to_bytes()[4] == 3
    smaller = new.compress(x)
    assert len(smaller) < len(blob) and np.array_equal(new.decompress(smaller), y)
