"""`avatarforge bake PORTRAITS_DIR -o OUT_DIR [--ray [ADDRESS]]`: create and export an avatar for every
portrait in a folder, in a local process pool or as one Ray task per portrait across a cluster.

Resumable (inputs already done, or already failed with the same bytes, are skipped), keeps going past
bad files, writes OUT_DIR/report.json and lists the portraits that failed with their error. Exit status 0
unless no portrait succeeded."""
from __future__ import annotations

import sys
import time
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("bake", help="batch-bake a folder of portraits into engine assets",
                                   description=__doc__)
    parser.add_argument("portraits_dir", type=Path, help="folder of portrait images")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output folder (one subfolder per portrait)")
    parser.add_argument("--workers", type=int, default=None,
                        help="portraits baked at once in separate local processes (default 1; not with --ray)")
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="bake on a Ray cluster, one task per portrait with one CPU each: ADDRESS is its head's "
                             "HOST:PORT (alone: RAY_ADDRESS, else a new local Ray instance); needs the ray extra")
    parser.add_argument("--formats", default="glb,tables", help="comma-separated: glb, tables, triplane")
    parser.add_argument("--texture-size", type=int, default=0, help="baked texture size (power of two, 256..4096)")
    parser.add_argument("--no-static", action="store_true", help="leave out the static parts (hair, ears, neck)")
    parser.add_argument("--generator", default="",
                        help="generator: projective (default) or avatarartist (needs its weights folder)")
    parser.set_defaults(func=run)


class _Progress:
    """The bar's postfix: done (baked or done before), failed, and portraits per minute over the ones
    this run worked on (skipped ones arrive at once and would inflate it)."""

    def __init__(self, bar):
        self.bar = bar
        self.done = self.failed = self.worked = 0
        self.started = time.perf_counter()

    def __call__(self, result) -> None:
        self.done += result.succeeded
        self.failed += result.failed
        if not result.status.startswith("skipped"):
            self.worked += 1
        if result.status == "error":
            self.bar.write(f"{result.input}: {result.error}", file=sys.stderr)
        minutes = (time.perf_counter() - self.started) / 60
        self.bar.set_postfix_str(f"done {self.done}, failed {self.failed}, {self.worked / max(minutes, 1e-9):.1f}/min",
                                 refresh=False)
        self.bar.update(1)


def run(args) -> int:
    from tqdm import tqdm

    from avatar.generators import DEFAULT_GENERATOR
    from exporter.bake import bake_folder, list_inputs
    from exporter.bake_ray import RayUnavailable  # Ray itself is imported only by a Ray bake
    from exporter.options import ExportOptions

    if args.ray is not None and args.workers is not None:
        print("avatarforge bake: --workers sets the local pool; with --ray every CPU of the cluster bakes",
              file=sys.stderr)
        return 2
    try:
        total = len(list_inputs(args.portraits_dir))
        values = {"include_static": not args.no_static}
        if args.texture_size:
            values["texture_size"] = args.texture_size
        options = ExportOptions(**values)
        formats = [f for f in args.formats.split(",") if f.strip()]
        generator = args.generator or DEFAULT_GENERATOR
        with tqdm(total=total, unit="portrait", file=sys.stderr, dynamic_ncols=True,
                  bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]") as bar:
            progress = _Progress(bar)
            if args.ray is None:
                report = bake_folder(args.portraits_dir, args.out, formats, options, args.workers or 1, progress,
                                     generator=generator)
            else:
                report = _bake_on_ray(args, formats, options, generator, progress, bar)
    except (ValueError, RayUnavailable) as exc:
        print(f"avatarforge bake: {exc}", file=sys.stderr)
        return 1
    print(f"{report.summary()}; report: {args.out / 'report.json'}")
    for result in report.results:
        if result.failed:
            print(f"  failed: {result.input}: {result.error}")
    return 0 if report.succeeded > 0 else 1


def _bake_on_ray(args, formats, options, generator, progress, bar):
    from exporter.bake_ray import bake_folder_ray

    def connected(cluster) -> None:
        bar.write(f"ray: {cluster.nodes} node(s), {cluster.cpus} CPU(s) at {cluster.address}", file=sys.stderr)
        progress.started = time.perf_counter()  # the rate is the cluster's, not the connection's

    return bake_folder_ray(args.portraits_dir, args.out, formats, options, address=args.ray or None,
                           on_result=progress, generator=generator, on_connected=connected)
