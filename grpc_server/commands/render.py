"""`avatarforge render AVATAR_ID -o OUT.png`: one frame of an avatar from a camera and an expression."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from grpc_server.commands._common import add_location_args, fail, parse_expressions, store_root


def register(subparsers) -> None:
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


def run(args) -> int:
    try:
        expression = parse_expressions(args.expr)
        rgba = _render(args, expression)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgba).save(args.out)
    except Exception as e:  # every failure path already carries a sentence for the user
        return fail("render", e)
    print(args.out)
    return 0


def _render(args, expression: dict) -> np.ndarray:
    if args.server:
        from grpc_server.client import AvatarForgeClient

        with AvatarForgeClient(args.server, token=args.token) as client:
            return client.render(args.avatar_id, yaw=args.yaw, pitch=args.pitch, roll=args.roll,
                                 expression=expression or None, size=args.size)
    from avatar import camera
    from avatar.render import Renderer
    from grpc_server.store import AvatarStore

    avatar = AvatarStore(store_root(args)).load(args.avatar_id)
    cam = camera.camera_vector(yaw_deg=args.yaw, pitch_deg=args.pitch, roll_deg=args.roll)
    return Renderer(avatar).render(cam, expression or None, size=args.size).rgba8()
