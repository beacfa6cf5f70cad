"""How a frame's march shares the cores with the other frames rendering (the rule; grpc_server.app.rendering
applies it and says how the default was chosen). Light to import: the server's configuration names it."""
from __future__ import annotations

MARCH_POLICIES = ("all", "share", "demand")
DEFAULT_MARCH_POLICY = "demand"


def march_threads(policy: str, cores: int, rendering: int, asking: int, slots: int) -> int:
    """The cores a frame starting now may march on, under `policy` (MARCH_POLICIES), with `rendering`
    frames holding a slot and `asking` frames waiting or rendering, this one counted in both."""
    if policy == "all":
        return cores
    sharing = rendering if policy == "share" else min(asking, slots)
    return max(1, cores // max(1, sharing))
