"""Who may talk to a `splitans serve` server, and who they are: TLS, bearer tokens, identities.

- **TLS**: the server's certificate chain and key (`server_credentials`); the client checks it
  against its root certificates (`channel_credentials`). With the clients' CA given to the
  server, every client must present a certificate that CA signed (mutual TLS).
- **Bearer tokens**: a token file (`read_tokens`: one token a line, optionally ``NAME TOKEN``)
  or an environment variable (`token_from_env`); the client sends ``authorization: Bearer T``
  with every call; `TokenInterceptor` refuses a call without a known token (UNAUTHENTICATED)
  before it reaches the service, comparing in constant time. The health service stays open, so
  a load balancer can probe without a token.
- **Identity** (`Auth.identify`): the token's name, else the client certificate's subject,
  else ``"anonymous"``. The codec registry keys ownership on it; fairness limits key on it too,
  or, for anonymous clients (who cannot be told apart), on their connection.

Importing this needs grpc only.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from typing import Dict, Iterable, NamedTuple, Optional, Sequence, Tuple, Union

import grpc

__all__ = ["Auth", "Identity", "TokenInterceptor", "channel_credentials", "is_loopback", "read_token", "read_tokens",
           "server_credentials", "target_host", "token_from_env"]

MIN_TOKEN_CHARS = 16
# Calls a load balancer makes without credentials.
OPEN_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})


def _pem(value: Union[str, bytes, "os.PathLike[str]", None], what: str) -> Optional[bytes]:
    """PEM bytes as given, or read from a path."""
    if value is None or isinstance(value, bytes):
        return value
    try:
        with open(value, "rb") as f:
            return f.read()
    except OSError as e:
        raise OSError(e.errno, f"{what}: {e.strerror}", os.fspath(value)) from None


def server_credentials(cert, key, client_ca=None) -> grpc.ServerCredentials:
    """TLS for the server: its certificate chain and private key (PEM bytes or paths); with
    `client_ca`, mutual TLS (a client without a certificate that CA signed is refused in the
    handshake)."""
    ca = _pem(client_ca, "the clients' CA")
    return grpc.ssl_server_credentials([(_pem(key, "the server's key"), _pem(cert, "the server's certificate"))],
                                       root_certificates=ca, require_client_auth=ca is not None)


def channel_credentials(root_certs=None, cert=None, key=None) -> grpc.ChannelCredentials:
    """TLS for the client: the roots it trusts (None: the system's), and its own certificate and
    key for mutual TLS."""
    if (cert is None) != (key is None):
        raise ValueError("a client certificate needs its key, and a key its certificate")
    return grpc.ssl_channel_credentials(root_certificates=_pem(root_certs, "the root certificates"),
                                        private_key=_pem(key, "the client's key"),
                                        certificate_chain=_pem(cert, "the client's certificate"))


def _check_token(token: str, where: str) -> str:
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token) or not token.isprintable():
        raise ValueError(f"{where}: a token is at least {MIN_TOKEN_CHARS} printable characters without spaces "
                         "(python -c 'import secrets; print(secrets.token_urlsafe(32))' makes one)")
    return token


def read_tokens(path: Union[str, "os.PathLike[str]"]) -> Dict[str, str]:
    """{name: token} from a token file: one token a line, or ``NAME TOKEN``; blank lines and
    lines starting with ``#`` skipped. A token without a name is named after its line."""
    tokens: Dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) > 2:
                raise ValueError(f"{path}:{number}: a line holds TOKEN or NAME TOKEN")
            name, token = (parts[0], parts[1]) if len(parts) == 2 else (f"line{number}", parts[0])
            _check_token(token, f"{path}:{number}")
            if name in tokens:
                raise ValueError(f"{path}:{number}: the name {name!r} twice")
            tokens[name] = token
    if not tokens:
        raise ValueError(f"{path}: no token in it")
    return tokens


def read_token(path: Union[str, "os.PathLike[str]"]) -> str:
    """The one token in a client's token file (a line ``TOKEN`` or ``NAME TOKEN``)."""
    tokens = read_tokens(path)
    if len(tokens) != 1:
        raise ValueError(f"{path}: a client's token file holds one token, not {len(tokens)}")
    return next(iter(tokens.values()))


def token_from_env(var: str) -> str:
    """The token in environment variable `var`."""
    token = os.environ.get(var)
    if not token:
        raise ValueError(f"the environment variable {var} holds no token")
    return _check_token(token.strip(), f"${var}")


