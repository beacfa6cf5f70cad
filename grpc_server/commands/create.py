"""`avatarforge create PORTRAIT`: build an avatar from a portrait into the store (or through --server)
and print its id; with --json, one JSON line with avatar_id and seconds."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from grpc_server.commands._common import UsageError, add_location_args, backend, progress_bar


def register(subparsers: argparse._SubParsersAction) -> None:
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


def run(args: argparse.Namespace) -> int:
    try:
        data = args.portrait.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read {args.portrait}: {e.strerror}") from None
    if args.avatarartist_weights:
        from avatar.generators.avatarartist import configure

        configure(args.avatarartist_weights)
    start = time.perf_counter()
    with progress_bar("create", enabled=not args.json) as update, backend(args) as where:
        avatar_id = where.create(data, args.generator, args.name, update)
    seconds = time.perf_counter() - start
    print(json.dumps({"avatar_id": avatar_id, "seconds": round(seconds, 3)}) if args.json else avatar_id)
    return 0
