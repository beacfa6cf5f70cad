"""The C++ client's TrackFace call, live: engine_bindings/cpp's example program `track` command against a
server process (the astronaut photo as video frames: a real face; a grey frame: no face)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from bindings_helpers import astronaut_png, build_cpp_client, run, running_server
from PIL import Image

_FACE = re.compile(r"^face seq=(\d+) found=(\d) confidence=([\d.]+) yaw=(\S+) pitch=(\S+) roll=(\S+) "
                   r"jawOpen=(\S+) eyeBlinkLeft=(\S+) eyeBlinkRight=(\S+) dropped=(\d+)$", re.M)


@pytest.fixture(scope="module")
def cpp_binary() -> Path:
    return build_cpp_client()


@pytest.fixture(scope="module")
def server(cpp_binary, tmp_path_factory):
    root = tmp_path_factory.mktemp("track_cpp")
    with running_server(root / "store", root / "server.log") as address:
        yield address


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("frames")
    face = root / "face.jpg"
    Image.open(astronaut_png(root / "astronaut.png")).convert("RGB").crop((40, 0, 360, 320)).save(face, quality=90)
    grey = root / "grey.png"
    Image.fromarray(np.full((128, 128, 3), 120, np.uint8)).save(grey)
    bad = root / "bad.jpg"
    bad.write_bytes(b"this is not a picture")
    return {"face": face, "grey": grey, "bad": bad}


def test_track_face_from_cpp(cpp_binary, server, frames):
    proc = run([cpp_binary, "--address", server, "track", frames["face"], frames["face"], frames["grey"],
                frames["face"]])
    assert proc.returncode == 0, proc.stderr
    assert "channels: 52" in proc.stdout
    faces = _FACE.findall(proc.stdout)
    assert [int(f[0]) for f in faces] == [0, 1, 2, 3], proc.stdout
    assert [f[1] for f in faces] == ["1", "1", "0", "1"]
    assert float(faces[0][2]) > 0.3 and float(faces[2][2]) == 0.0
    assert all(abs(float(f[3])) < 0.5 for f in faces), "a frontal face: small yaw (radians)"


def test_track_latest_wins_from_cpp(cpp_binary, server, frames):
    proc = run([cpp_binary, "--address", server, "track", *[frames["face"]] * 10, "--latest-wins"])
    assert proc.returncode == 0, proc.stderr
    faces = _FACE.findall(proc.stdout)
    assert len(faces) + sum(int(f[9]) for f in faces) == 10
    assert int(faces[-1][0]) == 9


def test_track_bad_image_from_cpp(cpp_binary, server, frames):
    proc = run([cpp_binary, "--address", server, "track", frames["face"], frames["bad"]])
    assert proc.returncode == 1
    assert "INVALID_ARGUMENT" in proc.stderr and "image" in proc.stderr, proc.stderr
