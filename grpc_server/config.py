"""Server configuration: defaults, overridden by AVATARFORGE_* environment variables, overridden by flags."""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from grpc_server.app.march_policy import DEFAULT_MARCH_POLICY
from grpc_server.limits import ServerLimits
from grpc_server.paths import default_store

_LIMIT_DEFAULTS = ServerLimits()


class ConfigError(ValueError):
    pass


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 50051                      # 0 = pick a free port (printed in the ready line)
    store: Path = field(default_factory=default_store)
    token_file: str = ""                   # one bearer token per line; empty = no authentication
    # Listening beyond loopback without tokens must be asked for by name, never happen by a typo'd --host.
    allow_unauthenticated_remote: bool = False
    tls_cert: str = ""
    tls_key: str = ""
    client_ca: str = ""                    # set = mutual TLS: clients must present a certificate it signed
    max_streams: int = _LIMIT_DEFAULTS.max_streams
    max_portrait_bytes: int = _LIMIT_DEFAULTS.max_portrait_bytes
    max_pixels: int = _LIMIT_DEFAULTS.max_portrait_pixels
    max_frame_pixels: int = _LIMIT_DEFAULTS.max_frame_pixels
    max_message_bytes: int = _LIMIT_DEFAULTS.max_message_bytes
    max_pending_jobs: int = _LIMIT_DEFAULTS.max_pending_jobs
    max_streams_per_client: int = 0        # 0 = max_streams
    max_jobs_per_client: int = 0           # 0 = max_pending_jobs
    workers: int = 1                       # creates/exports running at once
    render_slots: int = field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)))  # frames at once
    # Threads per render. One, with several renders side by side, keeps every core busy without
    # OpenMP teams spinning against each other (or against other processes on a shared machine),
    # which measured 3-30x slower per frame here than single-threaded renders.
    torch_threads: int = 1
    march_policy: str = DEFAULT_MARCH_POLICY  # how a frame's march shares the cores (app.rendering)
    cache_size: int = 8                    # loaded avatars kept in memory
    grace: float = 10.0                    # seconds in-flight calls get at shutdown
    backend: str = "cpu"                   # rasterizer: cpu or nvdiffrast
    avatarartist_weights: str = ""         # AvatarArtist weights folder; empty = the generator is unavailable
    head_model: str = ""                   # faceverse:PATH = also serve avatars wearing that head, and fit it
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ=None) -> ServerConfig:
        env = os.environ if environ is None else environ
        config = cls()
        for f in fields(cls):
            raw = env.get(env_name(f.name))
            if raw is None or raw.strip() == "":
                continue
            setattr(config, f.name, _parse(f.name, raw.strip(), type(getattr(config, f.name))))
        return config

    def limits(self) -> ServerLimits:
        try:
            return ServerLimits(max_portrait_bytes=self.max_portrait_bytes, max_portrait_pixels=self.max_pixels,
                                max_streams=self.max_streams, max_frame_pixels=self.max_frame_pixels,
                                max_message_bytes=self.max_message_bytes, max_pending_jobs=self.max_pending_jobs,
                                max_streams_per_client=self.max_streams_per_client,
                                max_jobs_per_client=self.max_jobs_per_client)
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def validate(self) -> ServerConfig:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is outside 0..65535")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("TLS needs both --tls-cert and --tls-key")
        if self.client_ca and not self.tls_cert:
            raise ConfigError("--client-ca (mutual TLS) needs --tls-cert and --tls-key")
        if not self.token_file and not is_loopback(self.host) and not self.allow_unauthenticated_remote:
            raise ConfigError(f"refusing to listen on {self.host} without authentication: anyone who can reach "
                              f"it could create, render and delete avatars; give --token-file (and --tls-cert/"
                              f"--tls-key), bind 127.0.0.1, or pass --allow-unauthenticated-remote true")
        if self.backend not in ("cpu", "nvdiffrast"):
            raise ConfigError(f"backend {self.backend!r} is not one of cpu, nvdiffrast")
        for name in ("workers", "render_slots", "cache_size", "torch_threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if self.grace < 0:
            raise ConfigError("grace must not be negative")
        self.limits()
        return self


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_bool(raw: str) -> bool:
    """true/false, yes/no, on/off, 1/0 (any case); anything else is a ValueError."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{raw!r} is not true or false")


def env_name(field_name: str) -> str:
    return "AVATARFORGE_" + field_name.upper()


def _parse(name: str, raw: str, kind: type):
    try:
        if kind is bool:
            return parse_bool(raw)
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if issubclass(kind, Path):
            return Path(raw).expanduser()
        return raw
    except ValueError:
        raise ConfigError(f"environment variable {env_name(name)}={raw!r} is not a valid {kind.__name__}") from None
