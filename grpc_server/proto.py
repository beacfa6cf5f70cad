"""The generated API modules, imported in one place.

protoc's Python gRPC plugin writes `from avatarforge.v1 import avatarforge_pb2` (an absolute import
rooted at the proto include path), which does not resolve inside our `grpc_server._proto` package. When
the generated code has that import, the same module objects are registered under the names it asks
for, so the message classes are never loaded twice (protobuf would refuse the duplicate descriptor).
Generated with `-Igrpc_server/_proto=protos`, the import is already correct and this does nothing extra.
"""
from __future__ import annotations

import sys

import grpc_server._proto.avatarforge as _package
import grpc_server._proto.avatarforge.v1 as _v1
from grpc_server._proto.avatarforge.v1 import avatarforge_pb2 as pb

sys.modules.setdefault("avatarforge", _package)
sys.modules.setdefault("avatarforge.v1", _v1)
sys.modules.setdefault("avatarforge.v1.avatarforge_pb2", pb)

from grpc_server._proto.avatarforge.v1 import avatarforge_pb2_grpc as pb_grpc  # noqa: E402

__all__ = ["pb", "pb_grpc"]
