"""`avatarforge export AVATAR_ID -o DIR`: bake an avatar's assets (GLB, blendshape tables, animation, triplane)
from a local store, or from a running server with --server (files arrive as checksummed chunks)."""
from __future__ import annotations

import sys
from pathlib import Path

from grpc_server.paths import default_store


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export an avatar's assets into a directory", description=__doc__)
    parser.add_argument("avatar_id", help="the avatar's 64-hex id")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--store", type=Path, default=None,
                       help=f"avatar store directory (default: {default_store()})")
    where.add_argument("--server", metavar="ADDR", default=None,
                       help="export through a running server at HOST:PORT instead of a local store")
    parser.add_argument("--token", default=None, help="bearer token for --server")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output directory")
    parser.add_argument("--formats", default="glb,tables",
                        help="comma-separated: glb, tables, anim (animation), triplane (default: glb,tables)")
    parser.add_argument("--anim", action="append", type=Path, default=[], metavar="FILE",
                        help="animation source: FaceVerse .npy (or a directory of .npy frames), Live Link Face "
                             ".csv, .json, or a video clip (.mp4, .mov, .webm: the face in it is tracked); "
                             "repeat for several .npy frames in order; implies the anim format")
    parser.add_argument("--texture-size", type=int, default=0, help="baked texture size (power of two, 256..4096)")
    parser.add_argument("--static-budget", type=int, default=0, help="triangle budget of the static parts mesh")
    parser.add_argument("--no-static", action="store_true", help="leave out the static parts (hair, ears, neck)")
    parser.add_argument("--no-target-normals", action="store_true", help="morph targets without NORMAL deltas")
    parser.add_argument("--frame-rate", type=float, default=0.0, help="animation frames per second (default 30)")
    parser.set_defaults(func=run)


def _animation_sources(paths: list[Path]) -> list[tuple[str, bytes]]:
    sources = []
    for p in paths:
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() == ".npy")
            if not files:
                raise ValueError(f"{p}: directory holds no .npy frames")
            sources.extend((f.name, f.read_bytes()) for f in files)
        elif p.is_file():
            sources.append((p.name, p.read_bytes()))
        else:
            raise ValueError(f"{p}: no such animation file")
    return sources


def _formats(args) -> list[str]:
    from exporter.api import normalise_formats

    names = [f for f in args.formats.split(",") if f.strip()]
    if args.anim:
        names.append("animation")
    return normalise_formats(names)


def _option_values(args) -> dict:
    values = {"include_static": not args.no_static, "target_normals": not args.no_target_normals}
    if args.texture_size:
        values["texture_size"] = args.texture_size
    if args.static_budget:
        values["static_triangle_budget"] = args.static_budget
    if args.frame_rate:
        values["frame_rate"] = args.frame_rate
    return values


def _progress(stage: str, fraction: float, message: str) -> None:
    print(f"[{stage} {fraction * 100:3.0f}%] {message}", file=sys.stderr, flush=True)


def _export_local(args, formats, sources) -> list[str]:
    from avatar.asset import load_avatar
    from exporter.api import export
    from exporter.options import ExportOptions

    store = args.store or default_store()
    directory = store / args.avatar_id
    if not directory.is_dir():
        raise ValueError(f"avatar {args.avatar_id} is not in the store {store}")
    avatar = load_avatar(directory)
    return export(avatar, formats, ExportOptions(**_option_values(args)), sources, args.out, _progress)


def _export_remote(args, formats, sources) -> list[str]:
    from grpc_server.client import AvatarForgeClient, ClientError

    options = _option_values(args)
    proto_options = {"without_static_parts": not options["include_static"],
                     "without_target_normals": not options["target_normals"],
                     "texture_size": options.get("texture_size", 0),
                     "static_triangle_budget": options.get("static_triangle_budget", 0),
                     "frame_rate": options.get("frame_rate", 0.0)}
    try:
        with AvatarForgeClient(args.server, token=args.token) as client:
            written = client.export(args.avatar_id, formats, args.out, options=proto_options, animation=sources,
                                    progress=lambda p: _progress(p.stage, p.fraction, p.message))
    except ClientError as exc:
        raise ValueError(f"server {args.server}: {exc}") from None
    return [Path(p).relative_to(args.out).as_posix() for p in written]


def run(args) -> int:
    try:
        formats = _formats(args)
        sources = _animation_sources(args.anim)
        written = (_export_remote if args.server else _export_local)(args, formats, sources)
    except ValueError as exc:  # ExportError, AssetError, ... are ValueErrors with a sentence
        print(f"avatarforge export: {exc}", file=sys.stderr)
        return 1
    for rel in written:
        print(args.out / rel)
    print(f"exported {len(written)} files to {args.out}", file=sys.stderr)
    return 0
