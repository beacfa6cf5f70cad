"""`avatarforge` / `python -m grpc_server.cli`: one argparse program whose subcommands are the modules
of grpc_server.commands listed in COMMANDS (each registers itself; see that package's docstring).

One error policy for every command: a failure prints `avatarforge COMMAND: <its sentence>` and exits
with status 1.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# One module of grpc_server.commands per line.
COMMANDS = [
    "bake",
    "create",
    "demo",
    "export",
    "render",
    "serve",
    "track",
    "view",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avatarforge", description="Portrait -> animatable 4D head avatar: serve, create, render, export.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in sorted(COMMANDS):
        importlib.import_module(f"grpc_server.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Rendering is many small tensor ops: one OpenMP thread beats two that synchronise per op (about 2x
    # on a 2-core machine). Said before any command loads torch; an explicit setting wins.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except Exception as exc:  # noqa: BLE001 - every failure ends as a sentence and status 1, never a traceback
        print(f"avatarforge {args.command}: {str(exc) or type(exc).__name__}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
