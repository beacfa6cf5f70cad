"""AvatarArtist networks against the checkpoint-compatibility references in ../shared/reference/avatarartist.

Numbers the small reference models must reproduce on the CPU: VAE within 1e-5, DiT within 1e-4.
Full-size models are only ever built on the meta device here (no memory, no time).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from avatar.generators.avatarartist.dit import DiTConfig, TriplaneDiT, sincos_table
from avatar.generators.avatarartist.sampler import make_scheduler
from avatar.generators.avatarartist.vae import TriplaneVAE, VAEConfig, aliased_keys, retie_aliases

VAE_TOL, DIT_TOL = 1e-5, 1e-4


@pytest.fixture(scope="module")
def ref(shared_dir):
    return shared_dir / "reference" / "avatarartist"


def _manifest(ref, name):
    return json.loads((ref / name).read_text())


def _entries(model):
    return [[k, list(t.shape), str(t.dtype).removeprefix("torch.")] for k, t in model.state_dict().items()]


def test_vae_reproduces_the_reference_encode_posterior_and_decode(ref):
    manifest = _manifest(ref, "vae_small_manifest.json")
    model = TriplaneVAE(VAEConfig(hidden=32)).eval()
    assert _entries(model) == manifest["state_dict"]
    assert aliased_keys(model) == manifest["aliased_keys"]
    # The file stores each aliased tensor once, in float16; the aliases are re-tied on load.
    weights = {k: v.float() for k, v in load_file(ref / "vae_small_weights_fp16.safetensors").items()}
    assert len(weights) == 96
    model.load_state_dict(retie_aliases(model, weights), strict=True)
    assert model.encoder.conv_first.weight is model.encoder.conv_first.conv.weight
    with torch.device("meta"):
        moved = TriplaneVAE(VAEConfig(hidden=32))
    moved = moved.to_empty(device="cpu").tie_aliases()
    assert aliased_keys(moved) == manifest["aliased_keys"]   # re-tied after a conversion that splits them
    r = {k: torch.from_numpy(v) for k, v in np.load(ref / "vae_small_reference.npz").items()}
    with torch.no_grad():
        moments = model.moments(r["input"])
        posterior = model.encode(r["input"])
        decoded = model.decode(posterior.mean)
        decoded_z2 = model.decode(r["z2"])
    for name, got in (("moments", moments), ("posterior_mean", posterior.mean), ("posterior_logvar", posterior.logvar),
                      ("decode_of_mean", decoded), ("decode_of_z2", decoded_z2)):
        assert got.shape == r[name].shape
        assert (got - r[name]).abs().max().item() <= VAE_TOL, name


def _recorder(seen, key):
    """A forward hook that stores the module's output in `seen[key]`."""
    return lambda _module, _inputs, out: seen.__setitem__(key, out)


def test_dit_reproduces_the_reference_outputs_and_every_activation(ref):
    manifest = _manifest(ref, "dit_small_manifest.json")
    config = DiTConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in manifest["constructor"].items()})
    model = TriplaneDiT(config).eval()
    assert _entries(model) == manifest["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == manifest["num_unique_parameters"] == 5_254_592
    weights = load_file(ref / "dit_small_weights.safetensors")
    assert torch.equal(weights["pos_embed"], model.pos_embed)   # our formula gives the stored table exactly
    model.load_state_dict(weights, strict=True)
    r = {k: torch.from_numpy(v) for k, v in np.load(ref / "dit_small_reference.npz").items()}
    seen = {}
    for name in ("x_embedder", "t_embedder", "t_block", "y_embedder", "dino_embedder", "blocks.0", "blocks.1",
                 "final_layer"):
        model.get_submodule(name).register_forward_hook(_recorder(seen, "act_" + name.replace(".", "_")))
    inputs = (r["x"], r["timestep"], r["y_clip"], r["img_feature_dino"])
    with torch.no_grad():
        out = model(*inputs)
        eps = model.forward_eps(*inputs)
    assert (out - r["out"]).abs().max().item() <= DIT_TOL
    assert (eps - r["forward_with_dpmsolver_out"]).abs().max().item() <= DIT_TOL
    activations = sorted(k for k in r if k.startswith("act_"))
    assert sorted(seen) == activations and len(activations) == 8
    for key in activations:
        assert seen[key].shape == r[key].shape, key
        assert (seen[key] - r[key]).abs().max().item() <= DIT_TOL, key


def test_full_size_models_match_the_manifests_key_for_key(ref):
    with torch.device("meta"):
        dit, vae = TriplaneDiT(), TriplaneVAE()
    for model, name, count in ((dit, "dit_full_manifest.json", 726_157_504),
                               (vae, "vae_full_manifest.json", 310_273_544)):
        manifest = _manifest(ref, name)
        assert _entries(model) == manifest["state_dict"], name
        assert sum(p.numel() for p in model.parameters()) == manifest["num_unique_parameters"] == count
    assert aliased_keys(vae) == _manifest(ref, "vae_full_manifest.json")["aliased_keys"]
    assert len(aliased_keys(vae)) == 26
    by_module = {n: sum(t.numel() for t in m.state_dict().values()) for n, m in dit.named_children()}
    expected = dict(_manifest(ref, "dit_full_manifest.json")["numel_by_top_level_module"])
    assert expected.pop("pos_embed") == dit.pos_embed.numel()
    assert by_module == expected
    table = np.load(ref / "dit_full_pos_embed.npz")["pos_embed"]
    assert torch.equal(sincos_table(1152, 64, 16, 1024), torch.from_numpy(table))


def test_dpm_solver_pp_steps_match_the_formula():
    """diffusers' 20-step DPM-Solver++ (2M, midpoint) against an independent float64 derivation."""
    scheduler = make_scheduler(20)
    timesteps = [999, 949, 899, 849, 799, 749, 699, 649, 599, 549, 500, 450, 400, 350, 300, 250, 200, 150, 100, 50]
    assert scheduler.timesteps.tolist() == timesteps   # round(linspace(999, 0, 21))[:-1]
    betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
    abar = np.cumprod(1.0 - betas)
    alpha, sigma = np.sqrt(abar), np.sqrt(1.0 - abar)
    lam = np.log(alpha) - np.log(sigma)
    targets = timesteps[1:] + [0]   # the last step lands on the first training step's noise level

    # The "model" predicts the noise that leads to a fixed clean sample, as a perfect denoiser would.
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, 2, 4, 4, generator=gen)
    clean = torch.randn(1, 2, 4, 4, generator=gen).double()
    mine = x.double()
    prev_x0, prev_lam = None, None
    for i, (s, t) in enumerate(zip(timesteps, targets)):
        eps = ((x.double() - alpha[s] * clean) / sigma[s]).float()
        x = scheduler.step(eps, s, x).prev_sample
        x0 = (mine - sigma[s] * eps.double()) / alpha[s]   # data prediction (the "++")
        h = lam[t] - lam[s]
        phi = np.expm1(-h)   # exp(-h) - 1
        update = (sigma[t] / sigma[s]) * mine - alpha[t] * phi * x0
        if prev_x0 is not None:   # second order (midpoint) from the previous data prediction
            r = (lam[s] - prev_lam) / h
            update = update - 0.5 * alpha[t] * phi * (x0 - prev_x0) / r
        mine, prev_x0, prev_lam = update, x0, lam[s]
        assert (x.double() - mine).abs().max().item() < 5e-5, f"step {i} (t={s})"
    assert scheduler.sigmas[-1].item() == pytest.approx(sigma[0] / alpha[0], rel=1e-4)
    assert (x.double() - clean).abs().max().item() < 0.05   # it ends at the clean sample, at sigma_min
