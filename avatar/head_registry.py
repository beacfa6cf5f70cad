"""Head models by id, so an avatar (which stores its head model id and its own shape correction) finds its
mesh again.

The one registry of the process: the embedded head is always there; a FaceVerse head joins when the
product loads one (`use_head_model("faceverse:PATH")`, from `--head-model` on serve and create) or when
the AvatarArtist generator loads its own.
"""
from __future__ import annotations

import threading

from avatar.asset import Avatar
from avatar.head_model import HeadModel, HeadModelError, embedded_head_model, load_faceverse

HEAD_MODEL_KINDS = ("embedded", "faceverse:PATH")

_lock = threading.Lock()
_registered: dict[str, HeadModel] = {}


def register_head_model(model: HeadModel) -> None:
    """Make a loaded model (e.g. a user's FaceVerse file) resolvable by its id in this process."""
    with _lock:
        _registered[model.model_id] = model


def use_head_model(spec: str) -> HeadModel:
    """Load and register the head model `spec` names: "embedded", or "faceverse:PATH" (a FaceVerse v3
    .npy file). HeadModelError with a sentence for anything else or a file that cannot be used."""
    kind, _, path = spec.partition(":")
    if kind == "embedded" and not path:
        return embedded_head_model()
    if kind != "faceverse" or not path:
        raise HeadModelError(f"head model {spec!r} is not one of {', '.join(HEAD_MODEL_KINDS)}")
    model = load_faceverse(path)
    register_head_model(model)
    return model


def head_model_for(model_id: str) -> HeadModel:
    embedded = embedded_head_model()
    if model_id == embedded.model_id:
        return embedded
    with _lock:
        model = _registered.get(model_id)
    if model is None:
        raise HeadModelError(f"head model {model_id!r} is not available in this process; start it with "
                             f"--head-model faceverse:PATH for that model's file")
    return model


def head_for_avatar(avatar: Avatar, base: HeadModel | None = None) -> HeadModel:
    """The head an avatar wears: its model (`base`, else the one registered under its id; a corrected
    head counts as its model) with the avatar's own shape correction, when it carries one."""
    model = base.base_model if base is not None else head_model_for(avatar.head_model_id)
    return model if avatar.shape_offsets is None else model.personalised(avatar.shape_offsets)
