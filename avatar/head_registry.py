"""Head models by id, so an avatar (which stores its head model id and its own shape correction) finds its
mesh again."""
from __future__ import annotations

import threading

from avatar.head_model import HeadModel, HeadModelError, embedded_head_model

_lock = threading.Lock()
_registered: dict[str, HeadModel] = {}


def register_head_model(model: HeadModel) -> None:
    """Make a loaded model (e.g. a user's FaceVerse file) resolvable by its id in this process."""
    with _lock:
        _registered[model.model_id] = model


def head_model_for(model_id: str) -> HeadModel:
    embedded = embedded_head_model()
    if model_id == embedded.model_id:
        return embedded
    with _lock:
        model = _registered.get(model_id)
    if model is None:
        raise HeadModelError(f"head model {model_id!r} is not available in this process (load it first)")
    return model


def head_for_avatar(avatar, base: HeadModel | None = None) -> HeadModel:
    """The head an avatar wears: its model (`base`, else the one registered under its id; a corrected
    head counts as its model) with the avatar's own shape correction, when it carries one."""
    model = base.base_model if base is not None else head_model_for(avatar.head_model_id)
    offsets = getattr(avatar, "shape_offsets", None)
    return model if offsets is None else model.personalised(offsets)
