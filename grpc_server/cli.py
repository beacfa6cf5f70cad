"""`avatarforge` / `python -m grpc_server.cli`: one argparse program whose subcommands are the modules
of grpc_server.commands (each registers itself; see that package's docstring)."""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

# Rendering is many small tensor ops: one OpenMP thread beats two that synchronise per op (about 2x
# on a 2-core machine). Set before any command imports torch; an explicit setting wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from grpc_server import commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avatarforge",
                                     description="Portrait -> animatable 4D head avatar: serve, create, render, export.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"{commands.__name__}.{info.name}")
        except Exception as e:  # noqa: BLE001 - one broken command must not take the others down
            print(f"avatarforge: command {info.name!r} is unavailable ({type(e).__name__}: {e})", file=sys.stderr)
            continue
        register = getattr(module, "register", None)
        if callable(register):
            register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    return int(func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
