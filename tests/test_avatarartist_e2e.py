"""AvatarArtist end to end on the CPU with small random weights in the documented folder layout:
create -> render -> export through the real server, the availability it reports, and seeding."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from avatarartist_helpers import write_weights
from head_model_helpers import faceverse_dict, write_npy_dict

from avatar.generators.avatarartist.sampler import sample_latent


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from avatar.head_model import embedded_head_model

    root = tmp_path_factory.mktemp("avatarartist")
    faceverse = write_npy_dict(root / "fv.npy", faceverse_dict(embedded_head_model()))
    return write_weights(root / "weights", faceverse)


@pytest.fixture(scope="module")
def server(weights, tmp_path_factory):
    server_helpers = pytest.importorskip("server_helpers")
    proc = server_helpers.ServerProcess(tmp_path_factory.mktemp("aa_store") / "store",
                                        "--avatarartist-weights", str(weights))
    yield proc
    proc.stop()


def test_create_render_export_through_the_server(server, weights, astronaut_png, tmp_path):
    from grpc_server.client import ClientError

    with server.client() as client:
        info = {g.name: g for g in client.info().generators}
        assert info["avatarartist"].available and info["avatarartist"].unavailable_reason == ""
        progress = []
        avatar_id = client.create(astronaut_png, generator="avatarartist", progress=progress.append)
        stages = [p.stage for p in progress]
        assert stages.count("sample") == 20 and "decode_planes" in stages
        assert client.get(avatar_id).generator == "avatarartist"
        # Same portrait, same seed and weights: the same avatar (answered from the store).
        assert client.create(astronaut_png, generator="avatarartist") == avatar_id

        frame = client.render(avatar_id, yaw=25.0, size=48)
        assert frame.shape == (48, 48, 4) and frame[..., 3].max() > 0
        written = client.export(avatar_id, ["glb", "triplane"], tmp_path / "out",
                                options={"texture_size": 256, "without_static_parts": True})
        glb = next(p for p in written if p.suffix == ".glb")
        assert glb.read_bytes()[:4] == b"glTF"

        # The folder loses its FaceVerse file: listed as unavailable, and CreateAvatar is refused.
        (weights / "faceverse_v3_1.npy").rename(weights / "faceverse.moved")
        try:
            info = {g.name: g for g in client.info().generators}
            assert not info["avatarartist"].available
            assert "FaceVerse model missing" in info["avatarartist"].unavailable_reason
            with pytest.raises(ClientError) as err:
                client.create(astronaut_png + b"x", generator="avatarartist")
            assert err.value.code.name == "FAILED_PRECONDITION" and "FaceVerse model missing" in str(err.value)
        finally:
            (weights / "faceverse.moved").rename(weights / "faceverse_v3_1.npy")
    from grpc_server.store import AvatarStore

    stored = AvatarStore(server.store).load(avatar_id)
    assert stored.planes.shape == (4, 32, 256, 256) and torch.isfinite(stored.planes).all()
    assert stored.plane_names == ("xy", "xz", "zx") and stored.generator_settings["seed"] == 0


def test_sampling_is_seeded(weights):
    from avatar.generators.avatarartist.encoders import Conditioning
    from avatar.generators.avatarartist.weights import load_networks

    dit = load_networks(weights).dit
    gen = torch.Generator().manual_seed(0)
    cond = Conditioning(clip=torch.randn(1, 257, 32, generator=gen), clip_uncond=torch.randn(1, 257, 32, generator=gen),
                        dino=torch.randn(1, 257, 32, generator=gen))
    a, b = (sample_latent(dit, cond, seed=7, steps=4) for _ in range(2))
    c = sample_latent(dit, cond, seed=8, steps=4)
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert np.isfinite(a.numpy()).all() and a.shape == (1, 8, 128, 32)
