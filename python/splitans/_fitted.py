"""Fitted codecs: quantization and a context model agreed once, tiny blobs after that."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core, _feature, _quantizers
from ._codec import DEFAULT_MAX_OUTPUT_BYTES, _as_bytes, _max_output

__all__ = ["Codec"]

ClipSpec = Union[None, str, Tuple[float, float], Sequence[Tuple[float, float]], _feature.Percentile]


def _samples(samples: Any) -> Tuple[List[np.ndarray], str]:
    """Per-sample float32 C-contiguous arrays and the float dtype they had."""
    if isinstance(samples, np.ndarray) or type(samples).__module__.startswith("torch"):
        arr, name = _feature.to_float32(samples)
        if arr.ndim == 0:
            raise ValueError("samples must be an array of samples (first axis) or an iterable of samples")
        items = [arr[i] for i in range(arr.shape[0])]
        return items, name
    if isinstance(samples, (str, bytes)):
        raise TypeError("samples must be an array of samples or an iterable of arrays")
    items, names = [], set()
    for s in samples:
        a, name = _feature.to_float32(s)
        items.append(a)
        names.add(name)
    if not items:
        raise ValueError("Codec.fit needs at least one calibration sample")
    if len(names) > 1:
        raise TypeError(f"calibration samples of several dtypes: {sorted(names)}")
    return items, names.pop()


CLIP_METHODS = ("calibration", "minmax", "mse", "aciq")


def _clip_pairs(items: List[np.ndarray], clip: ClipSpec, axis: Optional[int], nonfinite: str):
    """(ranges or None, per_sample) for the Rust fit."""
    if clip is None:
        return None, True
    if isinstance(clip, str):
        if clip in ("calibration", "minmax"):
            return None, False
        raise ValueError(
            "clip must be 'calibration', 'mse', 'aciq', None, (low, high), per-channel pairs or Percentile, "
            f"got {clip!r}"
        )
    if isinstance(clip, _feature.Percentile):
        if nonfinite == "error" and not all(np.isfinite(a).all() for a in items):
            raise ValueError("calibration samples hold NaN or infinity; pass nonfinite='clamp'")
        return _quantizers.clip_ranges(items, axis, clip, nonfinite=nonfinite), False
    arr = np.asarray(clip, dtype=np.float64)
    if arr.shape == (2,):
        return [(float(arr[0]), float(arr[1]))], False
    if arr.ndim == 2 and arr.shape[1] == 2:
        return [(float(lo), float(hi)) for lo, hi in arr], False
    raise ValueError(f"clip must be (low, high) or a list of per-channel (low, high); got {clip!r}")


def _ranges(items: List[np.ndarray], clip: ClipSpec, axis: Optional[int], nonfinite: str,
            bits_of: Sequence[int]) -> List[Tuple[float, float]]:
    """One (low, high) per channel (one per tensor without an axis)."""
    channels = 1 if axis is None else items[0].shape[axis]
    if isinstance(clip, str):
        return _quantizers.clip_ranges(items, axis, clip if clip in ("mse", "aciq") else "minmax", bits_of)
    ranges, _ = _clip_pairs(items, clip, axis, nonfinite)
    if len(ranges) == 1 and channels > 1:
        ranges = ranges * channels
    if len(ranges) != channels:
        raise ValueError(f"clip has {len(ranges)} ranges, expected 1 or {channels}")
    return ranges


def _quantizer_spec(items, bits, axis, clip, nonfinite, dead_zone, levels, rate_weight, channel_bits) -> Dict[str, Any]:
    """The parameters of an extended quantizer (dead zone, trained levels, per-channel bits,
    searched clip ranges) for ``_core.codec_fit_quantizer``."""
    channels = 1 if axis is None else items[0].shape[axis]
    if channel_bits is None:
        bits_of = [bits] * channels
    else:
        if axis is None:
            raise ValueError("channel_bits needs a channel axis")
        bits_of = [int(b) for b in np.asarray(channel_bits).reshape(-1)]
        if len(bits_of) != channels or not all(0 <= b <= bits for b in bits_of):
            raise ValueError(f"channel_bits must hold {channels} integers from 0 to bits={bits}")
    ranges = _ranges(items, clip, axis, nonfinite, bits_of)
    rows = _quantizers.channel_rows(items, axis) if levels != "uniform" else None
    return _quantizers.quantizer_spec(ranges, bits_of, rows=rows, dead_zone=dead_zone, levels=levels,
                                      rate_weight=rate_weight)
#: The largest finite float16 and bfloat16: the decoded float32 values saturate there, as the
#: self-contained path does, instead of becoming infinite.
_HALF_MAX = {"float16": 65504.0, "bfloat16": float(np.uint32(0x7F7F0000).view(np.float32))}


def _float_output(flat: np.ndarray, shape, dtype: str, output: str):
    """The decoder's values (float16 as its saturated bits, bfloat16 as float32, else the
    codec's dtype) as numpy (bfloat16 as float32) or torch, in the codec's dtype; a conversion to
    bfloat16 saturates."""
    if dtype == "float16":
        flat = flat.view(np.float16)
    if output == "torch":
        import torch

        if dtype == "bfloat16":
            flat = np.clip(flat, -_HALF_MAX[dtype], _HALF_MAX[dtype])
        t = torch.from_numpy(flat).reshape(tuple(shape))
        return t.to(torch.bfloat16) if dtype == "bfloat16" else t
    return flat.reshape(shape)


class Codec:
    """A codec fitted to calibration samples, shared by encoder and decoder.

    It holds everything that does not change between samples — the sample shape and dtype, the
    quantizer, and a context model trained on the calibration samples' codes — so a blob
    carries only the coded sample: 7 bytes of header (a tag, two bytes of the codec's id, a
    CRC-32 that also covers the whole id) plus 4 bytes per coding lane.

    >>> import numpy as np, splitans
    >>> rng = np.random.default_rng(0)
    >>> maps = np.maximum(rng.normal(size=(32, 8, 16, 16)), 0).astype(np.float32)
    >>> codec = splitans.Codec.fit(maps[:24], bits=4)
    >>> blob = codec.compress(maps[30])
    >>> y = codec.decompress(blob)
    >>> bool(np.abs(y - maps[30]).max() <= codec.describe()["scale"][0] / 2 + 1e-6)
    True
    >>> splitans.Codec.from_bytes(codec.to_bytes()).id == codec.id
    True
    """

    __slots__ = ("_c", "report", "calibration")

    def __init__(self, _c: Any, report: Optional[Dict[str, Any]] = None):
        if not isinstance(_c, _core.Codec):
            raise TypeError("use Codec.fit(...) or Codec.from_bytes(...)")
        self._c = _c
        #: What fitting tried and chose (held-out bits per element of each candidate), or None
        #: for a codec read with `from_bytes`.
        self.report = report
        #: For a codec from ``splitans.calibrate``: its predicted accuracy drop, the interval,
        #: the expected size and every candidate tried (``splitans.CalibrationReport``).
        self.calibration = None

    @classmethod
    def fit(
        cls,
        samples: Union[np.ndarray, Iterable[Any]],
        *,
        bits: int,
        axis: Optional[int] = None,
        clip: ClipSpec = "calibration",
        nonfinite: str = "error",
        dead_zone: Optional[float] = None,
        levels: str = "uniform",
        rate_weight: float = 0.1,
        channel_bits: Optional[Sequence[int]] = None,
    ) -> "Codec":
        """Fit a codec to calibration samples.

        ``samples``: an array whose first axis indexes samples (numpy, or a CPU torch tensor),
        or an iterable of per-sample arrays; an axis whose length differs between samples
        becomes a variable axis, whose length each blob states.

        ``bits`` (1..8): the code width. ``axis``: per-channel quantization along this axis of
        a sample (None: per tensor). ``clip``: where the quantization range comes from —
        ``"calibration"`` (default: the calibration samples' min/max, fixed, no bytes per
        blob), ``"mse"`` (per channel with an axis: the range whose grid has the least squared
        error on the calibration values), ``"aciq"`` (from the values' Laplace scale, as ACIQ
        does), ``splitans.Percentile(low, high)`` of the calibration samples, explicit
        ``(low, high)`` or per-channel pairs, or ``None`` for each sample's own min/max (its
        scale and zero point then travel in its blob; along a variable axis, one scale per
        token). Values outside a fixed range are clamped to it.

        Quantizer options (each stored in the codec, none costs a byte per blob):
        ``dead_zone=d`` sends every value with ``|x| <= d * scale`` to the code of zero (more
        exact zeros; error up to ``max(scale / 2, d * scale)``). ``levels="lloyd"`` or
        ``"ecsq"`` trains non-uniform levels on the calibration values (Lloyd–Max, or
        entropy-constrained with ``rate_weight``; error up to the widest half-cell, see
        ``describe()["codebooks"]``). ``channel_bits`` gives each channel of ``axis`` its own
        bit width (0 to ``bits``; 0 sends the channel as zeros), e.g. from
        ``splitans.calibrate``'s sensitivity allocation.

        The model — which axes are "left" and "up", the predictor, channel groups, property
        classes and up to 256 tables — is chosen by the code length of held-out calibration
        samples; ``codec.report`` lists what was tried.
        """
        items, name = _samples(samples)
        bits = _feature._check_bits(bits)
        ndim = items[0].ndim
        if axis is not None:
            axis = _feature._axis(axis, ndim)
        if nonfinite not in ("error", "clamp"):
            raise ValueError(f"nonfinite must be 'error' or 'clamp', got {nonfinite!r}")
        if levels not in ("uniform", "lloyd", "ecsq"):
            raise ValueError(f"levels must be 'uniform', 'lloyd' or 'ecsq', got {levels!r}")
        if dead_zone is not None and not (np.isfinite(dead_zone) and dead_zone >= 0):
            raise ValueError(f"dead_zone must be a number >= 0 (in steps of the grid), got {dead_zone!r}")
        extended = (dead_zone is not None or levels != "uniform" or channel_bits is not None
                    or (isinstance(clip, str) and clip in ("mse", "aciq")))
        if not extended:
            ranges, per_sample = _clip_pairs(items, clip, axis, nonfinite)
            c, report = _core.codec_fit(items, name, bits, axis, ranges, per_sample, nonfinite)
            return cls(c, report)
        if clip is None:
            raise ValueError("dead_zone, levels, channel_bits and clip='mse'/'aciq' need fixed parameters, not clip=None")
        if dead_zone is not None and levels != "uniform":
            raise ValueError("a dead zone goes with uniform levels ('ecsq' levels grow the zero cell themselves)")
        spec = _quantizer_spec(items, bits, axis, clip, nonfinite, dead_zone, levels, rate_weight, channel_bits)
        return cls._from_spec(items, name, bits, axis, spec, nonfinite)

    @classmethod
    def _from_spec(cls, items: List[np.ndarray], dtype: str, bits: int, axis: Optional[int], spec: Dict[str, Any],
                   nonfinite: str = "error") -> "Codec":
        """A codec with the quantizer ``spec`` (``_quantizers.quantizer_spec``; kind
        "per-sample" needs no parameters), its context model fitted to ``items``."""
        c, report = _core.codec_fit_quantizer(items, dtype, bits, spec["kind"], axis, spec.get("params"),
                                              spec.get("dead_zone"), spec.get("codebooks"),
                                              spec.get("codebook_index"), nonfinite)
        return cls(c, report)

    @classmethod
    def from_bytes(cls, data: Any) -> "Codec":
        """Read a codec that ``to_bytes`` wrote; a damaged one raises ``CorruptDataError``."""
        return cls(_core.Codec.from_bytes(_as_bytes(data)))

    def to_bytes(self) -> bytes:
        """The codec's versioned, checksummed serialization (FORMAT.md 9.2)."""
        return self._c.to_bytes()

    @property
    def id(self) -> str:
        """SHA-256 of the serialization, in hex: the codec's name in every blob."""
        return self._c.id

    @property
    def bits(self) -> int:
        return self._c.bits

    @property
    def dtype(self) -> str:
        """The float dtype of the samples; ``decompress`` returns it."""
        return self._c.dtype

    @property
    def shape(self) -> Tuple[Optional[int], ...]:
        """The sample shape; ``None`` marks an axis whose length varies between samples."""
        return tuple(self._c.shape)

    def describe(self) -> Dict[str, Any]:
        """The quantizer (kind, axis, scale and zero point when fixed) and the model."""
        return self._c.describe()

    def compress(self, x: Any, *, nonfinite: str = "error") -> bytes:
        """One sample (numpy or CPU torch, any float dtype, the codec's shape) to a blob."""
        a, _ = _feature.to_float32(x)
        return self._c.compress(a, nonfinite)

    def decompress(
        self,
        data: Any,
        *,
        output: str = "numpy",
        max_output_bytes: Optional[int] = DEFAULT_MAX_OUTPUT_BYTES,
    ):
        """A blob of this codec back to the sample, dequantized, in the codec's dtype
        (bfloat16 as float32 in numpy, as bfloat16 with ``output="torch"``). A blob of
        another codec, or a damaged one, raises ``CorruptDataError``."""
        if output not in ("numpy", "torch"):
            raise ValueError(f"output must be 'numpy' or 'torch', got {output!r}")
        flat, shape = self._c.decompress(_as_bytes(data), _max_output(max_output_bytes))
        return _float_output(flat, shape, self._c.dtype, output)

    def compress_gpu(self, x: Any, *, nonfinite: str = "error", device: Any = None, _ops_=None) -> bytes:
        """``compress`` on a CUDA device (a CuPy array or a CUDA torch tensor), through CuPy:
        the same blob, byte for byte; only the histogram, the word counts and the coded bytes
        cross to the host."""
        from .gpu import pctx, pipelines

        ops = _ops_ or pipelines.ops_for(device)
        with ops.context():
            return pctx.compress(ops, self._c, x, nonfinite=nonfinite)

    def decompress_gpu(
        self,
        data: Any,
        *,
        output: str = "cupy",
        max_output_bytes: Optional[int] = DEFAULT_MAX_OUTPUT_BYTES,
        device: Any = None,
        _ops_=None,
    ):
        """``decompress`` on a CUDA device: a CuPy array (``output="torch"``: a CUDA torch
        tensor) in the codec's dtype. The blob is checked by the CPU parser first."""
        from .gpu import pctx, pipelines

        ops = _ops_ or pipelines.ops_for(device)
        with ops.context():
            return pctx.decompress(ops, self._c, data, output=output, max_output_bytes=max_output_bytes)

    def round_trip(self, x: Any, *, nonfinite: str = "error") -> np.ndarray:
        """What samples decode to, without coding them: ``decompress(compress(s))`` for each
        sample ``s`` of ``x`` (samples along the first axis; float32). Quantization only, so
        it is fast: a calibration search runs the model on it."""
        a, _ = _feature.to_float32(x)
        if a.ndim == 0:
            raise ValueError("round_trip takes a batch: samples along the first axis")
        return self._c.round_trip(a, nonfinite).reshape(a.shape)

    def inspect(self, data: Any, *, max_output_bytes: Optional[int] = DEFAULT_MAX_OUTPUT_BYTES) -> Dict[str, Any]:
        """A blob's kind (coded, raw, constant), shape, parameters, header and body bytes and
        the order-0 bound of its codes; the body is decoded, and so verified."""
        return self._c.inspect(_as_bytes(data), _max_output(max_output_bytes))

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Codec) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        shape = ", ".join("*" if d is None else str(d) for d in self.shape)
        return f"<splitans.Codec {self.id[:12]} {self.dtype} ({shape}) {self.bits} bits>"

    def __reduce__(self):
        return (Codec.from_bytes, (self.to_bytes(),))
