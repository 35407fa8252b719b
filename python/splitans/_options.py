"""``splitans.Options``: the compression options as one frozen object, validated once.

Every door that compresses (``compress``, ``compress_many``, ``compress_gpu``, ``plan``, the
numcodecs and zarr codecs, the runtime, the CLI) takes an ``Options`` or builds one from its
keywords, so an option means the same thing everywhere and is checked in one place: here, when the
object is built. It holds the native ``_core.CoderOptions`` (the fields the codec reads, parsed
into its enums), which the bindings take whole. The names of the enumerations (``MODES`` ...) come
from ``_core``: the Rust side is their only spelling.

Built once and reused, an ``Options`` costs nothing per call (as python-zstandard's
``ZstdCompressor`` holds its level); keyword calls of the common kinds hit a small cache of built
objects, so ``compress(x, bits=4)`` does not validate again either.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Literal, NamedTuple, Optional, Tuple, Union

import numpy as np

from . import _core

__all__ = ["GPU_MODES", "MODES", "NONFINITE", "Options", "Percentile", "RESHAPES"]

#: Every ``mode``, in the order the documentation lists them (``_core`` spells them).
MODES: Tuple[str, ...] = tuple(_core.MODES)
#: The modes ``compress_gpu`` (and ``plan``) take: the fast coders, byte-identical on the GPU.
GPU_MODES: Tuple[str, ...] = tuple(_core.GPU_MODES)
#: The values of ``nonfinite``.
NONFINITE: Tuple[str, ...] = tuple(_core.NONFINITE)
#: The ways of choosing the CSR row count besides an explicit N.
RESHAPES: Tuple[str, ...] = tuple(_core.RESHAPES)


class Percentile(NamedTuple):
    """Clip to the ``low``-th and ``high``-th percentiles of the data before quantizing
    (per channel with ``axis=``): ``clip=splitans.Percentile(0.1, 99.9)``."""

    low: float
    high: float


Mode = Literal["auto", "dense", "csr", "context", "pcontext", "best"]
NonFinite = Literal["error", "clamp"]
ReshapeMethod = Literal["model", "search"]
Clip = Union[None, Tuple[float, float], Tuple[Tuple[float, float], ...], Percentile]


#: The most threads a call takes (the codec uses at most 256 of them).
MAX_THREADS = (1 << 31) - 1


def _integer(value: Any, name: str, what: str) -> int:
    """`value` as an int: Python and numpy integers only (a bool is refused, not taken as 0/1)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__} {value!r}")
    return int(value)


def _check_bits(bits: Any) -> int:
    if not isinstance(bits, (int, np.integer)) or isinstance(bits, bool) or not 1 <= bits <= 16:
        raise ValueError(f"bits must be an integer from 1 to 16, got {bits!r}")
    return int(bits)


def _check_reshape(reshape: Any) -> Any:
    if isinstance(reshape, (int, np.integer)) and not isinstance(reshape, (bool, np.bool_)):
        if not 1 <= reshape < 1 << 63:
            raise ValueError(
                f"reshape must be a positive row count that divides the element count, 'model' or 'search', got {reshape}"
            )
        return int(reshape)
    if reshape in ("model", "search"):
        return reshape
    raise ValueError(f"reshape must be a positive row count, 'model' or 'search', got {reshape!r}")


def _chunk_log2(chunk_symbols: Optional[int]) -> Optional[int]:
    if chunk_symbols is None:
        return None
    what = "a power of two from 256 to 2**24 or None"
    n = _integer(chunk_symbols, "chunk_symbols", what)
    if n < 256 or n > 1 << 24 or n & (n - 1):
        raise ValueError(f"chunk_symbols must be {what}, got {chunk_symbols!r}")
    return n.bit_length() - 1


def _threads(threads: Optional[int]) -> int:
    if threads is None:
        return 0
    what = "a positive integer or None (all cores)"
    n = _integer(threads, "threads", what)
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"threads must be {what}, up to 2**31 - 1; got {threads!r}")
    return n


def _precision(precision_bits: Optional[int]) -> Optional[int]:
    if precision_bits is None:
        return None
    what = "an integer from 1 to 16 or None (chosen per stream)"
    n = _integer(precision_bits, "precision_bits", what)
    if not 1 <= n <= 16:
        raise ValueError(f"precision_bits must be {what}, got {precision_bits!r}")
    return n


def _version(version: Any) -> Optional[int]:
    """The container version of a float tensor: None (the newest, 3), 3 or 1."""
    if version is None:
        return None
    if isinstance(version, (bool, np.bool_)) or version not in (1, 3):
        raise ValueError(f"version must be None (the newest, 3) or 1, got {version!r}")
    return int(version)


def _clip(clip: Any) -> Clip:
    if clip is None:
        return None
    if isinstance(clip, Percentile):
        lo, hi = float(clip.low), float(clip.high)
        if not 0 <= lo <= hi <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= low <= high <= 100, got {clip}")
        return Percentile(lo, hi)
    arr = np.asarray(clip, dtype=np.float64)
    if arr.shape == (2,):
        return (float(arr[0]), float(arr[1]))
    if arr.ndim == 2 and arr.shape[1] == 2:
        return tuple((float(lo), float(hi)) for lo, hi in arr)
    raise ValueError(f"clip must be (low, high), a list of per-channel (low, high), or Percentile(low, high); got {clip!r}")


