"""The fast-path API of issue 15: decompress(out=), compress_many / decompress_many, and no copies of
contiguous inputs. Speeds are measured in benches/bench_fast.py, not here."""

import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import splitans

torch = pytest.importorskip("torch")


def relu(shape, seed, zeros=0.5):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return np.maximum(x - np.float32(np.quantile(x, zeros)), 0).astype(np.float32)


def same(a, b):
    if isinstance(a, torch.Tensor):
        a8, b8 = a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8)
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a8, b8)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


CASES = [
    (relu((1, 16, 9, 9), 1), dict(bits=8)),
    (relu((2, 3, 70, 500), 2), dict(bits=4, axis=1)),  # 210,000 elements: several chunks
    (relu((64, 64), 3, 0.9), dict(bits=8, mode="csr")),
    (relu((5, 7, 11), 4).astype(np.float16), dict(bits=6)),
    (relu((5, 7, 11), 5).astype(np.float64), dict(bits=12)),
    (relu((3, 40, 40), 6), dict(bits=3, mode="context")),
    (np.float32(2.5), dict(bits=8)),
    (np.zeros((0, 3), np.float32), dict(bits=8)),
    (np.arange(1000, dtype=np.int32).reshape(10, 100) * 3, {}),
    (np.arange(300, dtype=np.uint8), {}),
    (np.arange(-500, 500, dtype=np.int16), {}),
    (np.arange(77, dtype=np.int64) ** 3, {}),
    (np.arange(77, dtype=np.uint64) ** 5, {}),
    (np.arange(-30, 30, dtype=np.int8), {}),
    (np.arange(70000, dtype=np.uint32), {}),
    (np.arange(99, dtype=np.uint16), {}),
]


@pytest.mark.parametrize("i", range(len(CASES)))
def test_decompress_into_numpy_gives_decompress(i):
    x, kw = CASES[i]
    blob = splitans.compress(x, **kw)
    want = splitans.decompress(blob)
    out = np.full(want.shape, 7, want.dtype)
    for threads in (1, 2, None):
        assert splitans.decompress(blob, out=out, threads=threads) is out
        assert same(out, want)


def test_decompress_into_torch_tensors():
    x = relu((2, 8, 33, 33), 7)
    for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        t = torch.from_numpy(x).to(dtype)
        blob = splitans.compress(t, bits=8)
        want = splitans.decompress(blob, output="torch")
        out = torch.empty(x.shape, dtype=want.dtype)
        assert splitans.decompress(blob, out=out) is out
        assert same(out, want)
    ints = torch.arange(-200, 200, dtype=torch.int16).reshape(20, 20)
    blob = splitans.compress(ints)
    out = torch.empty_like(ints)
    splitans.decompress(blob, out=out)
    assert torch.equal(out, ints)
    # bfloat16 in numpy is float32: a float32 buffer takes it too.
    blob = splitans.compress(torch.from_numpy(x).bfloat16(), bits=8)
    out = np.empty(x.shape, np.float32)
    splitans.decompress(blob, out=out)
    assert same(out, splitans.decompress(blob))


