"""`avatarforge bake PORTRAITS_DIR -o OUT_DIR`: create and export an avatar for every portrait in a folder.

Resumable (inputs already done, or already failed with the same bytes, are skipped), keeps going past
bad files, writes OUT_DIR/report.json. Exit status 0 unless no portrait succeeded."""
from __future__ import annotations

import sys
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("bake", help="batch-bake a folder of portraits into engine assets",
                                   description=__doc__)
    parser.add_argument("portraits_dir", type=Path, help="folder of portrait images")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output folder (one subfolder per portrait)")
    parser.add_argument("--workers", type=int, default=1,
                        help="portraits baked at once in separate processes (default 1)")
    parser.add_argument("--formats", default="glb,tables", help="comma-separated: glb, tables, triplane")
    parser.add_argument("--texture-size", type=int, default=0, help="baked texture size (power of two, 256..4096)")
    parser.add_argument("--no-static", action="store_true", help="leave out the static parts (hair, ears, neck)")
    parser.add_argument("--generator", default="", help="generator: projective (default) or avatarartist (needs its weights folder)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from tqdm import tqdm

    from avatar.generators import DEFAULT_GENERATOR
    from exporter.bake import bake_folder, list_inputs
    from exporter.options import ExportOptions

    try:
        total = len(list_inputs(args.portraits_dir))
        values = {"include_static": not args.no_static}
        if args.texture_size:
            values["texture_size"] = args.texture_size
        options = ExportOptions(**values)
        formats = [f for f in args.formats.split(",") if f.strip()]
        with tqdm(total=total, unit="portrait", file=sys.stderr, dynamic_ncols=True) as bar:
            def on_result(result):
                bar.update(1)
                if result.status == "error":
                    bar.write(f"{result.input}: {result.error}", file=sys.stderr)

            report = bake_folder(args.portraits_dir, args.out, formats, options, args.workers, on_result,
                                 generator=args.generator or DEFAULT_GENERATOR)
    except ValueError as exc:
        print(f"avatarforge bake: {exc}", file=sys.stderr)
        return 1
    print(f"{report.summary()}; report: {args.out / 'report.json'}")
    return 0 if report.succeeded > 0 else 1
