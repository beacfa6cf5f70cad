"""The one export entry point used by the Export RPC, the CLI and batch baking.

Files written under `out_dir` (relative paths, returned in this order):
  glb        avatar.glb (head + morph targets + texture, static parts; with the animation when the
             "animation" format is asked for too)
  tables     blendshapes.json, blendshapes.csv, blendshapes.npz
  animation  animation/livelink.csv (Live Link Face), animation/frames.json (one name -> weight map per
             frame, with head/eye rotations under the Live Link column names)
  triplane   triplane/*.exr, triplane/decoder.bin, triplane/triplane.json
Everything is computed in memory first, so bad input raises ExportError before any file is written.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from avatar.asset import Avatar
from avatar.expressions import ARKIT_NAMES, LIVELINK_HEAD_COLUMNS
from avatar.head_model.base import HeadModel
from exporter.animation import Animation, eye_to_pose_columns
from exporter.glb import build_glb
from exporter.head_mesh import resolve_head_model
from exporter.livelink import write_livelink_csv
from exporter.options import ExportError, ExportOptions
from exporter.sources import from_sources
from exporter.tables import write_tables
from exporter.texture_bake import ColourFn
from exporter.triplane import export_triplane

FORMATS = ("glb", "tables", "animation", "triplane")
FORMAT_ALIASES = {"anim": "animation", "gltf": "glb", "table": "tables"}
Progress = Callable[[str, float, str], None]


def normalise_formats(formats: Iterable[str]) -> list[str]:
    """Format names (any case, aliases allowed) in the canonical order, without repeats."""
    wanted = set()
    for name in formats:
        key = FORMAT_ALIASES.get(str(name).strip().lower(), str(name).strip().lower())
        if key not in FORMATS:
            raise ExportError(f"unknown export format {name!r}; formats are {', '.join(FORMATS)} (or 'anim')")
        wanted.add(key)
    if not wanted:
        raise ExportError("no export format given")
    return [f for f in FORMATS if f in wanted]


def animation_frames_json(animation: Animation) -> bytes:
    """Frames as name -> weight maps (the JSON animation input format), rotations included when known."""
    frames = []
    eyes = eye_to_pose_columns(animation.eye) if animation.eye is not None else None
    for i in range(animation.num_frames):
        frame = {name: round(float(w), 7) for name, w in zip(ARKIT_NAMES, animation.weights[i])}
        if animation.head_rotation is not None:
            frame.update({c: round(float(v), 7) for c, v in zip(LIVELINK_HEAD_COLUMNS[:3], animation.head_rotation[i])})
        if eyes is not None:
            frame.update({c: round(float(v), 7) for c, v in zip(LIVELINK_HEAD_COLUMNS[3:], eyes[i])})
        frames.append(frame)
    return (json.dumps(frames, indent=1) + "\n").encode()


def _write(out_dir: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".partial")
        tmp.write_bytes(data)
        os.replace(tmp, target)


def export(avatar: Avatar, formats: Iterable[str], options: ExportOptions | None = None,
           animation_sources: list[tuple[str, bytes]] | None = None, out_dir: str | os.PathLike[str] = ".",
           progress: Progress | None = None, head: HeadModel | None = None,
           faceverse_mapping: np.ndarray | None = None, colour: ColourFn | None = None,
           density_grid: Callable[[int], np.ndarray] | None = None) -> list[str]:
    """Export `avatar` in the given formats into out_dir; returns the relative paths written.

    `head` defaults to the avatar's registered head model; `colour` and `density_grid` default to the
    avatar's renderer (callers with their own field evaluation, e.g. on a GPU, may pass theirs).
    `faceverse_mapping` is the optional (K, 52) matrix for 171/177-dim FaceVerse expressions.
    """
    report = progress or (lambda stage, fraction, message: None)
    options = options or ExportOptions()
    wanted = normalise_formats(formats)
    head = resolve_head_model(avatar, head)

    animation = None
    if "animation" in wanted:
        if not animation_sources:
            raise ExportError("the animation format needs an animation source (.npy, .csv or .json)")
        report("animation", 0.0, "reading the animation source")
        animation = from_sources(list(animation_sources), options.frame_rate, faceverse_mapping)

    files: dict[str, bytes] = {}
    if "glb" in wanted:
        files["avatar.glb"] = build_glb(avatar, options, head=head, animation=animation, colour=colour,
                                          density_grid=density_grid, progress=report)
    if "tables" in wanted:
        report("tables", 0.0, "blendshape tables")
        files.update(write_tables(avatar, head))
        report("tables", 1.0, "blendshape tables done")
    if animation is not None:
        files["animation/livelink.csv"] = write_livelink_csv(animation)
        files["animation/frames.json"] = animation_frames_json(animation)
        report("animation", 1.0, f"{animation.num_frames} frames at {animation.frame_rate:g} fps")
    if "triplane" in wanted:
        report("triplane", 0.0, "writing the planes")
        files.update(dict(sorted(export_triplane(avatar, head.model_id).items())))
        report("triplane", 1.0, "triplane done")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write(out, files)
    report("done", 1.0, f"{len(files)} files written")
    return list(files)