def test_decompress_into_checks_the_buffer_before_decoding():
    x = relu((4, 5, 6), 8)
    blob = splitans.compress(x, bits=8)
    for bad, err in [
        (np.zeros((4, 5, 7), np.float32), "shape"),
        (np.zeros((4, 5, 6, 1), np.float32), "shape"),
        (np.zeros((4, 5, 6), np.float64), "dtype"),
        (np.zeros((4, 5, 6), np.float16), "dtype"),
        (np.zeros((4, 5, 6), np.int32), "dtype"),
        (np.zeros((4, 6, 5), np.float32).transpose(0, 2, 1), "contiguous"),
        (np.zeros((4, 5, 6), ">f4"), "byte order"),
        (torch.zeros((4, 5, 6), dtype=torch.float64), "dtype"),
    ]:
        before = bad.copy() if isinstance(bad, np.ndarray) else bad.clone()
        with pytest.raises(ValueError, match=err):
            splitans.decompress(blob, out=bad)
        assert same(bad, before), "a refused buffer is left alone"
    ro = np.zeros((4, 5, 6), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        splitans.decompress(blob, out=ro)
    with pytest.raises(TypeError, match="numpy array or a torch CPU tensor"):
        splitans.decompress(blob, out=[0.0] * 120)
    with pytest.raises(ValueError, match="not the expected"):
        splitans.decompress(blob, out=np.zeros((4, 5, 6), np.float32), expect_shape=(4, 5, 7))
    # A damaged container fails as decompress() fails.
    bad = bytearray(blob)
    bad[-3] ^= 1
    with pytest.raises(splitans.CorruptDataError):
        splitans.decompress(bytes(bad), out=np.zeros((4, 5, 6), np.float32))
    with pytest.raises(splitans.OutputTooLargeError):
        splitans.decompress(blob, out=np.zeros((4, 5, 6), np.float32), max_output_bytes=100)


def _peak(fn):
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_no_output_sized_allocation_with_out_and_no_input_copy():
    x = relu((1, 64, 128, 128), 9)  # 4 MiB
    blob = splitans.compress(x, bits=8)
    out = np.empty_like(x)
    splitans.decompress(blob, out=out)
    assert _peak(lambda: splitans.decompress(blob, out=out)) < x.nbytes // 8
    # decompress() itself allocates its output (numpy tracks it), as a check of the check.
    assert _peak(lambda: splitans.decompress(blob)) >= x.nbytes
    # Compressing: the container (here ~0.55 MB) and no copy of the input (4 MiB).
    t = torch.from_numpy(x)
    assert _peak(lambda: splitans.compress(x, bits=8)) < len(blob) + x.nbytes // 8
    assert _peak(lambda: splitans.compress(t, bits=8)) < len(blob) + x.nbytes // 8
    ints = (x * 100).astype(np.int16)
    assert _peak(lambda: splitans.compress(ints)) < ints.nbytes // 2
    assert _peak(lambda: splitans.compress(x[:, :, ::2], bits=8)) >= x.nbytes // 2, "a strided input is copied"


def test_batches_give_the_single_calls():
    floats = [x for x, kw in CASES if kw]
    for kw in [dict(bits=8), dict(bits=4, mode="dense"), dict(bits=5, clip=splitans.Percentile(1, 99)),
               dict(bits=16, mode="csr", chunk_symbols=4096)]:
        usable = [x for x in floats if not (kw.get("mode") == "csr" and x.size == 0)]
        want = [splitans.compress(x, **kw) for x in usable]
        for threads in (1, 2, None):
            assert splitans.compress_many(usable, threads=threads, **kw) == want
        got = splitans.decompress_many(want, threads=2)
        for g, b in zip(got, want):
            assert same(g, splitans.decompress(b))
    mixed = [x for x, _ in CASES]
    blobs = splitans.compress_many(mixed, bits=6)
    assert blobs == [splitans.compress(x, bits=6) if np.asarray(x).dtype.kind == "f" else splitans.compress(x) for x in mixed]
    outs = [np.empty_like(splitans.decompress(b)) for b in blobs]
    assert splitans.decompress_many(blobs, out=outs, threads=2) == outs
    for o, b in zip(outs, blobs):
        assert same(o, splitans.decompress(b))
    for g, b in zip(splitans.decompress_many(blobs, output="torch"), blobs):
        assert same(g, splitans.decompress(b, output="torch"))
    assert splitans.compress_many([]) == [] and splitans.decompress_many([]) == []


def test_batch_errors_name_the_item():
    xs = [relu((3, 4), 10), relu((3, 4), 11)]
    blobs = splitans.compress_many(xs, bits=8)
    bad = bytearray(blobs[1])
    bad[-2] ^= 4
    with pytest.raises(splitans.CorruptDataError, match="^item 1: "):
        splitans.decompress_many([blobs[0], bytes(bad)])
    with pytest.raises(ValueError, match="^item 0: out has shape"):
        splitans.decompress_many(blobs, out=[np.empty((3, 5), np.float32), np.empty((3, 4), np.float32)])
    with pytest.raises(ValueError, match="2 blobs"):
        splitans.decompress_many(blobs, out=[np.empty((3, 4), np.float32)])
    nan = xs[1].copy()
    nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="^item 1: input holds NaN"):
        splitans.compress_many([xs[0], nan], bits=8)
    with pytest.raises(TypeError, match="item 0: .*needs bits"):
        splitans.compress_many(xs)
    with pytest.raises(ValueError, match="^item 2: "):
        splitans.compress_many([xs[0], np.arange(3, dtype=np.int8), relu((5, 5), 12)], bits=8, reshape=4)


def test_batches_from_many_threads():
    xs = [relu((1, 8, 14, 14), s) for s in range(40)]
    want = [splitans.compress(x, bits=4) for x in xs]

    def job(k):
        blobs = splitans.compress_many(xs[k:] + xs[:k], bits=4, threads=2)
        return blobs, splitans.decompress_many(blobs, threads=2)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for k, (blobs, back) in zip(range(8), pool.map(job, range(8))):
            assert blobs == want[k:] + want[:k]
            for b, y in zip(blobs, back):
                assert same(y, splitans.decompress(b))
