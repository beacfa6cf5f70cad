"""Loading AvatarArtist files safely: render.pkl through the restricted unpickler, DiT.pth non-strict with a
report, the VAE strict with its aliases, the registry and service without weights."""
from __future__ import annotations

import os
import pickle

import grpc
import pytest
import torch
from avatarartist_helpers import SMALL_DIT, SMALL_VAE, write_render_pkl

from avatar.decoder import TriplaneDecoder
from avatar.generators import available, get_generator
from avatar.generators.avatarartist import AvatarArtistGenerator, WeightsInvalid, WeightsUnavailable, configure
from avatar.generators.avatarartist.dit import DiTConfig
from avatar.generators.avatarartist.render_pkl import RenderPickleError, read_render_pkl
from avatar.generators.avatarartist.vae import TriplaneVAE, VAEConfig
from avatar.generators.avatarartist.weights import LoadReport, load_dit, load_vae, unavailable_reason
from grpc_server.errors import status_for


@pytest.fixture(autouse=True)
def _unconfigured():
    configure(None)
    yield
    configure(None)   # the process-wide folder must not leak into other tests


def test_render_pkl_loads_into_our_decoder_and_executes_nothing(tmp_path):
    marker = tmp_path / "EXECUTED"
    g = write_render_pkl(tmp_path / "render.pkl", marker)
    # The file really embeds code: the source text that upstream would exec() sits in it.
    assert b"render.pkl source was executed" in (tmp_path / "render.pkl").read_bytes()
    weights = read_render_pkl(tmp_path / "render.pkl")
    assert not marker.exists()
    assert weights.classes["decoder"] == "OSGDecoder" and weights.classes["triplnae_encoder"] == "EncoderTriplane"
    assert weights.init_kwargs["G_ema"]["mot_dims"] == 548
    assert weights.init_kwargs["G_ema"]["rendering_kwargs"] == {"depth_resolution": 48, "ray_start": 2.25}
    assert weights.init_kwargs["decoder"]["options"]["decoder_lr_mul"] == 1.0
    assert set(weights.modules["triplnae_encoder"]) == {"encoder.0.weight", "encoder.0.bias"}
    assert torch.equal(weights.modules["decoder"]["net.0.weight"], g.decoder.net[0].weight.detach())
    # Our decoder computes what the pickled OSGDecoder computes (EG3D's FC gains folded in).
    ours = TriplaneDecoder.from_asset(weights.decoder)
    x = torch.randn(50, 32)
    with torch.no_grad():
        expected = g.decoder.net(x)
        density, feats = ours(x)
    assert torch.allclose(density, torch.nn.functional.softplus(expected[:, 0] - 1.0), atol=1e-5)
    assert torch.allclose(feats, torch.sigmoid(expected[:, 1:]) * 1.002 - 0.001, atol=1e-6)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_render_pkl_refuses_callables_with_a_sentence(tmp_path):
    marker = tmp_path / "PWNED"
    write_render_pkl(tmp_path / "render.pkl", tmp_path / "EXECUTED", payload=_Exploit(marker))
    with pytest.raises(RenderPickleError, match=r"asks for (posix|os)\.system, which this loader refuses"):
        read_render_pkl(tmp_path / "render.pkl")
    assert not marker.exists()
    (tmp_path / "eval.pkl").write_bytes(pickle.dumps({"G_ema": eval}))
    with pytest.raises(RenderPickleError, match=r"builtins\.eval"):
        read_render_pkl(tmp_path / "eval.pkl")
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"G": 1}))
    with pytest.raises(RenderPickleError, match="no G_ema"):
        read_render_pkl(tmp_path / "plain.pkl")


def test_dit_checkpoint_prefers_ema_recomputes_pos_embed_and_reports_keys(tmp_path):
    config = DiTConfig(**SMALL_DIT)
    from avatar.generators.avatarartist.dit import TriplaneDiT

    torch.manual_seed(1)
    src = TriplaneDiT(config).state_dict()
    ema = {k: v + 1.0 for k, v in src.items()}
    ema.pop("blocks.0.mlp.fc2.bias")
    ema["module.extra"] = torch.zeros(1)
    torch.save({"state_dict": src, "state_dict_ema": ema}, tmp_path / "DiT.pth")
    report = LoadReport()
    model = load_dit(tmp_path / "DiT.pth", config, report)
    assert report.dit_source == "state_dict_ema"
    assert report.dit_missing == ["blocks.0.mlp.fc2.bias"] and report.dit_unexpected == ["module.extra"]
    assert torch.equal(model.t_block[1].weight, ema["t_block.1.weight"])
    assert torch.equal(model.pos_embed, TriplaneDiT(config).pos_embed)   # the file's table (+1) was dropped
    torch.save({"state_dict": {"module." + k: v for k, v in src.items()}}, tmp_path / "prefixed.pth")
    with pytest.raises(WeightsInvalid, match=r"none of its .* keys is a DiT weight"):
        load_dit(tmp_path / "prefixed.pth", config, LoadReport())
    torch.save(src, tmp_path / "flat.pth")
    with pytest.raises(WeightsInvalid, match="'state_dict' entry"):
        load_dit(tmp_path / "flat.pth", config, LoadReport())


