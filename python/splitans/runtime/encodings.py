"""How an activation (or the input image) travels: one function to encode on the edge, one to
decode on the server, for every strategy the client and the benchmark offer.

Strategies: ``"codec"`` (a fitted ``splitans.Codec``: tiny blobs, the codec agreed once by id),
``"auto"`` / ``"best"`` (self-contained ``splitans.compress`` containers), ``"float32"``,
``"float16"``, ``"zstd-float16"`` (zstd level 1 of float16), and ``"jpeg"`` / ``"png"`` (the input
image itself; the server runs the whole model). Decoding checks every size against what the
server expects before allocating, so a hostile payload costs at most one activation.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import numpy as np

from .._codec import compress, decompress
from .._fitted import Codec
from .._options import Options, options_of

__all__ = ["ACTIVATION_STRATEGIES", "IMAGE_STRATEGIES", "STRATEGIES", "RequestError", "activation_options", "decode",
           "encode", "encode_image"]

#: The strategies that send self-contained ``splitans.compress`` containers: the mode is the strategy.
CONTAINER_STRATEGIES = ("auto", "best")
ACTIVATION_STRATEGIES = ("codec", *CONTAINER_STRATEGIES, "float32", "float16", "zstd-float16")
IMAGE_STRATEGIES = ("jpeg", "png")
STRATEGIES = ACTIVATION_STRATEGIES + IMAGE_STRATEGIES

# Encoding enum values of the .proto (kept numeric so this module needs no grpc).
SPLITANS, CODEC, FLOAT32, FLOAT16, ZSTD_FLOAT16, IMAGE = 1, 2, 3, 4, 5, 6
ENCODING_OF = {"codec": CODEC, "auto": SPLITANS, "best": SPLITANS, "float32": FLOAT32, "float16": FLOAT16,
               "zstd-float16": ZSTD_FLOAT16, "jpeg": IMAGE, "png": IMAGE}


class RequestError(Exception):
    """A request the server refuses: `code` is the gRPC status code's name, `reason` the name of
    an ``ErrorReason`` of the .proto (what the client should do about it; "" when unspecified)."""

    def __init__(self, code: str, message: str, reason: str = ""):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason


def _numpy(x: Any) -> np.ndarray:
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu().float().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


def activation_options(strategy: str, bits: int = 8, axis: Optional[int] = None) -> Options:
    """The ``splitans.Options`` of a container strategy (``"auto"``/``"best"``, the mode): on one
    thread, as a server already runs its requests side by side. Built (and checked) once, by the
    client, when it is made."""
    if strategy not in CONTAINER_STRATEGIES:
        raise ValueError(f"strategy {strategy!r} sends no splitans container; one of {', '.join(CONTAINER_STRATEGIES)}")
    return Options(bits=bits, axis=axis, mode=strategy, threads=1)


def encode(strategy: str, activation: Any, *, codec: Optional[Codec] = None, bits: int = 8,
           axis: Optional[int] = None, options: Optional[Options] = None) -> Tuple[int, bytes, Tuple[int, ...]]:
    """(encoding, payload, shape) for one activation with its batch axis (batch 1 for ``codec``).
    ``options``: those of ``"auto"``/``"best"`` (``activation_options``); without them,
    ``bits``/``axis`` make them."""
    if strategy == "codec":
        if codec is None:
            raise ValueError("strategy 'codec' needs a fitted codec")
        if activation.shape[0] != 1:
            raise ValueError("a fitted codec codes one sample per blob: send a batch of 1")
        return CODEC, codec.compress(activation[0]), tuple(activation.shape)
    if strategy in CONTAINER_STRATEGIES:
        if options is None:
            options = options_of(None, {"bits": bits, "axis": axis, "mode": strategy, "threads": 1})
        return SPLITANS, compress(activation, options), tuple(activation.shape)
    a = _numpy(activation)
    if strategy == "float32":
        return FLOAT32, a.astype("<f4").tobytes(), a.shape
    if strategy == "float16":
        return FLOAT16, a.astype("<f2").tobytes(), a.shape
    if strategy == "zstd-float16":
        import zstandard

        return ZSTD_FLOAT16, zstandard.ZstdCompressor(level=1).compress(a.astype("<f2").tobytes()), a.shape
    raise ValueError(f"unknown activation strategy {strategy!r}; one of {', '.join(ACTIVATION_STRATEGIES)}")


def encode_image(strategy: str, image: np.ndarray, quality: int = 90) -> Tuple[int, bytes, Tuple[int, ...]]:
    """An H x W (x C) uint8 image as JPEG (quality 90) or PNG."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    image = np.asarray(image, dtype=np.uint8)
    img = Image.fromarray(image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image)
    if strategy == "jpeg":
        img.save(buf, format="JPEG", quality=quality)
    elif strategy == "png":
        img.save(buf, format="PNG")
    else:
        raise ValueError(f"unknown image strategy {strategy!r}; one of {', '.join(IMAGE_STRATEGIES)}")
    return IMAGE, buf.getvalue(), tuple(np.asarray(image).shape)


def _check_shape(shape: Sequence[int], expected: Sequence[int], what: str) -> Tuple[int, ...]:
    shape = tuple(int(d) for d in shape)
    if len(shape) != len(expected) + 1 or shape[1:] != tuple(expected) or not 1 <= shape[0] <= 1024:
        raise RequestError("INVALID_ARGUMENT", f"{what} shape {shape} does not match this server's "
                           f"(N, {', '.join(map(str, expected))}) with 1 <= N <= 1024", reason="BAD_PAYLOAD")
    return shape


