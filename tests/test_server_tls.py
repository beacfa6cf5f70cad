"""TLS and mutual TLS with certificates made by the openssl CLI for this test."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import grpc
import pytest
from server_helpers import ServerProcess

from grpc_server.client import AvatarForgeClient, ClientError

pytestmark = pytest.mark.timeout(600)


def openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def make_pki(d: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=avatarforge test CA", cwd=d)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        (d / f"{name}.ext").write_text(ext + "\n")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN=avatarforge test {name}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    make_pki(d)
    return d


def test_tls(pki):
    srv = ServerProcess(pki / "store-tls", "--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"))
    try:
        with AvatarForgeClient(srv.address, tls_ca=str(pki / "ca.pem")) as c:
            assert c.info().default_generator == "projective"
            assert list(c.list()) == []
        with AvatarForgeClient(srv.address, timeout=10) as plain:
            with pytest.raises(ClientError) as e:
                plain.info()
            assert e.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        assert srv.stop() == 0, srv.log()


def test_mutual_tls(pki):
    srv = ServerProcess(pki / "store-mtls", "--tls-cert", str(pki / "server.pem"), "--tls-key",
                        str(pki / "server.key"), "--client-ca", str(pki / "ca.pem"))
    try:
        with AvatarForgeClient(srv.address, tls_ca=str(pki / "ca.pem"), client_cert=str(pki / "client.pem"),
                               client_key=str(pki / "client.key")) as c:
            assert c.info().version
        with AvatarForgeClient(srv.address, tls_ca=str(pki / "ca.pem"), timeout=10) as anonymous:
            with pytest.raises(ClientError) as e:
                anonymous.info()
            assert e.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        assert srv.stop() == 0, srv.log()


def test_half_configured_tls_refuses_to_start(pki):
    with pytest.raises(AssertionError, match="needs both --tls-cert and --tls-key"):
        ServerProcess(pki / "store-bad", "--tls-cert", str(pki / "server.pem"))
