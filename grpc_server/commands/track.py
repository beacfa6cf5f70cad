"""`avatarforge track CLIP -o anim.csv|anim.json`: track the face in a video clip (avatar.track) and write
its animation: a Live Link Face CSV (52 weights, head and eye rotations, timecodes at the clip's frame
rate) or the project's ARKit sequence JSON (one name -> weight map per frame, rotations included)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

from tqdm import tqdm

from grpc_server.commands._common import UsageError

OUTPUT_SUFFIXES = (".csv", ".json")


def register(subparsers) -> None:
    parser = subparsers.add_parser("track", help="track a face in a video clip into ARKit-52 animation",
                                   description=__doc__)
    parser.add_argument("clip", type=Path, help="video clip (mp4, mov, webm)")
    parser.add_argument("-o", "--out", type=Path, required=True,
                        help="output file: .csv (Live Link Face) or .json (ARKit sequence)")
    parser.add_argument("--no-smoothing", action="store_true", help="the per-frame fits without One-Euro smoothing")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


class _Bar:
    """A tqdm bar of the frames tracked; tqdm's rate is the tracking speed in frames per second."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar: tqdm[NoReturn] | None = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            self.bar = tqdm(total=total or None, desc="tracking", unit="frame", file=sys.stderr)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run(args) -> int:
    suffix = args.out.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise UsageError(f"-o must end in .csv (Live Link Face) or .json (ARKit sequence), got {args.out.name!r}")
    from avatar.track import track_clip
    from exporter.animation import from_track

    bar = _Bar(not args.quiet)
    try:
        track = track_clip(args.clip, progress=bar, smooth=not args.no_smoothing)
    finally:
        bar.close()
    animation = from_track(track)
    if suffix == ".csv":
        from exporter.livelink import write_livelink_csv

        data = write_livelink_csv(animation)
    else:
        from exporter.api import animation_frames_json

        data = animation_frames_json(animation)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(args.out)
    lost = int((~track.found).sum())
    print(f"tracked {track.num_frames} frames at {track.frame_rate:g} fps ({lost} without a face, interpolated) "
          f"-> {args.out}", file=sys.stderr)
    return 0
