"""Exceptions -> gRPC status codes with the exception's own sentence. The one mapping the service uses."""
from __future__ import annotations

import logging
from contextlib import contextmanager

import grpc

from avatar.asset import AssetError
from avatar.camera import CameraError
from avatar.expressions import ExpressionError
from avatar.generators.avatarartist.weights import WeightsUnavailable
from avatar.head_model.base import HeadModelError
from avatar.portrait.errors import PerceptionUnavailable, PortraitError
from grpc_server.convert import FrameOptionsError
from grpc_server.frames import FrameError
from grpc_server.limits import LimitExceeded
from grpc_server.store import AvatarNotFound, DamagedAvatar, InvalidPageToken, StoreError

log = logging.getLogger(__name__)


class ShuttingDown(Exception):
    def __init__(self, message: str = "the server is shutting down; retry on another replica or after restart"):
        super().__init__(message)


class Cancelled(Exception):
    """The caller went away (cancelled, deadline passed); the work stops without a reply."""


class InvalidRequest(ValueError):
    """A request field that is wrong in itself (missing `start`, unknown generator, ...)."""


_INVALID = (InvalidRequest, ExpressionError, CameraError, HeadModelError, FrameOptionsError, InvalidPageToken)
_extra_invalid: list[type[BaseException]] = []


def register_invalid_argument(*types: type[BaseException]) -> None:
    """Let optional components (the exporter) declare their bad-input exception types."""
    _extra_invalid.extend(t for t in types if t not in _extra_invalid)


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    message = str(exc) or type(exc).__name__
    if isinstance(exc, PortraitError):
        # Size and pixel limits on uploads are limits (like gRPC's own message size), not malformed input.
        code = grpc.StatusCode.RESOURCE_EXHAUSTED if exc.reason == "too_large" else grpc.StatusCode.INVALID_ARGUMENT
        return code, message
    if isinstance(exc, (PerceptionUnavailable, WeightsUnavailable)):
        return grpc.StatusCode.FAILED_PRECONDITION, message  # the server's models are missing: `make models`
    if isinstance(exc, AvatarNotFound):
        return grpc.StatusCode.NOT_FOUND, message
    if isinstance(exc, _INVALID) or isinstance(exc, tuple(_extra_invalid)):
        return grpc.StatusCode.INVALID_ARGUMENT, message
    if isinstance(exc, LimitExceeded):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, message
    if isinstance(exc, ShuttingDown):
        return grpc.StatusCode.UNAVAILABLE, message
    if isinstance(exc, Cancelled):
        return grpc.StatusCode.CANCELLED, message or "the call was cancelled"
    if isinstance(exc, (DamagedAvatar, AssetError)):
        return grpc.StatusCode.DATA_LOSS, message
    if isinstance(exc, (StoreError, FrameError)):
        return grpc.StatusCode.INTERNAL, message
    return grpc.StatusCode.INTERNAL, "internal error; the server log has the details"


@contextmanager
def rpc_errors(context: grpc.ServicerContext, what: str):
    """Turn any exception raised by a handler into an abort with the mapped status.

    `context.abort` raises an Exception subclass of its own; that one passes through untouched.
    """
    try:
        yield
    except GeneratorExit:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure must become a status, never a crash
        if context.code() not in (None, grpc.StatusCode.OK):
            raise  # already aborted with a status
        if not context.is_active() or isinstance(exc, Cancelled):
            remaining = context.time_remaining()
            if remaining is not None and remaining <= 0:
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before the work finished")
            context.abort(grpc.StatusCode.CANCELLED, "the call was cancelled")
        code, message = status_for(exc)
        if code == grpc.StatusCode.INTERNAL:
            log.exception("%s failed", what)
        else:
            log.info("%s refused: %s: %s", what, code.name, message)
        context.abort(code, message)
