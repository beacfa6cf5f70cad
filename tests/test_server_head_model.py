"""`--head-model faceverse:PATH`: the one way the product loads a FaceVerse head. Avatars wearing it
render and export through a server started with it, and through the CLI's local store; without it
they are refused with a sentence that says what to do."""
from __future__ import annotations

import json
import subprocess
import sys

import grpc
import numpy as np
import pytest
from head_model_helpers import faceverse_dict, write_npy_dict
from server_helpers import ROOT, SERVING, ServerProcess

from avatar.asset import save_avatar
from avatar.head_model import embedded_head_model, load_faceverse
from avatar.synthetic import synthetic_avatar
from grpc_server.cli import main
from grpc_server.client import ClientError

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def faceverse(tmp_path_factory):
    """A FaceVerse v3 file (built from the embedded head, in FaceVerse's own units) and a store holding
    one avatar that wears it."""
    root = tmp_path_factory.mktemp("faceverse")
    path = write_npy_dict(root / "faceverse_v3.npy", faceverse_dict(embedded_head_model()))
    model = load_faceverse(path)
    avatar = synthetic_avatar(0, head=model)
    save_avatar(avatar, root / "store")
    return path, model.model_id, avatar.avatar_id, root / "store"


def test_a_server_with_the_head_model_renders_and_exports_its_avatars(faceverse, tmp_path):
    path, model_id, avatar_id, store = faceverse
    plain = ServerProcess(store)
    try:
        with plain.client() as c, pytest.raises(ClientError) as e:
            c.render(avatar_id, size=32)
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert model_id in e.value.message and "--head-model faceverse:PATH" in e.value.message
    finally:
        assert plain.stop() == 0, plain.log()
    served = ServerProcess(store, "--head-model", f"faceverse:{path}")
    try:
        with served.client() as c:
            assert c.get(avatar_id).head_model_id == model_id
            rgba = c.render(avatar_id, size=48, encoding="raw")
            assert (rgba[..., 3] > 0).mean() > 0.2
            c.export(avatar_id, ["tables"], tmp_path / "out")
        table = json.loads((tmp_path / "out" / "blendshapes.json").read_text())
        assert table["avatar_id"] == avatar_id and len(table["targets"]) == 52
        assert served.health() == SERVING
    finally:
        assert served.stop() == 0, served.log()


def test_the_local_cli_takes_the_head_model_too(faceverse, tmp_path, capsys):
    path, _, avatar_id, store = faceverse
    out = tmp_path / "frame.png"
    # (Without the flag it fails as the server does, unless this process registered the model already.)
    assert main(["render", avatar_id, "--store", str(store), "--size", "48", "-o", str(out),
                 "--head-model", f"faceverse:{path}"]) == 0
    from PIL import Image

    assert np.asarray(Image.open(out)).shape == (48, 48, 4)
    assert main(["render", avatar_id, "--store", str(store), "-o", str(out), "--head-model", "bfm:x.npy"]) == 1
    assert "is not one of embedded, faceverse:PATH" in capsys.readouterr().err
    assert main(["create", str(path), "--store", str(tmp_path / "s"), "--head-model",
                 f"faceverse:{tmp_path / 'absent.npy'}"]) == 1
    assert "absent.npy: no such file" in capsys.readouterr().err


def test_serve_refuses_a_head_model_it_cannot_load(tmp_path):
    run = subprocess.run([sys.executable, "-m", "grpc_server.cli", "serve", "--port", "0", "--store",
                          str(tmp_path / "s"), "--head-model", f"faceverse:{tmp_path / 'absent.npy'}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "absent.npy: no such file" in run.stderr and "listening" not in run.stdout
