"""The embedded head model under hair of a given thickness, for the walls' tests (avatar.head_walls)."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from avatar.head_model import HeadModel
from avatar.head_walls import swept_mesh_volume
from avatar.surface_field import texel_centres


def hair_over_head(head: HeadModel, identity: np.ndarray, resolution: int, thickness: int, above: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(volume, hair) (R, R, R) bool [x, y, z]: the head swept through its expressions, with hair `thickness`
    voxels thick over it wherever y > `above` (box units)."""
    mesh = swept_mesh_volume(head, identity, resolution)
    y = texel_centres(resolution)[None, :, None]
    hair = ndimage.binary_dilation(mesh, iterations=thickness) & ~mesh & (y > above)
    return mesh | hair, hair
