"""The Export RPC against a real server: byte-for-byte equal to an in-process export, corruption detected."""
import json
from pathlib import Path

import grpc
import pytest

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "faceverse"
FORMATS = ["glb", "tables", "animation", "triplane"]
PROTO_OPTIONS = {"texture_size": 256, "without_static_parts": True, "frame_rate": 24.0}


def _sources():
    if REFERENCE.is_dir():
        return [(p.name, p.read_bytes()) for p in sorted(REFERENCE.glob("coeffs_v3_*.npy"))]
    return [("take.json", json.dumps([{"jawOpen": 0.2}, {"jawOpen": 0.8}]).encode())]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server_helpers = pytest.importorskip("server_helpers")
    try:
        import avatar.render
        import avatar.synthetic  # noqa: F401 - imported only to learn whether they are available
    except ImportError as exc:
        pytest.skip(f"the synthetic avatar and renderer are not available yet ({exc})")
    root = tmp_path_factory.mktemp("grpc_export")
    avatar_id = server_helpers.put_synthetic_avatar(root / "store", seed=2)
    proc = server_helpers.ServerProcess(root / "store")
    yield proc, avatar_id
    proc.stop()


def test_grpc_export_equals_in_process_export(server, tmp_path):
    from avatar.asset import load_avatar
    from exporter.api import export
    from exporter.options import ExportOptions

    proc, avatar_id = server
    with proc.client() as client:
        remote = client.export(avatar_id, FORMATS, tmp_path / "remote", options=PROTO_OPTIONS,
                               animation=_sources())
    local = export(load_avatar(proc.store / avatar_id), FORMATS,
                   ExportOptions(texture_size=256, include_static=False, frame_rate=24.0), _sources(),
                   tmp_path / "local")
    assert sorted(p.relative_to(tmp_path / "remote").as_posix() for p in remote) == sorted(local)
    for rel in local:
        assert (tmp_path / "remote" / rel).read_bytes() == (tmp_path / "local" / rel).read_bytes(), rel


class _CorruptOneChunk(grpc.UnaryStreamClientInterceptor):
    """Flips one byte of the first data chunk of avatar.glb on its way to the client."""

    def intercept_unary_stream(self, continuation, client_call_details, request):
        responses = continuation(client_call_details, request)

        class Wrapped:
            def __init__(self):
                self.done = False

            def __iter__(self):
                return self

            def __next__(self):
                event = next(responses)
                if not self.done and event.HasField("chunk") and event.chunk.path == "avatar.glb" \
                        and len(event.chunk.data) > 100:
                    data = bytearray(event.chunk.data)
                    data[100] ^= 0xFF
                    event.chunk.data = bytes(data)
                    self.done = True
                return event

            def cancel(self):
                return responses.cancel()

        return Wrapped()


def test_corrupted_chunk_is_caught_by_sha256(server, tmp_path):
    from grpc_server.client import ClientError
    from grpc_server.proto import pb_grpc

    proc, avatar_id = server
    with proc.client() as client:
        client.stub = pb_grpc.AvatarForgeStub(grpc.intercept_channel(client._channel, _CorruptOneChunk()))
        with pytest.raises(ClientError) as err:
            client.export(avatar_id, ["glb"], tmp_path / "out", options=PROTO_OPTIONS)
    assert err.value.code == grpc.StatusCode.DATA_LOSS and "sha256" in err.value.message
    assert not (tmp_path / "out" / "avatar.glb").exists()


def test_cli_export_through_the_server(server, tmp_path, capsys):
    from grpc_server.cli import main

    proc, avatar_id = server
    rc = main(["export", avatar_id, "--server", proc.address, "-o", str(tmp_path / "out"), "--formats", "tables"])
    assert rc == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "blendshapes.json").read_text())["avatar_id"] == avatar_id
