"""FaceVerse coefficient vectors (what FaceVerse-family trackers write per frame) and their ARKit-52 view.

Four layouts exist in the wild; the vector length identifies the layout:

==========  =====================================================================================
length      blocks, in order
==========  =====================================================================================
490         id 150 | exp 52  | tex 251 | rot 3   | gamma 27 | trans 3 | eye 4          (FaceVerse v3)
609         id 150 | exp 171 | tex 251 | rot 3   | gamma 27 | trans 3 | eye 4          (Next3D)
610         id 150 | exp 171 | tex 251 | rot 3   | gamma 27 | trans 3 | eye 4 | scale 1 (AvatarArtist)
621         id 156 | exp 177 | tex 251 | gamma 27 | rot 3  | trans 3 | eye 4          (FaceVerse v4)
==========  =====================================================================================

Rotation is Euler x, y, z in radians composed as R = Rz·Ry·Rx. The 52-dim expression block of the
490 layout is FaceVerse v3's `exBase_52`, whose order is the canonical (alphabetical) ARKit order;
the 171/177-dim bases have no published correspondence to ARKit names, so `expression_52` needs a
caller-supplied (K, 52) mapping matrix for them rather than guessing one.
"""
from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from avatar.expressions import NUM_EXPRESSIONS


class FaceVerseCoeffError(ValueError):
    """FaceVerse coefficients that cannot be used; the message says which and why."""


# Block sizes per layout, in file order. "scale" only exists in the AvatarArtist layout.
LAYOUTS: dict[int, tuple[tuple[str, int], ...]] = {
    490: (("identity", 150), ("expression", 52), ("texture", 251), ("rotation", 3), ("gamma", 27),
          ("translation", 3), ("eye", 4)),
    609: (("identity", 150), ("expression", 171), ("texture", 251), ("rotation", 3), ("gamma", 27),
          ("translation", 3), ("eye", 4)),
    610: (("identity", 150), ("expression", 171), ("texture", 251), ("rotation", 3), ("gamma", 27),
          ("translation", 3), ("eye", 4), ("scale", 1)),
    621: (("identity", 156), ("expression", 177), ("texture", 251), ("gamma", 27), ("rotation", 3),
          ("translation", 3), ("eye", 4)),
}
SUPPORTED_LENGTHS = tuple(sorted(LAYOUTS))


@dataclass(frozen=True, eq=False)
class FaceVerseCoeffs:
    """One frame (arrays 1-D) or a sequence (arrays (frames, size)) of parsed coefficients."""

    identity: np.ndarray
    expression: np.ndarray
    texture: np.ndarray
    rotation: np.ndarray        # Euler x, y, z radians; R = Rz·Ry·Rx
    gamma: np.ndarray           # 27 spherical-harmonics lighting coefficients (9 per colour channel)
    translation: np.ndarray
    eye: np.ndarray             # [left down, left right, right down, right right] radians
    scale: np.ndarray | None    # AvatarArtist's extra scale (610 layout only)
    layout: int

    @property
    def is_sequence(self) -> bool:
        return self.expression.ndim == 2

    @property
    def num_frames(self) -> int:
        return self.expression.shape[0] if self.is_sequence else 1

    def rotation_matrix(self) -> np.ndarray:
        """(3, 3), or (frames, 3, 3) for a sequence: R = Rz·Ry·Rx of the Euler angles."""
        return euler_xyz_to_matrix(self.rotation)


def euler_xyz_to_matrix(angles: np.ndarray) -> np.ndarray:
    """FaceVerse's rotation convention: R = Rz(z)·Ry(y)·Rx(x), angles in radians, along the last axis."""
    a = np.asarray(angles, dtype=np.float64)
    x, y, z = a[..., 0], a[..., 1], a[..., 2]
    cx, sx, cy, sy, cz, sz = np.cos(x), np.sin(x), np.cos(y), np.sin(y), np.cos(z), np.sin(z)
    one, zero = np.ones_like(x), np.zeros_like(x)
    rx = np.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(a.shape[:-1] + (3, 3))
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(a.shape[:-1] + (3, 3))
    rz = np.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(a.shape[:-1] + (3, 3))
    rotation: np.ndarray = rz @ ry @ rx
    return rotation


def parse_coeffs(values: ArrayLike, source: str = "coefficients") -> FaceVerseCoeffs:
    """Split a 1-D vector or a (frames, D) array into its named blocks; `source` names it in errors."""
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise FaceVerseCoeffError(f"{source}: not a numeric array ({exc})") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise FaceVerseCoeffError(f"{source}: expected numbers, got an array of dtype {arr.dtype}")
    if arr.ndim not in (1, 2):
        raise FaceVerseCoeffError(f"{source}: expected a 1-D vector or a (frames, D) array, got shape {arr.shape}")
    if arr.ndim == 2 and arr.shape[0] == 0:
        raise FaceVerseCoeffError(f"{source}: the sequence has no frames")
    length = arr.shape[-1]
    if length not in LAYOUTS:
        raise FaceVerseCoeffError(
            f"{source}: a FaceVerse coefficient vector has {', '.join(map(str, SUPPORTED_LENGTHS))} values, "
            f"got {length}")
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise FaceVerseCoeffError(f"{source}: value at index {tuple(int(i) for i in bad)} is not finite")
    blocks: dict[str, np.ndarray] = {}
    start = 0
    for name, size in LAYOUTS[length]:
        # Copies so the frozen result never aliases the caller's buffer.
        blocks[name] = arr[..., start:start + size].copy()
        start += size
    scale = blocks.pop("scale", None)
    return FaceVerseCoeffs(scale=None if scale is None else scale[..., 0], layout=length, **blocks)


