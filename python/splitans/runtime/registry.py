"""The codecs a server holds, and whose they are: one registry for every backend.

The server's own codecs (``serve --codec``) are pinned: every client sees and uses them and none
is ever evicted. A codec a client uploads belongs to that client (its owner, named by
`auth.Identity.key`: a token's name, a client certificate's subject, or ``"anonymous"`` where the
server authenticates nobody). A client sees, uses and fetches only the pinned codecs and its own,
holds at most `per_client` of its own (its least recently used goes when it adds one more), and
cannot evict another client's: when the server holds `total` uploaded codecs, an upload of a new
one is refused instead. Two clients that upload the same bytes share the codec; it goes when
neither holds it any more.

Each codec has a handle, the first 8 bytes of its id read as a little-endian integer: a client
learns it once (Info, PutCodec, GetCodec) and sends it instead of the 64-hex id in every request.
The same codec has the same handle on every server, so a restarted server that lacks the codec
says so (CODEC_UNKNOWN) rather than decoding with another.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

from .._fitted import Codec
from .encodings import RequestError

__all__ = ["ANONYMOUS", "CodecRegistry", "handle_of"]

ANONYMOUS = "anonymous"


def handle_of(codec_id: str) -> int:
    """The codec's 8-byte handle: the first 8 bytes of its SHA-256 id, little-endian."""
    return int.from_bytes(bytes.fromhex(codec_id[:16]), "little")


class CodecRegistry:
    """Codecs by id and handle, with owners. Thread-safe.

    `shape`: the sample shape every codec must code (None: any). `per_client`: uploaded codecs
    one owner may hold; `total`: uploaded codecs the server holds at most."""

    def __init__(self, shape: Optional[Sequence[int]] = None, pinned: Iterable[Codec] = (), *, per_client: int = 16,
                 total: int = 256):
        if per_client < 1 or total < 1:
            raise ValueError(f"per_client and total must be at least 1, not {per_client} and {total}")
        self.shape = None if shape is None else tuple(shape)
        self.per_client, self.total = per_client, total
        self._codecs: Dict[str, Codec] = {}
        self._handles: Dict[int, str] = {}
        self._pinned: Set[str] = set()
        self._owners: Dict[str, Set[str]] = {}  # uploaded codec id -> owners
        self._held: Dict[str, "OrderedDict[str, None]"] = {}  # owner -> its codec ids, least recently used first
        self._lock = threading.Lock()
        self.default_id = ""
        for c in pinned:
            self.pin(c)

    # -- adding ----------------------------------------------------------------------------------
    def _check(self, codec: Codec) -> None:
        if self.shape is not None and tuple(codec.shape) != self.shape:
            raise RequestError("FAILED_PRECONDITION", f"codec {codec.id} codes samples of shape {codec.shape}; "
                               f"the activation here is {self.shape}")

    def _index(self, codec: Codec) -> None:
        h = handle_of(codec.id)
        other = self._handles.get(h)
        if other is not None and other != codec.id:  # 2^-64 by chance; refuse rather than confuse
            raise RequestError("FAILED_PRECONDITION", f"codec {codec.id} has the handle of codec {other} held here")
        self._handles[h] = codec.id
        self._codecs[codec.id] = codec

    def pin(self, codec: Codec) -> None:
        """Holds `codec` for every client, for good; the first pinned is the default."""
        self._check(codec)
        with self._lock:
            self._index(codec)
            self._pinned.add(codec.id)
            self._owners.pop(codec.id, None)
            self.default_id = self.default_id or codec.id

    def add(self, codec: Codec, owner: str) -> bool:
        """Holds `codec` for `owner`; returns whether `owner` could use it already. Raises
        `RequestError` (RESOURCE_EXHAUSTED, reason CODEC_QUOTA) when the server is full of
        other clients' codecs."""
        self._check(codec)
        with self._lock:
            if codec.id in self._pinned:
                return True
            held = self._held.setdefault(owner, OrderedDict())
            if codec.id in held:
                held.move_to_end(codec.id)
                return True
            if codec.id not in self._codecs:
                while len(held) >= self.per_client:  # the owner makes room among its own
                    self._release(owner, next(iter(held)))
                if len(self._owners) >= self.total:
                    raise RequestError("RESOURCE_EXHAUSTED", f"this server holds {self.total} uploaded codecs, its "
                                       "limit; use one it holds or try later", reason="CODEC_QUOTA")
                self._index(codec)
                self._owners[codec.id] = set()
            else:
                while len(held) >= self.per_client:
                    self._release(owner, next(iter(held)))
            self._owners[codec.id].add(owner)
            held[codec.id] = None
            return False

    def _release(self, owner: str, codec_id: str) -> None:
        self._held[owner].pop(codec_id, None)
        owners = self._owners.get(codec_id)
        if owners is None:
            return
        owners.discard(owner)
        if not owners:
            del self._owners[codec_id]
            del self._codecs[codec_id]
            self._handles.pop(handle_of(codec_id), None)

    # -- looking up ------------------------------------------------------------------------------
    def _visible(self, codec_id: str, owner: Optional[str]) -> bool:
        if codec_id in self._pinned:
            return True
        if owner is None:  # the server itself (a replica's cache, tests)
            return codec_id in self._codecs
        held = self._held.get(owner)
        if held is None or codec_id not in held:
            return False
        held.move_to_end(codec_id)
        return True

    def get(self, codec_id: str, owner: Optional[str] = None) -> Optional[Codec]:
        """The codec `owner` may use under this id (the default for ""), or None."""
        with self._lock:
            codec_id = codec_id or self.default_id
            return self._codecs[codec_id] if codec_id and self._visible(codec_id, owner) else None

    def by_handle(self, handle: int, owner: Optional[str] = None) -> Optional[Codec]:
        with self._lock:
            codec_id = self._handles.get(handle)
            return self._codecs[codec_id] if codec_id and self._visible(codec_id, owner) else None

    def ids(self, owner: Optional[str] = None) -> List[str]:
        """The ids `owner` sees: the pinned ones and its own (every one for None), sorted."""
        with self._lock:
            if owner is None:
                return sorted(self._codecs)
            return sorted(self._pinned | set(self._held.get(owner, ())))

    def uploaded(self) -> int:
        with self._lock:
            return len(self._owners)

    def __contains__(self, codec_id: str) -> bool:
        with self._lock:
            return codec_id in self._codecs

    def codec_from_upload(self, codec_id: str, data: bytes, owner: str) -> Tuple[Codec, bool]:
        """(codec, already known to `owner`) for uploaded bytes, checked to hash to `codec_id`
        (when given) and to code this server's activation."""
        from .._core import CorruptDataError

        try:
            codec = Codec.from_bytes(data)
        except CorruptDataError as e:
            raise RequestError("INVALID_ARGUMENT", f"CorruptDataError: {e}", reason="BAD_PAYLOAD") from None
        if codec_id and codec_id != codec.id:
            raise RequestError("INVALID_ARGUMENT", f"the codec bytes hash to {codec.id}, not {codec_id}",
                               reason="BAD_PAYLOAD")
        return codec, self.add(codec, owner)
