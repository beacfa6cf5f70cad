"""Bearer-token authentication as a server interceptor (metadata `authorization: Bearer <token>`)."""
from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import grpc

# Health stays open so load balancers and orchestrators can probe without a secret.
OPEN_PREFIXES = ("/grpc.health.v1.Health/",)


class TokenFileError(ValueError):
    pass


def load_tokens(path: str | os.PathLike) -> list[str]:
    """One token per line; blank lines and lines starting with '#' are ignored."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise TokenFileError(f"cannot read token file {p}: {e.strerror or e}") from None
    tokens = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not tokens:
        raise TokenFileError(f"token file {p} contains no tokens")
    bad = [i for i, t in enumerate(tokens) if any(c.isspace() for c in t)]
    if bad:
        raise TokenFileError(f"token file {p}: token {bad[0] + 1} contains whitespace")
    return tokens


def client_identity(context: grpc.ServicerContext) -> str:
    """Who is calling, for per-client limits: a digest of the bearer token when one is sent (one team's
    tools share a token), else the peer's address without its port."""
    for key, value in context.invocation_metadata() or ():
        if key.lower() == "authorization":
            token = value if isinstance(value, str) else value.decode("latin-1")
            return "token:" + hashlib.sha256(token.strip().encode()).hexdigest()[:16]
    peer = context.peer() or "unknown"
    host, sep, port = peer.rpartition(":")
    return host if sep and port.isdigit() and host.count(":") >= 1 else peer


def _token_ok(presented: str, tokens: list[bytes]) -> bool:
    given = presented.encode()
    ok = False
    # Compare against every token without short-circuiting, so timing reveals neither which nor how many.
    for t in tokens:
        ok |= hmac.compare_digest(given, t)
    return ok


def _abort_handler(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    def abort(request_or_iterator, context):
        context.abort(code, message)

    if handler is None:
        return grpc.unary_unary_rpc_method_handler(abort)
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort, handler.request_deserializer, handler.response_serializer)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort, handler.request_deserializer, handler.response_serializer)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort, handler.request_deserializer, handler.response_serializer)
    return grpc.unary_unary_rpc_method_handler(abort, handler.request_deserializer, handler.response_serializer)


class BearerTokenInterceptor(grpc.ServerInterceptor):
    def __init__(self, tokens: list[str]):
        if not tokens:
            raise ValueError("BearerTokenInterceptor needs at least one token")
        self._tokens = [t.encode() for t in tokens]

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method or ""
        if method.startswith(OPEN_PREFIXES):
            return continuation(handler_call_details)
        header = ""
        for key, value in handler_call_details.invocation_metadata or ():
            if key.lower() == "authorization":
                header = value if isinstance(value, str) else value.decode("latin-1")
                break
        if not header:
            return _abort_handler(continuation(handler_call_details), grpc.StatusCode.UNAUTHENTICATED,
                                  "missing credentials: send metadata 'authorization: Bearer <token>'")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not _token_ok(token.strip(), self._tokens):
            return _abort_handler(continuation(handler_call_details), grpc.StatusCode.UNAUTHENTICATED,
                                  "invalid credentials: the bearer token is not accepted by this server")
        return continuation(handler_call_details)
