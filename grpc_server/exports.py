"""The Export RPC's plumbing: request -> exporter call in a scratch directory -> files as checksummed chunks.

The exporter package provides `exporter.api.export(avatar, formats, options, animation_sources, out_dir,
progress) -> list of written paths relative to out_dir`, where `formats` are lowercase names ("glb",
"tables", "animation", "triplane"), `options` an `exporter.options.ExportOptions`, `animation_sources`
a list of (file_name, bytes) and `progress(stage, fraction, message)`. Until that module exists, the
RPC answers UNIMPLEMENTED.
"""
from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from typing import Iterator

from grpc_server.proto import pb
from grpc_server.errors import InvalidRequest

FORMAT_NAMES = {pb.GLB: "glb", pb.TABLES: "tables", pb.ANIMATION: "animation", pb.TRIPLANE: "triplane"}
MAX_CHUNK_BYTES = 1 << 20
UNAVAILABLE_MESSAGE = "exports arrive with the exporter: this server has no exporter.api module yet"


class ExporterMissing(Exception):
    pass


def exporter_api():
    """The exporter's entry module, or ExporterMissing when the exporter is not installed."""
    try:
        return importlib.import_module("exporter.api")
    except ModuleNotFoundError as e:
        if e.name in ("exporter", "exporter.api"):
            raise ExporterMissing(UNAVAILABLE_MESSAGE) from None
        raise


def formats_from_proto(values) -> list[str]:
    if not len(values):
        raise InvalidRequest("Export needs at least one format (GLB, TABLES, ANIMATION, TRIPLANE)")
    names: list[str] = []
    for v in values:
        if v not in FORMAT_NAMES:
            raise InvalidRequest(f"unknown export format {v}; use GLB, TABLES, ANIMATION or TRIPLANE")
        if FORMAT_NAMES[v] not in names:
            names.append(FORMAT_NAMES[v])
    return names


def options_from_proto(msg: pb.ExportOptions):
    """The exporter's options object; the proto's zero values mean the exporter's defaults."""
    from exporter.options import ExportOptions

    kwargs = {"include_static": not msg.without_static_parts, "target_normals": not msg.without_target_normals}
    if msg.texture_size:
        kwargs["texture_size"] = int(msg.texture_size)
    if msg.static_triangle_budget:
        kwargs["static_triangle_budget"] = int(msg.static_triangle_budget)
    if msg.frame_rate:
        kwargs["frame_rate"] = float(msg.frame_rate)
    return ExportOptions(**kwargs)


def animation_sources(values, formats: list[str]) -> list[tuple[str, bytes]]:
    sources = [(s.file_name, bytes(s.data)) for s in values]
    if "animation" in formats and not sources:
        raise InvalidRequest("ANIMATION export needs at least one animation_source (.npy, .csv or .json)")
    for name, _ in sources:
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise InvalidRequest(f"animation_source file_name {name!r} must be a plain file name such as take1.csv")
    return sources


def checked_paths(out_dir: Path, written) -> list[str]:
    """The exporter's relative paths, each confirmed to be a file inside out_dir."""
    root = out_dir.resolve()
    paths = []
    for rel in written:
        rel = str(rel)
        full = (root / rel).resolve()
        if root not in full.parents or not full.is_file():
            raise RuntimeError(f"the exporter reported {rel!r}, which is not a file inside its output directory")
        paths.append(full.relative_to(root).as_posix())
    return paths


def file_chunks(out_dir: Path, rel_path: str, chunk_bytes: int) -> Iterator[pb.FileChunk]:
    """A file as FileChunk messages; the last carries the sha256 and size (an empty file is one chunk)."""
    digest = hashlib.sha256()
    offset = 0
    with open(out_dir / rel_path, "rb") as f:
        block = f.read(chunk_bytes)
        while True:
            nxt = f.read(chunk_bytes) if block else b""
            digest.update(block)
            last = not nxt
            yield pb.FileChunk(path=rel_path, offset=offset, data=block, last=last,
                               sha256=digest.hexdigest() if last else "", size=offset + len(block) if last else 0)
            offset += len(block)
            if last:
                return
            block = nxt
