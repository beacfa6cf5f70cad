"""The application's own errors.

Every domain error class of the product declares its status category in a `status` class attribute:
the name of a canonical status code (INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED, ...). Plain
strings, so declaring one needs no gRPC; `grpc_server.errors` looks the name up.
"""
from __future__ import annotations


class InvalidRequest(ValueError):
    """A request field that is wrong in itself (missing `start`, unknown generator, ...)."""

    status = "INVALID_ARGUMENT"


class Cancelled(Exception):
    """The caller went away (cancelled, deadline passed); the work stops without a reply."""

    status = "CANCELLED"


class ShuttingDown(Exception):
    """The service is stopping; the caller should retry on another replica or after the restart."""

    status = "UNAVAILABLE"

    def __init__(self, message: str = "the server is shutting down; retry on another replica or after restart"):
        super().__init__(message)
