"""Sampling the triplane latent: diffusers' DPM-Solver++ configured as the published inference runs it.

Upstream settings: 20 steps, second order, multistep, time-uniform steps over the training schedule
(linear betas 1e-4..0.02 over 1000 steps), noise prediction, classifier-free guidance 4.5 whose
unconditional branch has the CLIP tokens of a zero image and the same DINO tokens.
diffusers' discrete steps are round(linspace(999, 0, 21))[:-1]; upstream's continuous solver evaluates
the model at 999 - 49.95 k. The difference is under half a timestep per step.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from avatar.generators.avatarartist.dit import TriplaneDiT
from avatar.generators.avatarartist.encoders import Conditioning

if TYPE_CHECKING:
    from diffusers.schedulers.scheduling_dpmsolver_multistep import DPMSolverMultistepScheduler

STEPS = 20
GUIDANCE = 4.5
LATENT_SHAPE = (8, 128, 32)   # 8 channels; 4 planes of 32 rows stacked, 32 columns


def make_scheduler(steps: int = STEPS) -> DPMSolverMultistepScheduler:
    from diffusers.schedulers.scheduling_dpmsolver_multistep import DPMSolverMultistepScheduler

    scheduler: DPMSolverMultistepScheduler = DPMSolverMultistepScheduler(
        num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
        solver_order=2, prediction_type="epsilon", algorithm_type="dpmsolver++", solver_type="midpoint",
        lower_order_final=True, timestep_spacing="linspace", final_sigmas_type="sigma_min")
    scheduler.set_timesteps(steps)
    return scheduler


@torch.no_grad()
def sample_latent(dit: TriplaneDiT, cond: Conditioning, seed: int, steps: int = STEPS, guidance: float = GUIDANCE,
                  on_step: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """(1, 8, 128, 32) latent (still multiplied by the latent scale). The initial noise is drawn on the CPU
    from `seed`, so the same seed gives the same sample on any device."""
    device, dtype = dit.pos_embed.device, dit.pos_embed.dtype
    scheduler = make_scheduler(steps)
    noise = torch.randn((1, *LATENT_SHAPE), generator=torch.Generator().manual_seed(int(seed)))
    x = noise.to(device, torch.float32) * scheduler.init_noise_sigma
    clip = torch.cat([cond.clip, cond.clip_uncond]).to(device, dtype)
    dino = torch.cat([cond.dino, cond.dino]).to(device, dtype)
    tokens = dit.condition(clip, dino)   # the resampled tokens do not depend on the step
    for i, t in enumerate(scheduler.timesteps):
        timestep = torch.full((2,), float(t), device=device)
        eps = dit.forward_eps(torch.cat([x, x]).to(dtype), timestep, clip, dino, tokens=tokens).float()
        eps_cond, eps_uncond = eps.chunk(2)
        x = scheduler.step(eps_uncond + guidance * (eps_cond - eps_uncond), t, x, return_dict=False)[0]
        if on_step is not None:
            on_step(i + 1, len(scheduler.timesteps))
    return x
