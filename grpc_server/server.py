"""Build and run the gRPC server: service, health, reflection, auth, TLS, limits, graceful shutdown."""
from __future__ import annotations

import logging
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from avatar.head_model import HeadModelError
from avatar.head_registry import use_head_model
from grpc_server import torch_threads
from grpc_server.app.application import Application, AppOptions
from grpc_server.auth import BearerTokenInterceptor, TokenFileError, load_tokens
from grpc_server.config import ConfigError, ServerConfig, is_loopback
from grpc_server.proto import pb, pb_grpc
from grpc_server.service import AvatarForgeService
from grpc_server.store import AvatarStore

log = logging.getLogger("avatarforge")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AvatarForge"].full_name
# Handler threads beyond the streams: unary calls, creates waiting on their job, health probes.
EXTRA_HANDLER_THREADS = 16


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror or e}") from None


@dataclass
class RunningServer:
    server: grpc.Server
    service: AvatarForgeService
    health: health.HealthServicer
    host: str
    port: int

    @property
    def address(self) -> str:
        return _address(self.host, self.port)

    def stop(self, grace: float) -> None:
        """Health NOT_SERVING, refuse new calls, give in-flight ones `grace` seconds, then cancel them."""
        self.health.enter_graceful_shutdown()
        self.service.app.begin_shutdown()
        self.server.stop(grace).wait()
        self.service.app.close()


def start(config: ServerConfig) -> RunningServer:
    """Build, bind and start the server; returns once it accepts calls."""
    config.validate()
    limits = config.limits()
    tokens = load_tokens(config.token_file) if config.token_file else []
    head_model = use_head_model(config.head_model) if config.head_model else None

    torch_threads.configure(config.torch_threads)
    store = AvatarStore(config.store)
    store.check_writable()
    swept = store.sweep()
    if swept:
        log.info("removed %d leftovers of interrupted creates/deletes from %s", swept, store.root)
    app = Application(store, AppOptions(limits=limits, workers=config.workers, render_slots=config.render_slots,
                                        march_policy=config.march_policy, cache_size=config.cache_size,
                                        backend=config.backend, head_model=head_model))
    service = AvatarForgeService(app, auth_required=bool(tokens))

    handler_threads = limits.max_streams + config.workers + EXTRA_HANDLER_THREADS
    options = [
        ("grpc.max_send_message_length", limits.max_message_bytes),
        ("grpc.max_receive_message_length", limits.max_message_bytes),
        # Keep idle viewport connections alive through NATs and proxies without flooding pings.
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.server(ThreadPoolExecutor(max_workers=handler_threads, thread_name_prefix="avatarforge-rpc"),
                         interceptors=[BearerTokenInterceptor(tokens)] if tokens else [],
                         options=options, maximum_concurrent_rpcs=handler_threads)
    pb_grpc.add_AvatarForgeServicer_to_server(service, server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True,
                                            experimental_thread_pool=ThreadPoolExecutor(max_workers=1))
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)

    address = _address(config.host, config.port)
    try:
        if config.tls_cert:
            creds = grpc.ssl_server_credentials(
                [(_read(config.tls_key, "TLS key"), _read(config.tls_cert, "TLS certificate"))],
                root_certificates=_read(config.client_ca, "client CA") if config.client_ca else None,
                require_client_auth=bool(config.client_ca))
            port = server.add_secure_port(address, creds)
        else:
            port = server.add_insecure_port(address)
    except RuntimeError as e:
        raise ConfigError(f"cannot listen on {address}: {e}") from None
    if not port:
        raise ConfigError(f"cannot listen on {address} (address in use or not available)")
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    if not tokens and not is_loopback(config.host):
        banner = "!" * 78
        log.warning("\n%s\nWARNING: listening on %s WITHOUT authentication. Anyone who can reach this address can "
                    "create, render and delete avatars.\nConfigure --token-file (and --tls-cert/--tls-key), or bind "
                    "127.0.0.1.\n%s", banner, config.host, banner)
    log.info("store %s; limits %s; tls=%s mtls=%s auth=%s", store.root, limits, bool(config.tls_cert),
             bool(config.client_ca), bool(tokens))
    return RunningServer(server, service, health_servicer, config.host, port)


def serve(config: ServerConfig) -> int:
    """Run until SIGTERM/SIGINT, then shut down gracefully; returns the process exit code."""
    logging.basicConfig(level=getattr(logging, config.log_level.upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        running = start(config)
    except (ConfigError, TokenFileError, HeadModelError) as e:
        print(f"avatarforge: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"avatarforge: cannot open the store {config.store}: {e.strerror or e}", file=sys.stderr)
        return 2
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum, _frame):
        received.append(signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    # Tests and scripts parse this line for the port.
    print(f"avatarforge listening on {running.address}", flush=True)
    while not stop.wait(1.0):
        pass
    log.info("signal %s: shutting down (grace %.1f s)", received[0] if received else "?", config.grace)
    running.stop(config.grace)
    log.info("stopped")
    return 0
