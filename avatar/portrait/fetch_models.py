"""`python -m avatar.portrait.fetch_models [fetch|path]`: install or locate the MediaPipe model cache.

A module of its own so that `python -m` does not re-import the cache module the package already loaded.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import PerceptionUnavailable
from .models import MODEL_DIR_ENV, fetch, model_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m avatar.portrait.fetch_models",
                                     description="MediaPipe model cache for portrait perception.")
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("fetch", help="download the mediapipe wheel and install its models into the cache")
    get.add_argument("--dir", type=Path, default=None, help=f"cache directory (default: ${MODEL_DIR_ENV} or "
                                                            f"~/.cache/avatarforge/models/...)")
    get.add_argument("--wheel", type=Path, default=None, help="use this local mediapipe wheel instead of pip")
    sub.add_parser("path", help="print the cache directory")
    args = parser.parse_args(argv)
    if args.command == "path":
        print(model_dir())
        return 0
    try:
        print(fetch(args.dir, args.wheel))
    except PerceptionUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
