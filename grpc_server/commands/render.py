"""`avatarforge render AVATAR_ID -o OUT.png`: one frame of an avatar from a camera and an expression."""
from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from grpc_server.commands._common import add_location_args, backend, parse_expressions


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("render", help="render one frame of an avatar to PNG", description=__doc__)
    parser.add_argument("avatar_id")
    add_location_args(parser)
    parser.add_argument("--yaw", type=float, default=0.0, help="camera yaw in degrees (+ sees the subject's left)")
    parser.add_argument("--pitch", type=float, default=0.0, help="camera pitch in degrees (+ looks down)")
    parser.add_argument("--roll", type=float, default=0.0, help="camera roll in degrees")
    parser.add_argument("--expr", action="append", default=[], metavar="NAME=W",
                        help="ARKit blendshape weight, e.g. --expr jawOpen=0.8 (repeatable)")
    parser.add_argument("--size", type=int, default=512, help="output size in pixels (square)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output PNG (RGBA)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    expression = parse_expressions(args.expr)
    with backend(args) as where:
        rgba = where.render(args.avatar_id, args.yaw, args.pitch, args.roll, expression, args.size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgba).save(args.out)
    print(args.out)
    return 0