def _scale(scale: Any) -> Tuple[float, ...]:
    with np.errstate(over="ignore"):  # a scale beyond float32 becomes inf, refused by the codec
        return tuple(np.atleast_1d(np.asarray(scale, dtype=np.float32)).ravel().tolist())


def _zero_point(zero_point: Any, bits: Optional[int]) -> Tuple[int, ...]:
    z = np.atleast_1d(np.asarray(zero_point)).ravel()
    if z.dtype == object or not np.issubdtype(z.dtype, np.integer) or z.dtype == np.bool_:
        raise TypeError(f"zero_point must be an integer or integers, got {zero_point!r}")
    values = tuple(int(v) for v in z.tolist())
    if bits is not None:  # without bits a float array is refused anyway, an integer one takes none
        levels = (1 << bits) - 1
        bad = [v for v in values if not 0 <= v <= levels]
        if bad:
            raise ValueError(f"zero_point {bad[0]} is out of range for {bits} bits: it must be in 0..{levels}")
    return values


@dataclass(frozen=True)
class Options:
    """How to compress: every option of ``splitans.compress``, checked once, when built.

    Build one, keep it, pass it to every call: ``compress(x, opts)``, ``compress_many(xs, opts)``,
    ``compress_gpu(x, opts)``. Keywords passed beside it replace its fields for that call
    (``compress(x, opts, threads=1)``), as ``opts.replace(threads=1)`` does. An invalid value
    raises here (``ValueError``, or ``TypeError`` for a value of the wrong type), not at the first
    call. Values are normalized: numpy integers become ``int``, ``scale``/``zero_point`` tuples,
    ``clip`` a ``(low, high)`` pair, a tuple of pairs or a ``Percentile`` of floats. Equal options
    compare and hash equal; they pickle, and ``to_config()`` / ``from_config()`` give them as JSON
    values (what numcodecs ``get_config`` stores).

    >>> import numpy as np, splitans
    >>> opts = splitans.Options(bits=4, mode="csr")
    >>> x = np.maximum(np.linspace(-1, 1, 256, dtype=np.float32), 0).reshape(4, 64)
    >>> splitans.compress(x, opts) == splitans.compress(x, bits=4, mode="csr")
    True
    >>> opts.replace(mode="dense").to_config()
    {'bits': 4, 'mode': 'dense'}
    >>> splitans.Options(bits=4, mode="sparse")
    Traceback (most recent call last):
    ...
    ValueError: mode must be 'auto', 'dense', 'csr', 'context', 'pcontext' or 'best', got "sparse"
    """

    #: Quantization bit width of float arrays (1..16); integer arrays take none.
    bits: Optional[int] = None
    #: The channel axis of per-channel quantization (negative counts from the end); None: per tensor.
    axis: Optional[int] = None
    #: Calibrated scale per tensor or per channel (with ``zero_point``).
    scale: Optional[Tuple[float, ...]] = None
    #: Calibrated zero point per tensor or per channel (with ``scale``).
    zero_point: Optional[Tuple[int, ...]] = None
    #: The quantization range: ``(low, high)``, per-channel pairs or ``Percentile(low, high)``.
    clip: Clip = None
    #: How the quantized symbols are coded (``MODES``).
    mode: Mode = "auto"
    #: The CSR row count: an explicit N, ``"model"`` or ``"search"``.
    reshape: Union[int, ReshapeMethod] = "model"
    #: NaN and infinities: ``"error"`` refuses them, ``"clamp"`` maps them into the range.
    nonfinite: NonFinite = "error"
    #: The frequency tables' precision (1..16); None: chosen per stream.
    precision_bits: Optional[int] = None
    #: The size of the independently coded chunks (a power of two, 256..2**24); None: chosen.
    chunk_symbols: Optional[int] = None
    #: Threads to code on; None: every core. The bytes never depend on it.
    threads: Optional[int] = None
    #: The container version of a float tensor: None (the newest, 3), 3 or 1.
    version: Optional[Literal[1, 3]] = None
    # What the bindings take (``_core.CoderOptions``), and whether a C-contiguous float32 array
    # can go straight to it (no axis, clip or calibration for numpy to resolve first).
    _native: Any = field(default=None, init=False, repr=False, compare=False)
    _direct: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        bits = None if self.bits is None else _check_bits(self.bits)
        axis = self.axis
        if axis is not None:
            if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
                raise ValueError(f"axis must be an integer or None, got {axis!r}")
            axis = int(axis)
        if self.clip is not None and self.scale is not None:
            raise ValueError("pass clip= or scale=/zero_point=, not both")
        scale = zero_point = None
        if self.scale is not None or self.zero_point is not None:
            if self.scale is None or self.zero_point is None:
                raise ValueError("scale= and zero_point= go together")
            scale = _scale(self.scale)
            zero_point = _zero_point(self.zero_point, bits)
        clip = _clip(self.clip)
        reshape = _check_reshape(self.reshape)
        if isinstance(reshape, str):
            reshape = str(reshape)
        mode = str(self.mode) if isinstance(self.mode, str) else self.mode
        nonfinite = str(self.nonfinite) if isinstance(self.nonfinite, str) else self.nonfinite
        precision_bits = _precision(self.precision_bits)
        chunk_log2 = _chunk_log2(self.chunk_symbols)
        threads = _threads(self.threads)
        version = _version(self.version)
        # The names of mode and nonfinite are checked where they are defined.
        native = _core.CoderOptions(
            bits, mode, reshape, nonfinite, precision_bits, chunk_log2, threads, 3 if version is None else version
        )
        set_ = object.__setattr__
        set_(self, "bits", bits)
        set_(self, "axis", axis)
        set_(self, "scale", scale)
        set_(self, "zero_point", zero_point)
        set_(self, "clip", clip)
        set_(self, "mode", mode)
        set_(self, "reshape", reshape)
        set_(self, "nonfinite", nonfinite)
        set_(self, "precision_bits", precision_bits)
        set_(self, "chunk_symbols", None if chunk_log2 is None else 1 << chunk_log2)
        set_(self, "threads", None if self.threads is None else threads)
        set_(self, "version", version)
        set_(self, "_native", native)
        set_(self, "_direct", axis is None and clip is None and scale is None and version != 1)

    def replace(self, **changes: Any) -> "Options":
        """A copy with ``changes`` applied (and validated): ``opts.replace(mode="csr")``."""
        return dataclasses.replace(self, **changes)

    def _lossy(self) -> List[str]:
        """The names of the options set that only float arrays take, in signature order (an
        integer array is coded losslessly and refuses them)."""
        given = [f for f in ("bits", "axis", "scale", "zero_point", "clip") if getattr(self, f) is not None]
        given += [f for f, default in (("mode", "auto"), ("reshape", "model"), ("nonfinite", "error"))
                  if getattr(self, f) != default]
        if self.version not in (None, 1):
            given.append("version")
        return given

    def _refuse_lossy(self, dtype: str) -> None:
        """Raises what every door raises when an integer array (of `dtype`) is given options it
        does not take."""
        given = self._lossy()
        if given:
            raise ValueError(
                f"{', '.join(given)} apply to float arrays; integer arrays (here {dtype}) are compressed losslessly "
                "(drop them, or pass a float array with bits=)"
            )

    def to_config(self) -> Dict[str, Any]:
        """The fields that differ from the defaults, as JSON values (lists for tuples; a
        ``Percentile`` as ``{"percentile": [low, high]}``); ``from_config`` reads it back."""
        config: Dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if not f.init:
                continue
            value = getattr(self, f.name)
            if value == f.default:
                continue
            if isinstance(value, Percentile):
                value = {"percentile": [value.low, value.high]}
            elif isinstance(value, tuple):
                value = [list(v) if isinstance(v, tuple) else v for v in value]
            config[f.name] = value
        return config

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Options":
        """The ``Options`` of a ``to_config()`` dictionary (validated as any other)."""
        config = dict(config)
        clip = config.get("clip")
        if isinstance(clip, dict):
            if set(clip) != {"percentile"}:
                raise ValueError(f"clip must be a list of (low, high) or {{'percentile': [low, high]}}, got {clip!r}")
            config["clip"] = Percentile(*clip["percentile"])
        return cls(**config)

    def __reduce__(self) -> Any:
        # Rebuilt (and so validated) from its fields: the native object does not pickle.
        return (_rebuild, (self.to_config(),))


