"""The generated API modules (made by `make proto` into grpc_server/_proto), imported in one place."""
from __future__ import annotations

from grpc_server._proto.avatarforge.v1 import avatarforge_pb2 as pb
from grpc_server._proto.avatarforge.v1 import avatarforge_pb2_grpc as pb_grpc

__all__ = ["pb", "pb_grpc"]
