"""AvatarArtist: the published DiT + 3D-VAE triplane generator, re-implemented and loaded from a local folder.

Modules: vae (3D-conv AutoencoderKL), dit (TriDitCLIPDINO XL/2), encoders (CLIP / DINOv2 via transformers),
sampler (diffusers DPM-Solver++ with CFG), render_pkl (restricted reader of the EG3D render.pkl),
weights (folder layout and loading), generator (the registered generator).
"""
from avatar.generators.avatarartist.generator import AvatarArtistGenerator, configure, weights_dir_now
from avatar.generators.avatarartist.weights import ENV_VAR, WeightsInvalid, WeightsUnavailable

__all__ = ["ENV_VAR", "AvatarArtistGenerator", "WeightsInvalid", "WeightsUnavailable", "configure", "weights_dir_now"]
