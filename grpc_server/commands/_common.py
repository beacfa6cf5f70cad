"""Pieces the commands share: where they work (store or server), progress bars, expressions."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from grpc_server.commands._backend import Backend, open_backend
from grpc_server.paths import default_store


class UsageError(ValueError):
    """A command line that cannot be carried out; the message says why."""

    status = "INVALID_ARGUMENT"


def add_location_args(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--store", type=Path, default=None, help=f"avatar store directory (default: {default_store()})")
    where.add_argument("--server", metavar="ADDR", default=None, help="go through a running server at HOST:PORT")
    parser.add_argument("--token", default=None, help="bearer token for --server")
    parser.add_argument("--head-model", metavar="faceverse:PATH", default="",
                        help="with a local store: load a FaceVerse v3 .npy head model, so avatars wearing it render "
                             "and export and `create` fits it (a server takes its own --head-model)")


def store_root(args: argparse.Namespace) -> Path:
    return args.store or default_store()


@contextmanager
def backend(args: argparse.Namespace) -> Iterator[Backend]:
    """The backend the location arguments (add_location_args) name."""
    with open_backend(store_root(args), args.server, args.token, args.head_model) as chosen:
        yield chosen


def parse_expressions(items: list[str]) -> dict[str, float]:
    """`NAME=W` pairs to a name->weight map (validated later by avatar.expressions)."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--expr takes NAME=WEIGHT, got {item!r}")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise UsageError(f"--expr {item!r}: weight is not a number") from None
    return out


@contextmanager
def progress_bar(description: str, enabled: bool = True) -> Iterator[Callable[[str, float, str], None]]:
    """A 0..100 % tqdm bar driven by generator-style progress(stage, fraction, message) calls."""
    bar = tqdm(total=100, desc=description, unit="%", disable=not enabled, file=sys.stderr,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}")

    def update(stage: str, fraction: float, message: str) -> None:
        bar.n = round(100 * max(0.0, min(1.0, fraction)))
        bar.set_postfix_str(f"{stage}: {message}", refresh=True)

    try:
        yield update
    finally:
        bar.close()