def test_vae_loads_strictly_with_aliases_and_reads_no_code(tmp_path):
    config = VAEConfig(**SMALL_VAE)
    torch.manual_seed(2)
    state = TriplaneVAE(config).state_dict()
    torch.save(state, tmp_path / "vae.bin")
    model = load_vae(tmp_path / "vae.bin", config)
    assert torch.equal(model.decoder.conv_out.weight, state["decoder.conv_out.conv.weight"])
    broken = dict(state)
    broken["decoder.conv_out.weight"] = broken["decoder.conv_out.weight"] + 1
    torch.save(broken, tmp_path / "broken.bin")
    with pytest.raises(WeightsInvalid, match=r"decoder\.conv_out"):
        load_vae(tmp_path / "broken.bin", config)
    del broken["decoder.conv_out.weight"], broken["decoder.conv_out.conv.weight"]
    torch.save(broken, tmp_path / "short.bin")
    with pytest.raises(WeightsInvalid, match=r"weights do not fit the VAE: Missing key.*decoder\.conv_out"):
        load_vae(tmp_path / "short.bin", config)
    marker = tmp_path / "PWNED"
    torch.save({"x": _Exploit(marker)}, tmp_path / "evil.bin")
    with pytest.raises(WeightsInvalid, match="weights_only"):
        load_vae(tmp_path / "evil.bin", config)
    assert not marker.exists()


def test_registry_lists_avatarartist_and_create_says_what_is_missing(tmp_path, monkeypatch, astronaut_png):
    monkeypatch.delenv("AVATARFORGE_AVATARARTIST_WEIGHTS", raising=False)
    reasons = {name: why for name, _version, _description, why in available()}
    assert "not configured: pass --avatarartist-weights DIR" in reasons["avatarartist"] and "projective" in reasons
    monkeypatch.setenv("AVATARFORGE_AVATARARTIST_WEIGHTS", str(tmp_path / "nowhere"))
    generator = get_generator("avatarartist")
    assert f"weights not found at {tmp_path / 'nowhere'} (no such directory)" == \
        generator.unavailable_reason().removeprefix("AvatarArtist ")
    with pytest.raises(WeightsUnavailable, match="cannot run: AvatarArtist weights not found at") as err:
        generator.create(astronaut_png)
    assert status_for(err.value) == (grpc.StatusCode.FAILED_PRECONDITION, str(err.value))
    (tmp_path / "w").mkdir()
    for name in ("DiT.pth", "render.pkl", "final_mean.pt", "final_std.pt"):
        (tmp_path / "w" / name).write_bytes(b"")
    reason = unavailable_reason(tmp_path / "w")
    assert "checkpoint-VAE/pytorch_model.bin" in reason and "faceverse_v3_1.npy" in reason
    configure(tmp_path / "w")   # the flag wins over the environment
    assert AvatarArtistGenerator().root == tmp_path / "w"


def test_serve_and_create_take_the_weights_flag(monkeypatch, tmp_path, capsys):
    from grpc_server.cli import main as cli_main
    from grpc_server.config import ServerConfig

    monkeypatch.setenv("AVATARFORGE_AVATARARTIST_WEIGHTS", str(tmp_path))
    assert ServerConfig.from_env().avatarartist_weights == str(tmp_path)
    portrait = tmp_path / "p.png"
    portrait.write_bytes(b"\x89PNG\r\n\x1a\n")
    code = cli_main(["create", str(portrait), "--generator", "avatarartist", "--store", str(tmp_path / "s"),
                     "--avatarartist-weights", str(tmp_path / "missing")])
    assert code == 1
    assert f"weights not found at {tmp_path / 'missing'}" in capsys.readouterr().err


def test_configure_registers_the_faceverse_head_for_stored_avatars(tmp_path):
    from head_model_helpers import faceverse_dict, write_npy_dict

    from avatar.head_model import embedded_head_model
    from avatar.head_registry import head_model_for

    write_npy_dict(tmp_path / "faceverse_v3_1.npy", faceverse_dict(embedded_head_model()))
    from avatar.generators.avatarartist.generator import faceverse_head

    configure(tmp_path)
    head = faceverse_head(tmp_path)
    assert head_model_for(head.model_id) is head and head.faceverse is not None


def test_a_broken_file_in_the_folder_is_a_server_problem_with_a_sentence(tmp_path):
    from avatar.generators.avatarartist.generator import faceverse_head

    (tmp_path / "faceverse_v3_1.npy").write_bytes(b"not numpy")
    with pytest.raises(WeightsInvalid, match=r"FaceVerse model .* not a readable") as err:
        faceverse_head(tmp_path)
    assert status_for(err.value)[0] == grpc.StatusCode.FAILED_PRECONDITION
