"""Server configuration: defaults, AVATARFORGE_* variables, flags, the default store, the exposure warning."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from server_helpers import ROOT, ServerProcess

from grpc_server.client import AvatarForgeClient
from grpc_server.config import ConfigError, ServerConfig
from grpc_server.paths import default_store
from grpc_server.server import is_loopback


def test_defaults_are_safe():
    c = ServerConfig()
    assert c.host == "127.0.0.1" and c.port == 50051 and c.token_file == "" and c.tls_cert == ""
    c.validate()


def test_environment_overrides(tmp_path):
    env = {"AVATARFORGE_HOST": "0.0.0.0", "AVATARFORGE_PORT": "6000", "AVATARFORGE_STORE": str(tmp_path),
           "AVATARFORGE_MAX_STREAMS": "3", "AVATARFORGE_GRACE": "2.5", "AVATARFORGE_TOKEN_FILE": "/t",
           "AVATARFORGE_WORKERS": ""}
    c = ServerConfig.from_env(env)
    assert (c.host, c.port, c.store, c.max_streams, c.grace, c.token_file) == ("0.0.0.0", 6000, tmp_path, 3, 2.5, "/t")
    assert c.workers == ServerConfig().workers  # empty = unset
    assert c.limits().max_streams == 3
    with pytest.raises(ConfigError, match="AVATARFORGE_PORT"):
        ServerConfig.from_env({"AVATARFORGE_PORT": "fifty"})


@pytest.mark.parametrize("changes, phrase", [
    ({"port": 70000}, "outside 0..65535"),
    ({"tls_cert": "c.pem"}, "both --tls-cert and --tls-key"),
    ({"client_ca": "ca.pem"}, "needs --tls-cert"),
    ({"backend": "vulkan"}, "backend"),
    ({"workers": 0}, "workers"),
    ({"max_portrait_bytes": 10_000_000, "max_message_bytes": 5_000_000}, "max_message_bytes"),
    ({"max_streams": 0}, "max_streams"),
])
def test_invalid_configs(changes, phrase):
    with pytest.raises(ConfigError, match=phrase):
        ServerConfig(**changes).validate()


def test_default_store(monkeypatch, tmp_path):
    monkeypatch.delenv("AVATARFORGE_STORE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_store() == tmp_path / "xdg" / "avatarforge" / "avatars"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    assert default_store() == Path.home() / ".local" / "share" / "avatarforge" / "avatars"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_store() == Path.home() / ".local" / "share" / "avatarforge" / "avatars"
    monkeypatch.setenv("AVATARFORGE_STORE", str(tmp_path / "explicit"))
    assert default_store() == tmp_path / "explicit"


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True),
                                            ("localhost", True), ("0.0.0.0", False), ("::", False),
                                            ("192.168.1.5", False), ("example.com", False)])
def test_loopback_detection(host, loopback):
    assert is_loopback(host) is loopback


def test_serve_help_lists_flags_and_env():
    out = subprocess.run([sys.executable, "-m", "grpc_server.cli", "serve", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    for flag in ("--host", "--port", "--store", "--token-file", "--tls-cert", "--tls-key", "--client-ca",
                 "--max-streams", "--max-portrait-bytes", "--max-pixels", "--workers", "AVATARFORGE_PORT"):
        assert flag in out.stdout


def test_exposed_without_tokens_warns_loudly(tmp_path):
    srv = ServerProcess(tmp_path / "store", "--host", "0.0.0.0", "--allow-unauthenticated-remote", "true",
                        env={"AVATARFORGE_MAX_STREAMS": "5"})
    try:
        assert srv.host == "0.0.0.0"
        assert "WITHOUT authentication" in srv.log()
        with AvatarForgeClient(f"127.0.0.1:{srv.port}") as c:
            assert c.info().limits.max_streams == 5  # the environment reached the server
    finally:
        assert srv.stop() == 0
