"""`avatarforge create PORTRAIT`: build an avatar from a portrait into the store (or through --server)
and print its id; with --json, one JSON line with avatar_id and seconds."""
from __future__ import annotations

import json
import time
from pathlib import Path

from grpc_server.commands._common import add_location_args, fail, progress_bar, store_root


def register(subparsers) -> None:
    parser = subparsers.add_parser("create", help="create an avatar from a portrait", description=__doc__)
    parser.add_argument("portrait", type=Path, help="PNG, JPEG or WebP portrait")
    add_location_args(parser)
    parser.add_argument("--generator", default="", help="generator name (default: projective)")
    parser.add_argument("--name", default="", help="display name stored with the avatar")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of the bare id")
    parser.add_argument("--avatarartist-weights", metavar="DIR", default="",
                        help="AvatarArtist weights folder for --generator avatarartist "
                             "(default: $AVATARFORGE_AVATARARTIST_WEIGHTS)")
    parser.set_defaults(func=run)


def run(args) -> int:
    try:
        data = args.portrait.read_bytes()
    except OSError as e:
        return fail("create", f"cannot read {args.portrait}: {e.strerror}")
    start = time.perf_counter()
    try:
        with progress_bar("create", enabled=not args.json) as update:
            avatar_id = _create(args, data, update)
    except Exception as e:  # every failure path already carries a sentence for the user
        return fail("create", e)
    seconds = time.perf_counter() - start
    print(json.dumps({"avatar_id": avatar_id, "seconds": round(seconds, 3)}) if args.json else avatar_id)
    return 0


def _create(args, data: bytes, update) -> str:
    if args.server:
        from grpc_server.client import AvatarForgeClient

        with AvatarForgeClient(args.server, token=args.token) as client:
            return client.create(data, generator=args.generator, display_name=args.name,
                                 progress=lambda p: update(p.stage, p.fraction, p.message))
    from avatar.generators import get_generator
    from avatar.generators.avatarartist import configure
    from grpc_server.store import AvatarStore

    if args.avatarartist_weights:
        configure(args.avatarartist_weights)
    avatar = get_generator(args.generator).create(data, progress=update, display_name=args.name)
    update("save", 1.0, "saving to the store")
    return AvatarStore(store_root(args)).create(avatar).avatar_id
