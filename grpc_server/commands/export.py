"""`avatarforge export AVATAR_ID -o DIR`: an avatar's engine assets (GLB, blendshape tables, animation,
triplane) from the local store or through --server (same files either way; a server's arrive as
checksummed chunks)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from exporter.options import ExportOptions
from grpc_server.commands._common import add_location_args, backend


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="export an avatar's assets into a directory", description=__doc__)
    parser.add_argument("avatar_id", help="the avatar's 64-hex id")
    add_location_args(parser)
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


def _options(args: argparse.Namespace) -> ExportOptions:
    """The flags as options; a flag left at 0 keeps the exporter's default."""
    defaults = ExportOptions()
    return ExportOptions(texture_size=args.texture_size or defaults.texture_size,
                         static_triangle_budget=args.static_budget or defaults.static_triangle_budget,
                         include_static=not args.no_static, target_normals=not args.no_target_normals,
                         frame_rate=args.frame_rate or defaults.frame_rate)


def _progress(stage: str, fraction: float, message: str) -> None:
    print(f"[{stage} {fraction * 100:3.0f}%] {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    # These load torch: imported when the command runs, not when the CLI starts (see _backend).
    from exporter.api import normalise_formats
    from exporter.sources import source_files

    named = [f for f in args.formats.split(",") if f.strip()]
    formats = normalise_formats(named + (["animation"] if args.anim else []))
    options = _options(args)
    sources = source_files(args.anim)
    with backend(args) as where:
        written = where.export(args.avatar_id, formats, options, sources, args.out, _progress)
    for rel in written:
        print(args.out / rel)
    print(f"exported {len(written)} files to {args.out}", file=sys.stderr)
    return 0
