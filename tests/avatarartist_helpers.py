"""Small random AvatarArtist weights in the documented folder layout, and a synthetic EG3D render.pkl.

Everything here is written by the tests themselves: no official weight file exists on these machines.
The render.pkl is built with the persistence structure EG3D uses (`_reconstruct_persistent_obj(meta)`
with the class's source text in meta); that source would write MARKER and raise if anything ran it.
"""
from __future__ import annotations

import json
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn

from avatar.generators.avatarartist.dit import DiTConfig, TriplaneDiT
from avatar.generators.avatarartist.vae import TriplaneVAE, VAEConfig

SMALL_DIT = dict(hidden_size=64, depth=1, num_heads=2, resampler_depth=1, resampler_heads=2, resampler_head_dim=16,
                 caption_channels=32, dino_channels=32)
SMALL_VAE = dict(hidden=16)
SOURCE_THAT_MUST_NOT_RUN = ("import pathlib\npathlib.Path({marker!r}).write_text('executed')\n"
                            "raise RuntimeError('render.pkl source was executed')\n")


def _persistence_module() -> types.ModuleType:
    """A stand-in for EG3D's torch_utils.persistence, only so pickle can name the reconstructor."""
    name = "torch_utils.persistence"
    if name not in sys.modules:
        pkg = types.ModuleType("torch_utils")
        mod = types.ModuleType(name)

        def _reconstruct_persistent_obj(meta):  # never called by the loader under test
            raise AssertionError("the persistent reconstructor ran")

        _reconstruct_persistent_obj.__module__ = name
        _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
        mod._reconstruct_persistent_obj = _reconstruct_persistent_obj
        pkg.persistence = mod
        sys.modules["torch_utils"], sys.modules[name] = pkg, mod
    return sys.modules[name]


class _Persistent(nn.Module):
    """Pickles like an EG3D @persistent_class instance: reconstructor + meta with its module's source."""

    source = ""

    def __init__(self, init_kwargs: dict):
        super().__init__()
        self._init_args = ()
        self._init_kwargs = dict(init_kwargs)

    def __reduce__(self):
        meta = dict(type="class", version=6, module_src=self.source, class_name=type(self).__name__,
                    state=dict(self.__dict__))
        return _persistence_module()._reconstruct_persistent_obj, (meta,)


class FullyConnectedLayer(_Persistent):
    """EG3D's FC layer: stored weight w, used as w * lr / sqrt(in); bias b used as b * lr."""

    def __init__(self, cin: int, cout: int, lr_multiplier: float):
        super().__init__(dict(in_features=cin, out_features=cout, lr_multiplier=lr_multiplier))
        self.weight = nn.Parameter(torch.randn(cout, cin) / lr_multiplier)
        self.bias = nn.Parameter(torch.randn(cout) * 0.1 / lr_multiplier)
        self.weight_gain = lr_multiplier / cin ** 0.5
        self.bias_gain = lr_multiplier

    def forward(self, x):
        return x @ (self.weight * self.weight_gain).t() + self.bias * self.bias_gain


class OSGDecoder(_Persistent):
    def __init__(self, lr: float = 1.0):
        super().__init__(dict(n_features=32, options={"decoder_lr_mul": lr, "decoder_output_dim": 32}))
        self.net = nn.Sequential(FullyConnectedLayer(32, 64, lr), nn.Softplus(), FullyConnectedLayer(64, 33, lr))


class EncoderTriplane(nn.Module):   # undecorated upstream: pickled by import path
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(33, 8, 3))


class EasyDict(dict):   # dnnlib.util.EasyDict: a dict subclass, pickled by import path
    pass


class Generator(_Persistent):
    def __init__(self, sparse: bool = False):
        super().__init__(dict(mot_dims=548, rendering_kwargs=EasyDict(depth_resolution=48, ray_start=2.25)))
        self.act_gain = np.float64(np.sqrt(2))   # StyleGAN keeps numpy gains
        self.decoder = OSGDecoder(lr=1.0)
        if sparse:
            _make_sparse(self.decoder)
        self.triplnae_encoder = EncoderTriplane()
        self.face_backbone = nn.Linear(4, 4)
        self.neural_rendering_resolution = 128


