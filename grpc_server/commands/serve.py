"""`avatarforge serve`: run the gRPC service. Every flag also reads AVATARFORGE_<FLAG> (e.g. AVATARFORGE_PORT)."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

from grpc_server.config import ConfigError, ServerConfig, env_name, parse_bool

_HELP = {
    "host": "address to bind (default 127.0.0.1; anything else needs --token-file or --allow-unauthenticated-remote)",
    "port": "port to bind; 0 picks a free one (the ready line 'avatarforge listening on HOST:PORT' tells which)",
    "store": "avatar store directory (default: $XDG_DATA_HOME/avatarforge/avatars or "
             "~/.local/share/avatarforge/avatars)",
    "token_file": "file of accepted bearer tokens, one per line; clients send 'authorization: Bearer <token>'",
    "allow_unauthenticated_remote": "true to listen beyond loopback without --token-file (refused otherwise)",
    "tls_cert": "PEM certificate chain for TLS",
    "tls_key": "PEM private key for TLS",
    "client_ca": "PEM CA bundle: require client certificates signed by it (mutual TLS)",
    "max_streams": "concurrent RenderStreams; more are refused with RESOURCE_EXHAUSTED",
    "max_portrait_bytes": "largest accepted portrait upload in bytes",
    "max_pixels": "largest accepted portrait in pixels (width x height; stops decompression bombs)",
    "max_frame_pixels": "largest frame in pixels (width x height)",
    "max_message_bytes": "largest gRPC message in either direction; frames never exceed it",
    "max_pending_jobs": "creates and exports queued or running at once",
    "max_streams_per_client": "RenderStreams at once per client (bearer token, else address); 0 = --max-streams",
    "max_jobs_per_client": "creates and exports at once per client; 0 = --max-pending-jobs",
    "workers": "creates and exports running at once",
    "render_slots": "frames rendered at once across all calls (default: the number of cores, at most 4)",
    "torch_threads": "torch threads per render or create (1 with several renders at once uses the cores best)",
    "march_policy": "how a frame's march shares the cores with other frames: demand, share or all "
                    "(demand measured best; benchmarks.stream --policies)",
    "cache_size": "loaded avatars kept in memory",
    "grace": "seconds in-flight calls get to finish on SIGTERM/SIGINT",
    "backend": "rasterizer backend: cpu or nvdiffrast (CUDA)",
    "avatarartist_weights": "folder of the AvatarArtist weights (layout in the README); enables that generator",
    "head_model": "faceverse:PATH: load a FaceVerse v3 .npy head model; avatars wearing it render and export, and "
                  "the projective generator fits it instead of the embedded head",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
}


def register(subparsers) -> None:
    parser = subparsers.add_parser("serve", help="run the gRPC service", description=__doc__)
    try:
        defaults, env_error = ServerConfig.from_env(), None
    except ConfigError as e:
        # Reported only if `serve` is the command run: a bad variable must not break other commands.
        defaults, env_error = ServerConfig(), e
    for f in fields(ServerConfig):
        value = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        kind: Callable[[str], object] = (lambda s: Path(s).expanduser()) if isinstance(value, Path) else type(value)
        if isinstance(value, bool):
            kind = parse_bool
        parser.add_argument(flag, dest=f.name, default=value, type=kind,
                            help=f"{_HELP[f.name]} (now: {value}; env {env_name(f.name)})")
    parser.set_defaults(func=run, env_error=env_error)


def run(args) -> int:
    if args.env_error is not None:
        print(f"avatarforge serve: {args.env_error}")
        return 2
    config = ServerConfig(**{f.name: getattr(args, f.name) for f in fields(ServerConfig)})
    # OpenMP sizes its pool once, when torch loads; torch.set_num_threads later still leaves the
    # runtime's idle threads spinning (measured: frames twice as slow). So say it before torch loads,
    # unless the user already chose.
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_NUM_THREADS", str(config.torch_threads))
    from avatar.generators.avatarartist import configure
    from grpc_server.server import serve

    configure(config.avatarartist_weights)
    return serve(config)