def is_loopback(host: str) -> bool:
    """Whether listening on `host` reaches this machine only (``localhost``, 127.0.0.0/8, ::1)."""
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def target_host(target: str) -> str:
    """The host of a gRPC target (``HOST:PORT``, ``[V6]:PORT``, ``dns:///HOST:PORT``)."""
    t = target.rsplit("///", 1)[-1]
    if t.startswith("["):
        return t[: t.index("]") + 1] if "]" in t else t
    return t.rsplit(":", 1)[0] if t.count(":") == 1 else t


class Identity(NamedTuple):
    """Who a call comes from. `key` owns codecs (``token:NAME``, ``cert:SUBJECT`` or
    ``anonymous``); `fairness` is what per-client limits count on: the key of an authenticated
    client, the connection of an anonymous one."""

    key: str
    authenticated: bool
    connection: str

    @property
    def fairness(self) -> str:
        return self.key if self.authenticated else f"peer:{self.connection}"


def _bearer(metadata: Optional[Sequence[Tuple[str, Union[str, bytes]]]]) -> Optional[bytes]:
    for k, v in metadata or ():
        if k == "authorization":
            v = v.encode("latin-1") if isinstance(v, str) else v
            return v[7:] if v[:7].lower() == b"bearer " else b""
    return None


class Auth:
    """The server's authentication: `tokens` ({name: token}) and/or `mutual_tls` (clients
    present certificates). Neither: every client is ``anonymous``."""

    def __init__(self, tokens: Optional[Dict[str, str]] = None, mutual_tls: bool = False):
        # Kept as digests: the comparison runs over fixed-length values, and the tokens
        # themselves stay out of this object's repr and of any traceback.
        self._digests = [(name, hashlib.sha256(t.encode()).digest()) for name, t in (tokens or {}).items()]
        self.mutual_tls = mutual_tls

    @property
    def tokens(self) -> bool:
        return bool(self._digests)

    @property
    def authenticates(self) -> bool:
        return self.tokens or self.mutual_tls

    def token_name(self, metadata) -> Optional[str]:
        """The name of the token in `metadata`'s ``authorization: Bearer T``, or None. Every
        known token is compared, in constant time, whichever matches."""
        got = _bearer(metadata)
        if got is None:
            return None
        digest = hashlib.sha256(got).digest()
        found = None
        for name, want in self._digests:
            if hmac.compare_digest(digest, want) and found is None:
                found = name
        return found

    def identify(self, context) -> Identity:
        peer = context.peer() or ""
        if self._digests:
            name = self.token_name(context.invocation_metadata())
            if name is not None:
                return Identity(f"token:{name}", True, peer)
        if self.mutual_tls:
            props = context.auth_context() or {}
            subject = (props.get("x509_common_name") or props.get("x509_subject") or [b""])[0]
            if subject:
                return Identity(f"cert:{subject.decode('utf-8', 'replace')}", True, peer)
        return Identity("anonymous", False, peer)

    def interceptor(self) -> Optional["TokenInterceptor"]:
        return TokenInterceptor(self) if self._digests else None


def _refusing(handler, code: grpc.StatusCode, message: str):
    """A handler of `handler`'s kind that answers `code` without reading the request."""

    def refuse(request_or_iterator, context):
        context.abort(code, message)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse)
    return grpc.unary_unary_rpc_method_handler(refuse)


class TokenInterceptor(grpc.ServerInterceptor):
    """Refuses, before the service sees it, every call without a known bearer token
    (UNAUTHENTICATED), except the health service's. `refused` counts them."""

    def __init__(self, auth: Auth, open_methods: Iterable[str] = OPEN_METHODS):
        self.auth = auth
        self.open_methods = frozenset(open_methods)
        self.refused = 0

    def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method in self.open_methods:
            return continuation(handler_call_details)
        metadata = handler_call_details.invocation_metadata
        if self.auth.token_name(metadata) is not None:
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        if handler is None:  # an unknown method: gRPC answers UNIMPLEMENTED
            return None
        self.refused += 1
        missing = _bearer(metadata) is None
        return _refusing(handler, grpc.StatusCode.UNAUTHENTICATED,
                         "this server needs a bearer token (authorization: Bearer TOKEN)" if missing
                         else "the bearer token is not one this server knows")