def _rebuild(config: Dict[str, Any]) -> Options:
    return Options.from_config(config)


#: ``Options()``: what a call with no options takes.
DEFAULT = Options()

# Options built from keywords, by keywords and their types: a keyword call of the common kinds
# (ints, strings, None, floats) validates once, not per call. The types are in the key so that
# True, 1 and 1.0 (equal, with one hash) stay apart; a tuple is not cached, as its items' types
# are not in the key (zero_point=(True,) is refused, (1,) is not).
_BUILT: Dict[Any, Options] = {}
_CACHEABLE = frozenset((int, str, float, type(None)))


def options_of(options: Optional[Options], keywords: Dict[str, Any]) -> Options:
    """The ``Options`` of a call: ``options`` with ``keywords`` replacing its fields, or built
    from ``keywords`` alone."""
    if options is not None:
        if not isinstance(options, Options):
            raise TypeError(f"options must be a splitans.Options, got {type(options).__name__}")
        return options.replace(**keywords) if keywords else options
    if not keywords:
        return DEFAULT
    # The values' types are in the key, so a hit had the types of a cached (cacheable) call.
    try:
        key = (*keywords.items(), *map(type, keywords.values()))
        built = _BUILT.get(key)
    except TypeError:  # an unhashable value (a list, an array): built each time
        return Options(**keywords)
    if built is None:
        built = Options(**keywords)
        if _CACHEABLE.issuperset(map(type, keywords.values())):
            if len(_BUILT) >= 256:
                _BUILT.clear()
            _BUILT[key] = built
    return built
