"""splitans as a numcodecs codec and as a zarr codec: chunked arrays written and read back through
zarr v2-style numcodecs compressors and through zarr v3 serializers, and found again by a new
process through the entry points alone."""

import doctest
import importlib.metadata
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import splitans

numcodecs = pytest.importorskip("numcodecs")
from splitans.numcodecs import Splitans  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
FLOATS = ("float16", "float32", "float64")
INTS = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64")


def features(shape=(6, 8, 10, 12), dtype="float32", seed=0):
    return np.maximum(np.random.default_rng(seed).normal(size=shape), 0).astype(dtype)


def installed() -> bool:
    """Whether splitans is installed (pip install), so that its entry points exist."""
    try:
        importlib.metadata.distribution("splitans")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def fresh_process(code: str, cwd) -> str:
    """Run ``code`` in a new interpreter that has not imported splitans: whatever it finds, it
    finds through the entry points."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_config_round_trips_through_the_registry():
    codec = Splitans(bits=6, mode="csr", axis=1)
    config = codec.get_config()
    assert config == {"id": "splitans", "bits": 6, "mode": "csr", "axis": 1}
    assert Splitans.from_config(dict(config)) == codec
    assert numcodecs.get_codec(dict(config)) == codec
    assert Splitans().get_config() == {"id": "splitans", "bits": None, "mode": "auto", "axis": None}
    for bad in (dict(bits=0), dict(bits=17), dict(bits=4.0), dict(mode="zstd"), dict(axis="1")):
        with pytest.raises(ValueError):
            Splitans(**bad)


@pytest.mark.parametrize("dtype", FLOATS)
def test_floats_are_quantized_only_when_bits_are_given(dtype):
    x = features(dtype=dtype)
    with pytest.raises(ValueError, match="give bits"):
        Splitans().encode(x)
    for codec in (Splitans(bits=8), Splitans(bits=5, axis=1, mode="best")):
        blob = codec.encode(x)
        y = codec.decode(blob)
        assert y.dtype == x.dtype and y.shape == x.shape
        import splitans

        scale = max(splitans.inspect(blob)["scale"])
        tolerance = {"float16": 2e-3 * float(x.max()), "float32": 1e-6, "float64": 1e-6}[dtype]
        assert np.abs(y.astype(np.float64) - x.astype(np.float64)).max() <= scale / 2 + tolerance


@pytest.mark.parametrize("mode", ["auto", "dense", "csr", "context", "pcontext", "best"])
def test_every_float_mode_of_compress(mode):
    """Each float mode of splitans.compress (pcontext was refused), with its bytes."""
    import splitans

    x = np.maximum(features(), 0)
    codec = Splitans(bits=6, mode=mode)
    blob = codec.encode(x)
    assert bytes(blob) == splitans.compress(x, bits=6, mode=mode)
    assert (codec.decode(blob) == splitans.decompress(splitans.compress(x, bits=6, mode=mode))).all()
    assert Splitans.from_config(codec.get_config()).mode == mode


@pytest.mark.parametrize("dtype", INTS)
def test_integer_chunks_are_lossless_whatever_the_parameters(dtype):
    info = np.iinfo(dtype)
    q = np.random.default_rng(3).integers(info.min, info.max, size=(5, 7, 9), dtype=dtype, endpoint=True)
    for codec in (Splitans(), Splitans(bits=2, mode="csr", axis=0)):
        y = codec.decode(codec.encode(q))
        assert y.dtype == q.dtype and y.shape == q.shape and (y == q).all()


def test_decode_into_out_and_from_any_buffer():
    x = features()
    codec = Splitans(bits=8)
    blob = codec.encode(x)
    expected = codec.decode(blob)
    out = np.empty_like(x)
    assert codec.decode(np.frombuffer(blob, np.uint8), out=out) is out
    np.testing.assert_array_equal(out, expected)
    flat = np.empty(x.size, x.dtype)  # zarr v2 hands a flat buffer at times
    codec.decode(memoryview(blob), out=flat)
    np.testing.assert_array_equal(flat, expected.ravel())
    raw = codec.decode(Splitans().encode(b"raw bytes"))  # bytes in, uint8 out
    assert raw.tobytes() == b"raw bytes"
    with pytest.raises(TypeError):
        Splitans().encode(np.zeros(3, bool))


def test_import_splitans_does_not_import_numcodecs_or_zarr():
    code = "import sys, splitans; bad = [m for m in ('numcodecs', 'zarr', 'torch') if m in sys.modules]; assert not bad, bad"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_entry_points_are_declared_and_installed():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["numcodecs.codecs"] == {"splitans": "splitans.numcodecs:Splitans"}
    assert project["entry-points"]["zarr.codecs"] == {"numcodecs.splitans": "splitans.zarr3:Splitans"}
    if not installed():
        pytest.skip("splitans is not installed here (its entry points come with pip install)")
    (ep,) = importlib.metadata.entry_points(group="numcodecs.codecs", name="splitans")
    assert ep.load() is Splitans


def test_zarr_v2_chunked_round_trip(tmp_path):
    zarr = pytest.importorskip("zarr")
    x = features(shape=(7, 8, 10, 13))  # not a multiple of the chunks: partial edge chunks too
    q = np.random.default_rng(4).integers(-300, 300, size=(50, 37)).astype(np.int16)
    if zarr.__version__.startswith("2."):
        fz = zarr.open_array(str(tmp_path / "f.zarr"), mode="w", shape=x.shape, chunks=(2, 8, 5, 13), dtype=x.dtype,
                             compressor=Splitans(bits=8, axis=1))
        qz = zarr.open_array(str(tmp_path / "q.zarr"), mode="w", shape=q.shape, chunks=(16, 16), dtype=q.dtype,
                             compressor=Splitans())
    else:
        fz = zarr.create_array(str(tmp_path / "f.zarr"), shape=x.shape, chunks=(2, 8, 5, 13), dtype=x.dtype,
                               compressors=Splitans(bits=8, axis=1), filters=None, zarr_format=2)
        qz = zarr.create_array(str(tmp_path / "q.zarr"), shape=q.shape, chunks=(16, 16), dtype=q.dtype,
                               compressors=Splitans(), filters=None, zarr_format=2)
    fz[:] = x
    qz[:] = q
    meta = (tmp_path / "f.zarr" / ".zarray").read_text()
    assert '"id": "splitans"' in meta and '"bits": 8' in meta
    chunk = next(p for p in (tmp_path / "f.zarr").iterdir() if not p.name.startswith("."))
    assert splitans.inspect(chunk.read_bytes())["kind"] == "feature", "each chunk is one splitans container"
    y = zarr.open_array(str(tmp_path / "f.zarr"), mode="r")[:]
    assert y.dtype == x.dtype and y.shape == x.shape and np.abs(y - x).max() <= 0.02
    assert (zarr.open_array(str(tmp_path / "q.zarr"), mode="r")[:] == q).all()
    assert zarr.open_array(str(tmp_path / "f.zarr"), mode="r")[1:3, 2, 4:7, 12].shape == (2, 3)
    if installed():
        code = ("import numpy as np, zarr, sys\n"
                "y = zarr.open_array('f.zarr', mode='r')[:]\n"
                "print(y.dtype, y.shape, zarr.open_array('q.zarr', mode='r')[:].sum())")
        assert fresh_process(code, tmp_path).split() == ["float32", "(7,", "8,", "10,", "13)", str(q.sum())]


def test_zarr_v3_chunked_round_trip(tmp_path):
    zarr = pytest.importorskip("zarr")
    if zarr.__version__.startswith("2."):
        pytest.skip("zarr v3 arrays need zarr-python 3")
    from splitans.zarr3 import NAME, Splitans as Serializer

    x = features(shape=(7, 8, 10, 13), dtype="float16")
    q = np.random.default_rng(5).integers(0, 2**40, size=(50, 37)).astype(np.uint64)
    fz = zarr.create_array(str(tmp_path / "f.zarr"), shape=x.shape, chunks=(2, 8, 5, 13), dtype=x.dtype,
                           serializer=Serializer(bits=8, axis=1, mode="best"), compressors=None)
    fz[:] = x
    qz = zarr.create_array(str(tmp_path / "q.zarr"), shape=q.shape, chunks=(16, 16), dtype=q.dtype,
                           serializer=Serializer(), compressors=None)
    qz[:] = q
    meta = (tmp_path / "f.zarr" / "zarr.json").read_text()
    assert f'"name": "{NAME}"' in meta and '"mode": "best"' in meta
    y = zarr.open_array(str(tmp_path / "f.zarr"), mode="r")[:]
    assert y.dtype == x.dtype and y.shape == x.shape
    assert np.abs(y.astype(np.float32) - x.astype(np.float32)).max() <= 0.02
    assert (zarr.open_array(str(tmp_path / "q.zarr"), mode="r")[:] == q).all()
    assert Serializer.from_dict(Serializer(bits=3).to_dict()) == Serializer(bits=3)
    with pytest.raises(ValueError, match="needs bits"):  # refused when the array is created, not at write time
        zarr.create_array(str(tmp_path / "bad.zarr"), shape=(4,), dtype="float32", serializer=Serializer(),
                          compressors=None)
    if installed():
        code = ("import zarr\n"
                "y = zarr.open_array('f.zarr', mode='r')[:]\n"
                "print(y.dtype, y.shape, int(zarr.open_array('q.zarr', mode='r')[:].sum() % 1000003))")
        assert fresh_process(code, tmp_path).split() == ["float16", "(7,", "8,", "10,", "13)",
                                                        str(int(q.sum() % 1000003))]


def test_module_examples():
    import splitans.numcodecs

    modules = [splitans.numcodecs]
    try:
        import zarr

        if not zarr.__version__.startswith("2."):
            import splitans.zarr3

            modules.append(splitans.zarr3)
    except ImportError:
        pass
    for module in modules:
        result = doctest.testmod(module, raise_on_error=False)
        assert result.failed == 0 and result.attempted > 0, module.__name__


def test_numcodecs_own_codec_checks():
    """numcodecs' checks for codecs (numcodecs/tests/common.py) against ours: integer arrays of
    every width and layout exactly, float arrays within the quantizer's precision, any buffer
    in and out, config and repr, and object buffers refused with TypeError."""
    common = pytest.importorskip("numcodecs.tests.common")
    ints = [np.arange(1000, dtype=d) for d in INTS]
    ints += [np.random.default_rng(1).integers(-50, 50, size=(10, 20, 30)).astype("i4"),
             np.asfortranarray(np.arange(600, dtype="u2").reshape(20, 30)),
             np.arange(1000, dtype="i8").reshape(10, 100)[:, ::2].copy()]
    for codec in (Splitans(), Splitans(bits=8), Splitans(bits=4, mode="csr", axis=0)):
        common.check_config(codec)
        common.check_err_decode_object_buffer(codec)
        common.check_err_encode_object_buffer(codec)
        for arr in ints:
            # check_encode_decode reads a decoded N-d array in the original's index order, which
            # a Fortran-ordered chunk stored in memory order (as zarr v2 needs) does not give.
            if arr.flags.c_contiguous:
                common.check_encode_decode(arr, codec)
            common.check_encode_decode_array(arr, codec)
    # check_repr evaluates the statement where Splitans is a global of numcodecs' module.
    common.Splitans = Splitans
    for stmt in ("Splitans(axis=None, bits=None, mode='auto')", "Splitans(axis=0, bits=4, mode='csr')"):
        common.check_repr(stmt)
    floats = [np.linspace(0, 1, 1000, dtype=d) for d in FLOATS]
    for arr in floats:
        # 12 bits over [0, 1]: within 1/8190 of each value, so 3 decimals.
        common.check_encode_decode(arr, Splitans(bits=12), precision=3)


@pytest.mark.parametrize("order", ["C", "F"])
def test_zarr_v2_arrays_in_either_memory_order(tmp_path, order):
    """zarr v2 reads a decoded chunk in memory order and reshapes it in the array's order: a
    Fortran-ordered array came back transposed before chunks were stored in memory order."""
    zarr = pytest.importorskip("zarr")
    x = np.arange(6 * 10 * 4, dtype=np.int32).reshape(6, 10, 4)
    f = features((6, 10, 4))
    for data, codec in ((x, Splitans()), (f, Splitans(bits=8, axis=2))):
        z = zarr.create_array(store=str(tmp_path / f"{order}{data.dtype}.zarr"), shape=data.shape, chunks=(3, 10, 4),
                              dtype=data.dtype, compressors=codec, zarr_format=2, order=order)
        z[:] = data
        back = zarr.open_array(str(tmp_path / f"{order}{data.dtype}.zarr"), mode="r")[:]
        if data.dtype.kind == "f":
            # per-channel along the array's last axis: each channel within its own scale/2
            assert np.abs(back - data).max() <= (data.max() / 255) / 2 + 1e-6
        else:
            np.testing.assert_array_equal(back, data)
