"""Exceptions -> gRPC status codes with the exception's own sentence: a lookup, not a policy.

A domain error class declares its category in a `status` class attribute (a canonical code name,
see grpc_server.app.errors). The avatar package's errors do not carry one yet; their categories are
the table below, in the one place that knows them.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from avatar.asset import AssetError
from avatar.camera import CameraError
from avatar.expressions import ExpressionError
from avatar.faceverse_coeffs import FaceVerseCoeffError
from avatar.generators import GeneratorError
from avatar.generators.avatarartist.weights import WeightsUnavailable
from avatar.head_model.base import HeadModelError
from avatar.portrait.errors import PerceptionUnavailable, PortraitError
from avatar.track import ClipError
from grpc_server.app.errors import Cancelled, InvalidRequest, ShuttingDown

__all__ = ["Cancelled", "InvalidRequest", "ShuttingDown", "rpc_errors", "status_for"]

log = logging.getLogger(__name__)

# Checked in order: the first class an error is an instance of decides.
_AVATAR_STATUS: tuple[tuple[type[BaseException], str], ...] = (
    (PerceptionUnavailable, "FAILED_PRECONDITION"),  # the server's models are missing: `make models`
    (WeightsUnavailable, "FAILED_PRECONDITION"),
    (ExpressionError, "INVALID_ARGUMENT"),
    (CameraError, "INVALID_ARGUMENT"),
    (HeadModelError, "INVALID_ARGUMENT"),
    (GeneratorError, "INVALID_ARGUMENT"),
    (ClipError, "INVALID_ARGUMENT"),
    (FaceVerseCoeffError, "INVALID_ARGUMENT"),
    (AssetError, "DATA_LOSS"),
)
INTERNAL_MESSAGE = "internal error; the server log has the details"


def category(exc: BaseException) -> str | None:
    """The canonical status code name of a domain error; None for anything else (a bug)."""
    if isinstance(exc, PortraitError):
        # Size and pixel limits on uploads are limits (like gRPC's own message size), not malformed input.
        return "RESOURCE_EXHAUSTED" if exc.reason == "too_large" else "INVALID_ARGUMENT"
    declared = getattr(type(exc), "status", None)
    if isinstance(declared, str):
        return declared
    for kind, name in _AVATAR_STATUS:
        if isinstance(exc, kind):
            return name
    return None


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    name = category(exc)
    if name is None or (name == "INTERNAL" and not str(exc)):
        return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE
    message = str(exc) or type(exc).__name__
    if name == "CANCELLED":
        message = str(exc) or "the call was cancelled"
    return grpc.StatusCode[name], message


@contextmanager
def rpc_errors(context: grpc.ServicerContext, what: str) -> Iterator[None]:
    """Turn any exception raised by a handler into an abort with the mapped status.

    `context.abort` raises an Exception subclass of its own; that one passes through untouched.
    """
    try:
        yield
    except GeneratorExit:
        raise
    except Exception as exc:
        # ServicerContext.code() exists since grpcio 1.55; the stubs lack it.
        if context.code() not in (None, grpc.StatusCode.OK):  # type: ignore[attr-defined]
            raise  # already aborted with a status
        if not context.is_active() or isinstance(exc, Cancelled):
            remaining: float | None = context.time_remaining()  # None without a deadline
            if remaining is not None and remaining <= 0:
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before the work finished")
            context.abort(grpc.StatusCode.CANCELLED, "the call was cancelled")
        code, message = status_for(exc)
        if code == grpc.StatusCode.INTERNAL:
            log.exception("%s failed", what)
        else:
            log.info("%s refused: %s: %s", what, code.name, message)
        context.abort(code, message)
