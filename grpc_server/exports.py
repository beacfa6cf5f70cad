"""Export messages <-> the exporter's and the application's types: the one ExportOptions <-> proto
mapping (the service reads it, the CLI's `--server` mode writes it), formats, animation sources, chunks."""
from __future__ import annotations

from collections.abc import Iterable

from exporter.options import ExportOptions
from exporter.sources import AnimationSource
from grpc_server.app.application import check_animation_sources
from grpc_server.app.errors import InvalidRequest
from grpc_server.app.exports import Chunk
from grpc_server.proto import pb

FORMAT_NAMES: dict[int, str] = {pb.GLB: "glb", pb.TABLES: "tables", pb.ANIMATION: "animation", pb.TRIPLANE: "triplane"}
FORMAT_VALUES = {name: value for value, name in FORMAT_NAMES.items()}


def formats_from_proto(values: Iterable[int]) -> list[str]:
    names: list[str] = []
    for v in values:
        if v not in FORMAT_NAMES:
            raise InvalidRequest(f"unknown export format {v}; use GLB, TABLES, ANIMATION or TRIPLANE")
        if FORMAT_NAMES[v] not in names:
            names.append(FORMAT_NAMES[v])
    if not names:
        raise InvalidRequest("Export needs at least one format (GLB, TABLES, ANIMATION, TRIPLANE)")
    return names


def options_from_proto(msg: pb.ExportOptions) -> ExportOptions:
    """The exporter's options; the proto's zero values mean the exporter's defaults."""
    defaults = ExportOptions()
    return ExportOptions(texture_size=int(msg.texture_size or defaults.texture_size),
                         static_triangle_budget=int(msg.static_triangle_budget or defaults.static_triangle_budget),
                         include_static=not msg.without_static_parts, target_normals=not msg.without_target_normals,
                         frame_rate=float(msg.frame_rate or defaults.frame_rate))


def options_to_proto(options: ExportOptions) -> pb.ExportOptions:
    """The message whose `options_from_proto` is `options` (density_resolution has no field: the
    server's default applies)."""
    return pb.ExportOptions(texture_size=options.texture_size, static_triangle_budget=options.static_triangle_budget,
                            without_static_parts=not options.include_static,
                            without_target_normals=not options.target_normals, frame_rate=options.frame_rate)


def animation_sources(values: Iterable[pb.AnimationSource], formats: list[str]) -> list[AnimationSource]:
    sources = [(s.file_name, bytes(s.data)) for s in values]
    check_animation_sources(sources, formats)
    return sources


def chunk_message(chunk: Chunk) -> pb.FileChunk:
    return pb.FileChunk(path=chunk.path, offset=chunk.offset, data=chunk.data, last=chunk.last,
                        sha256=chunk.sha256, size=chunk.size)
