"""Pieces the create/render/demo commands share: store/server selection, progress bars, expressions."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from grpc_server.paths import default_store


def add_location_args(parser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--store", type=Path, default=None, help=f"avatar store directory (default: {default_store()})")
    where.add_argument("--server", metavar="ADDR", default=None, help="go through a running server at HOST:PORT")
    parser.add_argument("--token", default=None, help="bearer token for --server")


def store_root(args) -> Path:
    return args.store or default_store()


def parse_expressions(items: list[str]) -> dict[str, float]:
    """`NAME=W` pairs to a name->weight map (validated later by avatar.expressions)."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--expr takes NAME=WEIGHT, got {item!r}")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--expr {item!r}: weight is not a number") from None
    return out


@contextmanager
def progress_bar(description: str, enabled: bool = True):
    """A 0..100 % tqdm bar driven by generator-style progress(stage, fraction, message) calls."""
    bar = tqdm(total=100, desc=description, unit="%", disable=not enabled, file=sys.stderr,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}")

    def update(stage: str, fraction: float, message: str) -> None:
        bar.n = int(round(100 * max(0.0, min(1.0, fraction))))
        bar.set_postfix_str(f"{stage}: {message}", refresh=True)

    try:
        yield update
    finally:
        bar.close()


def fail(command: str, error: Exception) -> int:
    print(f"avatarforge {command}: {error}", file=sys.stderr)
    return 1