def _make_sparse(decoder: OSGDecoder) -> None:
    """Density 2 * softplus(8 * c0) - 6 on the mean of plane channel 0: empty where c0 < 0, so a test avatar
    whose static planes hold c0 = -1 renders only where the neural texture (c0 > 0) is pasted."""
    fc1, fc2 = decoder.net[0], decoder.net[2]
    with torch.no_grad():
        fc1.weight[0].zero_()
        fc1.weight[0, 0] = 8.0 / fc1.weight_gain
        fc1.bias[0] = 0.0
        fc2.weight[0].zero_()
        fc2.weight[0, 0] = 2.0 / fc2.weight_gain
        fc2.bias[0] = -6.0 / fc2.bias_gain


def write_render_pkl(path: Path, marker: Path, payload: object | None = None, sparse: bool = False) -> Generator:
    """A render.pkl like the published one in structure; returns the generator it holds."""
    source = SOURCE_THAT_MUST_NOT_RUN.format(marker=str(marker))
    for cls in (_Persistent, FullyConnectedLayer, OSGDecoder, Generator):
        cls.source = source
    EncoderTriplane.__module__ = "training.reconstructor.networks_reconstructor"  # a path that is not importable
    EasyDict.__module__ = "dnnlib.util"
    for cls in (EncoderTriplane, EasyDict):
        _register_fake_module(cls)
    torch.manual_seed(5)
    g = Generator(sparse)
    data = {"G": g, "D": nn.Linear(2, 2), "G_ema": g, "training_set_kwargs": None}
    if payload is not None:
        data["extra"] = payload
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=4)
    return g


def _register_fake_module(cls: type) -> None:
    # pickle checks that a class is reachable by its path when it writes it; the loader never imports it
    parts = cls.__module__.split(".")
    for i in range(1, len(parts) + 1):
        name = ".".join(parts[:i])
        sys.modules.setdefault(name, types.ModuleType(name))
    setattr(sys.modules[cls.__module__], cls.__name__, cls)


def write_weights(root: Path, faceverse_npy: Path | None = None, seed: int = 0) -> Path:
    """The documented folder layout with small random networks (and a FaceVerse file when given)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, Dinov2Config, Dinov2Model

    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    (root / "avatarartist.json").write_text(json.dumps({"dit": SMALL_DIT, "vae": SMALL_VAE}))
    dit = TriplaneDiT(DiTConfig(**SMALL_DIT))
    ema = {k: v + 0.01 * torch.randn_like(v) for k, v in dit.state_dict().items()}
    torch.save({"state_dict": dit.state_dict(), "state_dict_ema": ema, "epoch": 3}, root / "DiT.pth")
    vae = TriplaneVAE(VAEConfig(**SMALL_VAE))
    (root / "checkpoint-VAE").mkdir(exist_ok=True)
    torch.save(vae.state_dict(), root / "checkpoint-VAE" / "pytorch_model.bin")
    # Plane 0 (the neural texture) dense, the static planes nearly constant and empty (see _make_sparse).
    torch.save(torch.tensor([4.0, -1.0, -1.0, -1.0]), root / "final_mean.pt")
    torch.save(torch.tensor([0.5, 0.01, 0.01, 0.01]), root / "final_std.pt")
    write_render_pkl(root / "render.pkl", root / "EXECUTED", sparse=True)
    clip = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2, image_size=224,
        patch_size=14, projection_dim=16))
    clip.save_pretrained(root / "image_encoder")
    dino = Dinov2Model(Dinov2Config(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2,
                                    image_size=224, patch_size=14))
    dino.save_pretrained(root / "dinov2-base")
    if faceverse_npy is not None:
        (root / "faceverse_v3_1.npy").write_bytes(faceverse_npy.read_bytes())
    return root
