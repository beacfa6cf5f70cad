"""Fixtures every area shares: the ../shared reference folder and one astronaut avatar per session."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "reference").is_dir():
        pytest.skip("../shared/reference is not beside this checkout")
    return SHARED


@pytest.fixture(scope="session")
def astronaut_png() -> bytes:
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="session")
def astronaut_avatar(astronaut_png):
    """The projective avatar of the astronaut, built once for the whole run."""
    from avatar.generators import get_generator

    return get_generator("projective").create(astronaut_png)


@pytest.fixture(scope="session")
def astronaut_prepared(astronaut_png):
    from avatar.portrait import prepare

    return prepare(astronaut_png)


@pytest.fixture(scope="session")
def synthetic():
    from avatar.synthetic import synthetic_avatar

    return synthetic_avatar(0)


def to_uint8(rgb) -> np.ndarray:
    return (np.clip(np.asarray(rgb), 0, 1) * 255 + 0.5).astype(np.uint8)