def _load_npy_bytes(data: bytes, source: str) -> np.ndarray:
    # np.load would otherwise fall back to treating unknown bytes as a pickle.
    if not bytes(data[:6]) == b"\x93NUMPY":
        raise FaceVerseCoeffError(f"{source}: not a .npy file (missing the NumPy header)")
    try:
        # np.load allocates the declared shape before reading: a header that claims more than the
        # file holds is refused here, not after a huge allocation.
        stream = io.BytesIO(data)
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(stream)
        declared = math.prod(shape) * dtype.itemsize
        if declared > len(data):
            raise FaceVerseCoeffError(f"{source}: truncated .npy file (its header declares shape {shape}, "
                                      f"{declared} bytes, but the file has {len(data)})")
        array: np.ndarray = np.load(io.BytesIO(data), allow_pickle=False)
        return array
    except FaceVerseCoeffError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy's header parser raises ValueError, SyntaxError, TokenError...
        if "pickle" in str(exc).lower():
            raise FaceVerseCoeffError(f"{source}: not a plain numeric .npy array (it holds pickled objects, "
                                      "which are refused)") from None
        raise FaceVerseCoeffError(f"{source}: truncated or unreadable .npy file ({exc})") from None


def coeffs_from_npy_bytes(data: bytes, source: str = "coefficients.npy") -> FaceVerseCoeffs:
    """Parse an in-memory .npy (1-D vector or (frames, D)); pickled content is refused, never executed."""
    return parse_coeffs(_load_npy_bytes(data, source), source)


def stack_frames(frames: list[tuple[str, bytes]]) -> FaceVerseCoeffs:
    """Several single-frame .npy payloads, in the given order, as one sequence of a single layout."""
    if not frames:
        raise FaceVerseCoeffError("no FaceVerse coefficient frames given")
    rows: list[np.ndarray] = []
    for name, data in frames:
        arr = _load_npy_bytes(data, name)
        if arr.ndim == 2 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != 1:
            raise FaceVerseCoeffError(f"{name}: each frame file must hold one 1-D vector, got shape {arr.shape}")
        parse_coeffs(arr, name)  # validates length and values with the file's own name in the message
        if rows and arr.shape != rows[0].shape:
            raise FaceVerseCoeffError(
                f"{name}: has {arr.shape[0]} values but {frames[0][0]} has {rows[0].shape[0]}; "
                "all frames of a sequence must share one layout")
        rows.append(arr.astype(np.float32))
    return parse_coeffs(np.stack(rows), frames[0][0] if len(frames) == 1 else f"{len(frames)} frame files")


def frame_files(directory: str | os.PathLike[str]) -> list[Path]:
    """The .npy files of a directory of per-frame coefficients, in name order (the frames' order); the
    one reader of such directories (the exporter's animation sources use it too)."""
    d = Path(directory)
    files = sorted(f for f in d.iterdir() if f.suffix.lower() == ".npy" and f.is_file())
    if not files:
        raise FaceVerseCoeffError(f"{d}: directory holds no .npy coefficient files")
    return files


def load_coeffs(path: str | os.PathLike[str]) -> FaceVerseCoeffs:
    """A .npy file (1-D or (frames, D)) or a directory of single-frame .npy files taken in name order."""
    p = Path(path)
    if p.is_dir():
        return stack_frames([(str(f), f.read_bytes()) for f in frame_files(p)])
    if not p.is_file():
        raise FaceVerseCoeffError(f"{p}: no such file or directory")
    return coeffs_from_npy_bytes(p.read_bytes(), str(p))


def expression_52(coeffs: FaceVerseCoeffs, mapping: np.ndarray | None = None) -> np.ndarray:
    """ARKit-52 weights in canonical order, (52,) or (frames, 52) float32, clipped into [0, 1].

    For the 490 layout the expression block already is ARKit-52 in canonical order. The 171- and
    177-dim bases of the other layouts are learned bases without ARKit meaning; converting them needs a
    `mapping` matrix of shape (K, 52) (weights = expression @ mapping), e.g. fitted by least squares
    between the two FaceVerse bases; without one this raises instead of inventing a correspondence.
    """
    exp = coeffs.expression
    k = exp.shape[-1]
    if mapping is None:
        if k != NUM_EXPRESSIONS:
            raise FaceVerseCoeffError(
                f"the {coeffs.layout} layout has a {k}-dim expression basis with no published mapping to the "
                f"ARKit-52 names; pass a ({k}, 52) mapping matrix, or use 490-layout (exp-52) coefficients")
        weights = exp
    else:
        m = np.asarray(mapping, dtype=np.float32)
        if m.shape != (k, NUM_EXPRESSIONS):
            raise FaceVerseCoeffError(f"mapping must have shape ({k}, 52) for this layout, got {m.shape}")
        if not np.all(np.isfinite(m)):
            raise FaceVerseCoeffError("mapping matrix contains non-finite values")
        weights = exp @ m
    clipped: np.ndarray = np.clip(weights, 0.0, 1.0).astype(np.float32)
    return clipped
