"""Shared fixtures for the engine-binding tests: building the C++ client, running a real server,
and writing the inputs/expectations the C# core tests read."""
from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CPP_DIR = ROOT / "engine_bindings" / "cpp"
CPP_BUILD_DIR = CPP_DIR / "build"
UNITY_DIR = ROOT / "engine_bindings" / "unity" / "com.avatarforge.client"

_LISTENING = re.compile(r"avatarforge listening on (\S+:\d+)")
# Generous guard so a wedged server fails the test instead of hanging it; not a speed check.
SERVER_START_GUARD_S = 180.0


def require_tools(*names: str) -> dict[str, str]:
    found = {n: shutil.which(n) for n in names}
    missing = [n for n, p in found.items() if p is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} on PATH (Debian: see the Makefile's APT_PACKAGES)")
    return {n: p for n, p in found.items() if p is not None}


def build_cpp_client() -> Path:
    """Configure and build engine_bindings/cpp (incrementally, in its cached build dir); returns the example binary."""
    require_tools("cmake", "protoc", "grpc_cpp_plugin", "pkg-config")
    if subprocess.run(["pkg-config", "--exists", "grpc++", "protobuf"]).returncode != 0:
        pytest.skip("needs the grpc++ and protobuf development packages (libgrpc++-dev, libprotobuf-dev)")
    CPP_BUILD_DIR.mkdir(parents=True, exist_ok=True)
    steps = (
        ["cmake", "-S", str(CPP_DIR), "-B", str(CPP_BUILD_DIR), "-DCMAKE_BUILD_TYPE=Release"],
        # Two jobs: the machine's cores are shared with the rest of the suite.
        ["cmake", "--build", str(CPP_BUILD_DIR), "-j", "2"],
    )
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    binary = CPP_BUILD_DIR / "avatarforge-cpp"
    assert binary.is_file(), f"the build did not produce {binary}"
    return binary


def server_cli_available() -> bool:
    return (ROOT / "grpc_server" / "cli.py").is_file() and (ROOT / "grpc_server" / "commands" / "serve.py").is_file()


@contextlib.contextmanager
def running_server(store: Path, log_path: Path, token_file: Path | None = None) -> Iterator[str]:
    """Start `grpc_server.cli serve` on a free port; yields "host:port" once it is listening."""
    if not server_cli_available():
        pytest.skip("the server CLI (grpc_server/cli.py + commands/serve.py) is not in this checkout yet")
    cmd = [sys.executable, "-m", "grpc_server.cli", "serve", "--port", "0", "--store", str(store)]
    if token_file is not None:
        cmd += ["--token-file", str(token_file)]
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        address = None
        deadline = time.monotonic() + SERVER_START_GUARD_S
        while address is None:
            text = log_path.read_text(errors="replace")
            match = _LISTENING.search(text)
            if match:
                address = match.group(1)
            elif proc.poll() is not None:
                raise AssertionError(f"the server exited with {proc.returncode} before listening:\n{text[-4000:]}")
            elif time.monotonic() > deadline:
                raise AssertionError(f"the server did not report its address:\n{text[-4000:]}")
            else:
                time.sleep(0.2)
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def astronaut_png(path: Path) -> Path:
    from PIL import Image
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return path


def run(cmd: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "GRPC_VERBOSITY": "ERROR"})