def decode(encoding: int, payload: bytes, shape: Sequence[int], *, activation_shape: Sequence[int],
           codec: Optional[Codec] = None, max_batch: int = 1024) -> np.ndarray:
    """The activation as float32 with its batch axis; raises `RequestError` for anything wrong.
    `codec`: the fitted codec of a CODEC request, already looked up by the caller."""
    from .._core import CorruptDataError, OutputTooLargeError

    limit = max_batch * int(np.prod(activation_shape)) * 8
    try:
        if encoding == CODEC:
            if codec is None:
                raise RequestError("FAILED_PRECONDITION", "unknown codec: agree it again (PutCodec)",
                                   reason="CODEC_UNKNOWN")
            a = codec.decompress(payload, max_output_bytes=limit)[None]
        elif encoding == SPLITANS:
            a = decompress(payload, max_output_bytes=limit, threads=1)
            if a.dtype.kind != "f":
                raise RequestError("INVALID_ARGUMENT", f"a splitans container of {a.dtype} integers, not a float "
                                   "feature", reason="BAD_PAYLOAD")
        elif encoding in (FLOAT32, FLOAT16, ZSTD_FLOAT16):
            shape = _check_shape(shape, activation_shape, "activation")
            itemsize = 4 if encoding == FLOAT32 else 2
            expected = int(np.prod(shape)) * itemsize
            if encoding == ZSTD_FLOAT16:
                import zstandard

                try:
                    # max_output_size bounds only a frame that does not state its size: a frame
                    # that states a larger one would be allocated whole, so it is refused first.
                    stated = zstandard.frame_content_size(payload)
                    if stated > expected:
                        raise RequestError("INVALID_ARGUMENT", f"zstd: the frame holds {stated} bytes; shape "
                                           f"{shape} needs {expected}", reason="BAD_PAYLOAD")
                    payload = zstandard.ZstdDecompressor().decompress(payload, max_output_size=expected)
                except zstandard.ZstdError as e:
                    raise RequestError("INVALID_ARGUMENT", f"zstd: {e}", reason="BAD_PAYLOAD") from None
            if len(payload) != expected:
                raise RequestError("INVALID_ARGUMENT", f"payload holds {len(payload)} bytes; shape {shape} needs "
                                   f"{expected}", reason="BAD_PAYLOAD")
            a = np.frombuffer(payload, dtype="<f4" if itemsize == 4 else "<f2").reshape(shape)
        else:
            raise RequestError("INVALID_ARGUMENT", f"encoding {encoding} is not an activation encoding",
                               reason="BAD_PAYLOAD")
    except (CorruptDataError, OutputTooLargeError) as e:
        raise RequestError("INVALID_ARGUMENT", f"{type(e).__name__}: {e}", reason="BAD_PAYLOAD") from None
    a = np.asarray(a, dtype=np.float32)
    _check_shape(a.shape, activation_shape, "activation")
    return a


MAX_IMAGE_PIXELS = 1 << 22
"""The largest image (width x height) the server decodes: 4 M pixels, 12 MiB as RGB."""


def decode_image(payload: bytes, input_shape: Sequence[int], preprocess=None) -> np.ndarray:
    """An encoded image (PNG, JPEG, ...) to the model's input, shape (1, *input_shape), float32,
    through ``preprocess`` (the model's own: an H x W x C uint8 array to its input). A model
    without one refuses images (FAILED_PRECONDITION, NO_PREPROCESS): pixels scaled to [0, 1]
    without the model's normalisation give answers that look right and are not."""
    import io

    from PIL import Image

    if preprocess is None:
        raise RequestError("FAILED_PRECONDITION", "this model takes no images: its factory gives no preprocess "
                           "(model.preprocess, an H x W x C uint8 image to the model's input); send the "
                           "activation instead", reason="NO_PREPROCESS")
    input_shape = tuple(int(d) for d in input_shape)
    gray = len(input_shape) == 3 and input_shape[0] == 1
    try:
        img = Image.open(io.BytesIO(payload))
        if img.size[0] * img.size[1] > MAX_IMAGE_PIXELS:  # checked before decoding the pixels
            raise RequestError("INVALID_ARGUMENT", f"image is {img.size[0]}x{img.size[1]}; this server decodes at "
                               f"most {MAX_IMAGE_PIXELS:,} pixels", reason="BAD_PAYLOAD")
        arr = np.asarray(img.convert("L" if gray else "RGB"))
    except RequestError:
        raise
    except Exception as e:  # PIL raises many kinds for damaged files
        raise RequestError("INVALID_ARGUMENT", f"cannot decode the image: {type(e).__name__}: {e}",
                           reason="BAD_PAYLOAD") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    try:
        x = preprocess(arr)
    except Exception as e:  # the model's own code, on an image it may not expect
        raise RequestError("INVALID_ARGUMENT", f"the model's preprocess refused this {arr.shape[1]}x{arr.shape[0]} "
                           f"image: {type(e).__name__}: {e}", reason="BAD_PAYLOAD") from None
    x = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    if x.size != int(np.prod(input_shape)):
        raise RequestError("INVALID_ARGUMENT", f"the model's preprocess made {tuple(x.shape)} of this "
                           f"{arr.shape[1]}x{arr.shape[0]} image; the model takes (1, "
                           f"{', '.join(map(str, input_shape))})", reason="BAD_PAYLOAD")
    return np.asarray(x, dtype=np.float32).reshape(1, *input_shape)
