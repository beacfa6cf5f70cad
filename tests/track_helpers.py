"""A short clip of a real avatar with a known head turn and blink, written by OpenCV's VideoWriter."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

# At 192 px the astronaut's left eye (turned a little away in her portrait) read about half open when shut,
# right at the blink reference's threshold: a change as small as the hair's edge flipped it.
SIZE = 256
FRAMES = 16
RATE = 30.0
BLINK_FRAMES = (7, 8, 9)


def orbit_yaws() -> np.ndarray:
    """Camera orbit yaw per frame (degrees): the head seen turning from one side to the other."""
    return np.linspace(12.0, -12.0, FRAMES)


def render_frames(avatar) -> list[np.ndarray]:
    from avatar import camera as cam
    from avatar.expressions import index_of
    from avatar.render import Renderer

    renderer = Renderer(avatar)
    frames = []
    for k, yaw in enumerate(orbit_yaws()):
        expression = np.zeros(52, np.float32)
        if k in BLINK_FRAMES:
            expression[[index_of("eyeBlinkLeft"), index_of("eyeBlinkRight")]] = 1.0
        result = renderer.render(cam.camera_vector(cam.Orbit(yaw_deg=float(yaw))), expression, size=SIZE)
        frames.append((np.clip(result.over((0.5, 0.5, 0.5)), 0, 1) * 255 + 0.5).astype(np.uint8))
    return frames


def write_clip(path: Path, frames: list[np.ndarray], rate: float = RATE, fourcc: str = "mp4v") -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), rate, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} into {path.suffix}"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def encode(frame: np.ndarray, ext: str = ".jpg") -> bytes:
    ok, data = cv2.imencode(ext, cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()
