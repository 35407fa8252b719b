"""The numcodecs and zarr v3 codecs' contracts beyond the round trips of test_numcodecs.py
(issue 27): a config read back from JSON, every integer width and the axis range a zarr array
may declare, and a serializer that is a frozen value (equal by parameters, hashable)."""

import dataclasses
import json

import numpy as np
import pytest

import splitans

numcodecs = pytest.importorskip("numcodecs")
from splitans.numcodecs import Splitans  # noqa: E402

INTS = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64")


def test_a_config_read_from_json_finds_the_codec():
    for codec in (Splitans(), Splitans(bits=8, mode="csr", axis=1)):
        config = json.loads(json.dumps(codec.get_config()))  # as zarr v2 metadata stores it
        assert Splitans.from_config(config) == codec
        assert numcodecs.get_codec(json.loads(json.dumps(codec.get_config()))) == codec
    assert Splitans.from_config({"bits": 4}) == Splitans(bits=4)  # the id may be left out
    for other in ("zstd", "blosc", "splitans2", "Splitans"):  # after and before "splitans" in order
        with pytest.raises(ValueError, match="not a splitans codec config"):
            Splitans.from_config(json.loads(f'{{"id": "{other}", "level": 3}}'))


def test_numcodec_refuses_a_float_chunk_without_bits_and_other_kinds():
    with pytest.raises(ValueError, match="give bits"):
        Splitans().encode(np.zeros(8, np.float32))
    for bad in (np.zeros(8, bool), np.zeros(8, np.complex64)):
        with pytest.raises(TypeError):
            Splitans(bits=8).encode(bad)


@pytest.mark.parametrize("shape, axis", [((4, 5, 6), 0), ((4, 5, 6), -1), ((3, 4, 5, 6), 1), ((3, 4, 5, 6), -3)])
def test_a_fortran_ordered_chunk_keeps_its_channel_axis(shape, axis):
    """A Fortran-ordered chunk is stored as its C-ordered transpose, and the channel axis goes
    with it: each channel (channels of very different ranges) keeps its own grid, so every
    element is within half of its own channel's step."""
    rng = np.random.default_rng(1)
    c = shape[axis]
    scale = np.logspace(0, 3, c).reshape([c if i == axis % len(shape) else 1 for i in range(len(shape))])
    x = np.asfortranarray((rng.random(shape) * scale).astype(np.float32))
    assert x.flags.f_contiguous and not x.flags.c_contiguous
    back = Splitans(bits=8, axis=axis).decode(Splitans(bits=8, axis=axis).encode(x))
    assert back.shape == shape[::-1]
    err = np.abs(back.T - x)
    step = np.moveaxis(x, axis, 0).reshape(c, -1).max(1) / 255
    per_channel = np.moveaxis(err, axis, 0).reshape(c, -1).max(1)
    assert (per_channel <= step * (0.5 + 1e-3) + 1e-6).all(), (per_channel / step)


def test_decode_into_a_small_out_names_the_destination():
    blob = Splitans(bits=8).encode(np.ones((64, 64), np.float32))
    with pytest.raises(splitans.OutputTooLargeError, match="the chunk declares more than the 1024-byte destination holds"):
        Splitans(bits=8).decode(blob, out=np.empty(256, np.float32))


zarr = pytest.importorskip("zarr")
if zarr.__version__.startswith("2."):
    pytest.skip("zarr v3 serializers need zarr 3", allow_module_level=True)
from splitans.zarr3 import NAME  # noqa: E402
from splitans.zarr3 import Splitans as Serializer  # noqa: E402


@pytest.mark.parametrize("dtype", INTS)
def test_every_integer_width_is_stored_losslessly(dtype):
    info = np.iinfo(dtype)
    q = np.concatenate([np.array([info.min, info.max, 0], dtype), np.arange(-46, 47).astype(dtype)]).reshape(8, 12)
    z = zarr.create_array(store={}, shape=q.shape, chunks=(4, 12), dtype=dtype, serializer=Serializer(),
                          compressors=None)
    z[:] = q
    assert z[:].dtype == np.dtype(dtype) and np.array_equal(z[:], q)


@pytest.mark.parametrize("dtype", ["bool", "complex64", "uint8"])
def test_only_numbers_splitans_codes_are_accepted(dtype):
    make = lambda: zarr.create_array(store={}, shape=(4, 4), dtype=dtype, serializer=Serializer(bits=8),  # noqa: E731
                                     compressors=None)
    if dtype == "uint8":
        make()
    else:
        with pytest.raises(ValueError, match="integer and float"):
            make()


@pytest.mark.parametrize("axis", [-2, -1, 0, 1])
def test_every_axis_of_the_array_is_accepted(axis):
    x = np.linspace(-1, 1, 64, dtype=np.float32).reshape(8, 8) * np.arange(1, 9, dtype=np.float32)
    z = zarr.create_array(store={}, shape=x.shape, chunks=(4, 8), dtype="float32",
                          serializer=Serializer(bits=8, axis=axis), compressors=None)
    z[:] = x
    assert np.abs(z[:] - x).max() <= 16 / 255 / 2 + 1e-5


@pytest.mark.parametrize("axis", [-3, 2])
def test_an_axis_beyond_the_array_is_refused(axis):
    with pytest.raises(ValueError, match="out of range"):
        zarr.create_array(store={}, shape=(8, 8), dtype="float32", serializer=Serializer(bits=8, axis=axis),
                          compressors=None)


def test_serializer_is_a_frozen_value():
    a, b = Serializer(bits=8, axis=1), Serializer(bits=8, axis=1)
    assert a == b and hash(a) == hash(b) and a != Serializer(bits=6, axis=1) and a != Serializer(bits=8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.bits = 4
    assert dataclasses.replace(a, bits=4) == Serializer(bits=4, axis=1)
    d = a.to_dict()
    assert d == {"name": NAME, "configuration": {"bits": 8, "mode": "auto", "axis": 1}}
    assert Serializer.from_dict(json.loads(json.dumps(d))) == a
    with pytest.raises(ValueError, match="expected a codec named"):
        Serializer.from_dict({"name": "zstd", "configuration": {}})
