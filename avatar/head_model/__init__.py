"""Head models: the embedded parametric head and the optional FaceVerse v3 loader, one interface."""
from avatar.head_model.base import (
    EYEBALL_PARTS,
    PART_ID,
    PART_NAMES,
    FaceVerseSource,
    HeadModel,
    HeadModelError,
    PartMasks,
)
from avatar.head_model.embedded import embedded_head_model
from avatar.head_model.faceverse import load_faceverse

__all__ = [
           "EYEBALL_PARTS",
           "PART_ID",
           "PART_NAMES",
           "FaceVerseSource",
           "HeadModel",
           "HeadModelError",
           "PartMasks",
           "embedded_head_model",
           "load_faceverse",
]
