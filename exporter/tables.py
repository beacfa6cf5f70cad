"""Blendshape tables: blendshapes.json / .csv (names in every order, indices, regions, sizes) and .npz deltas.

The JSON schema is the one the C# and C++ bindings parse (see the team contract); the CSV has the
same per-target columns in the same order. The NPZ holds the deltas in metres on glTF axes, which are
the project's world axes scaled by the head model's metres_per_unit.
"""
from __future__ import annotations

import csv
import io
import json
import zipfile
from typing import Any

import numpy as np

from avatar.asset import Avatar
from avatar.expressions import (
    ARKIT_NAMES,
    CANONICAL_TO_LIVELINK,
    CANONICAL_TO_UNREAL,
    LIVELINK_NAMES,
    UNREAL_NAMES,
)
from avatar.head_model.base import HeadModel

SCHEMA_VERSION = 1
TARGET_COLUMNS = ("canonical_index", "arkit_name", "unreal_name", "unreal_index", "livelink_column",
                  "faceverse_exp52_index", "glb_morph_index", "region", "max_displacement_m")
# Live Link Face rows start with Timecode and BlendShapeCount before the first blendshape column.
LIVELINK_FIRST_BLENDSHAPE_COLUMN = 2
_AREAS = ("brow", "cheek", "eye", "jaw", "mouth", "nose", "tongue")
# A region whose centroid is within this fraction of the head's half-width of x = 0 is central.
_CENTRE_FRACTION = 0.05
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _region(name: str, head: HeadModel, k: int) -> str:
    """'<area>.<side>': area from the ARKit name, side (subject's left = +x) from the region's vertices."""
    area = next(a for a in _AREAS if name.startswith(a))
    mask = head.expression_regions[k]
    if not mask.any():
        return f"{area}.none"
    half_width = float(np.abs(head.vertices[:, 0]).max()) or 1.0
    x = float(head.vertices[mask, 0].mean())
    side = "center" if abs(x) <= _CENTRE_FRACTION * half_width else ("left" if x > 0 else "right")
    return f"{area}.{side}"


def target_rows(head: HeadModel) -> list[dict[str, Any]]:
    mpu = float(head.metres_per_unit)
    rows = []
    for k, name in enumerate(ARKIT_NAMES):
        unreal_index = int(CANONICAL_TO_UNREAL[k])
        livelink_index = int(CANONICAL_TO_LIVELINK[k])
        displacement = float(np.linalg.norm(head.expression_basis[k], axis=1).max(initial=0.0)) * mpu
        rows.append({
            "canonical_index": k,
            "arkit_name": name,
            "unreal_name": UNREAL_NAMES[unreal_index],
            "unreal_index": unreal_index,
            "livelink_column": LIVELINK_FIRST_BLENDSHAPE_COLUMN + livelink_index,
            "faceverse_exp52_index": k,   # FaceVerse v3's exBase_52 order is the canonical order
            "glb_morph_index": k,         # the GLB's morph targets are written in canonical order
            "region": _region(name, head, k),
            "max_displacement_m": round(displacement, 9),
        })
    return rows


def blendshapes_json(avatar: Avatar, head: HeadModel) -> bytes:
    doc = {
        "schema_version": SCHEMA_VERSION,
        "avatar_id": avatar.avatar_id,
        "head_model_id": head.model_id,
        "units": "metres",
        "orders": {"canonical": list(ARKIT_NAMES), "unreal": list(UNREAL_NAMES), "livelink": list(LIVELINK_NAMES)},
        "targets": target_rows(head),
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


def blendshapes_csv(head: HeadModel) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=TARGET_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(target_rows(head))
    return buf.getvalue().encode()


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz readable by np.load, with fixed zip timestamps so equal arrays give equal bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(arrays[key], order="C"), allow_pickle=False)
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def blendshapes_npz(avatar: Avatar, head: HeadModel) -> bytes:
    mpu = np.float32(head.metres_per_unit)
    return npz_bytes({
        "deltas": (head.expression_basis * mpu).astype(np.float32),
        "names": np.array(ARKIT_NAMES),
        "neutral_vertices": (head.posed(None, avatar.identity) * mpu).astype(np.float32),
        "faces": head.faces.astype(np.int32),
        "metres_per_unit": np.array(head.metres_per_unit, np.float64),
    })


def write_tables(avatar: Avatar, head: HeadModel) -> dict[str, bytes]:
    """The three table files by name."""
    return {
        "blendshapes.json": blendshapes_json(avatar, head),
        "blendshapes.csv": blendshapes_csv(head),
        "blendshapes.npz": blendshapes_npz(avatar, head),
    }
