"""The C++ client (engine_bindings/cpp), built with CMake and driven through its example program
against a live server on 127.0.0.1."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from bindings_helpers import astronaut_png, build_cpp_client, run, running_server

TOKEN = "cpp-client-test-token"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def cpp_binary() -> Path:
    return build_cpp_client()


@pytest.fixture(scope="module")
def server(cpp_binary, tmp_path_factory):
    root = tmp_path_factory.mktemp("cpp_server")
    token_file = root / "tokens.txt"
    token_file.write_text(f"# test tokens\n{TOKEN}\n")
    with running_server(root / "store", root / "server.log", token_file=token_file) as address:
        yield address


def cli(binary: Path, address: str, *args, token: str | None = TOKEN):
    cmd = [binary, "--address", address]
    if token is not None:
        cmd += ["--token", token]
    return run(cmd + list(args))


@pytest.fixture(scope="module")
def avatar_id(cpp_binary, server, tmp_path_factory) -> str:
    portrait = astronaut_png(tmp_path_factory.mktemp("portrait") / "astronaut.png")
    proc = cli(cpp_binary, server, "create", portrait)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines and re.fullmatch(r"[0-9a-f]{64}", lines[-1]), proc.stdout
    # Progress went to stderr as "[ nn%] stage" lines and reached 100%.
    assert "[100%]" in proc.stderr, proc.stderr
    return lines[-1]


def test_info_reports_the_canonical_expression_order(cpp_binary, server):
    proc = cli(cpp_binary, server, "info")
    assert proc.returncode == 0, proc.stderr
    assert "expression_names: 52" in proc.stdout
    assert "auth_required: true" in proc.stdout
    assert re.search(r"^generator: projective ", proc.stdout, re.M), proc.stdout


def test_create_is_idempotent_and_listed(cpp_binary, server, avatar_id):
    got = cli(cpp_binary, server, "get", avatar_id)
    assert got.returncode == 0, got.stderr
    assert got.stdout.startswith(avatar_id) and 'name="astronaut"' in got.stdout
    listed = cli(cpp_binary, server, "list")
    assert listed.returncode == 0, listed.stderr
    assert avatar_id in listed.stdout


def test_render_one_png(cpp_binary, server, avatar_id, tmp_path):
    out = tmp_path / "one.png"
    proc = cli(cpp_binary, server, "render", avatar_id, out)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes().startswith(PNG_SIGNATURE)


def test_stream_30_frames_in_order(cpp_binary, server, avatar_id, tmp_path):
    from PIL import Image

    out = tmp_path / "frames"
    proc = cli(cpp_binary, server, "stream", avatar_id, "30", out, "--size", "128x96")
    assert proc.returncode == 0, proc.stderr
    assert "wrote 30 frames" in proc.stdout
    files = sorted(out.iterdir())
    assert [f.name for f in files] == [f"frame_{i:04d}.png" for i in range(1, 31)]
    for f in files:
        data = f.read_bytes()
        assert data.startswith(PNG_SIGNATURE), f.name
        with Image.open(f) as im:
            assert im.size == (128, 96)
    # The camera sweeps, so the first and last frames must differ.
    assert files[0].read_bytes() != files[-1].read_bytes()


def test_stream_latest_wins_never_goes_back(cpp_binary, server, avatar_id, tmp_path):
    proc = cli(cpp_binary, server, "stream", avatar_id, "12", tmp_path, "--size", "64x64", "--latest-wins")
    assert proc.returncode == 0, proc.stderr
    seqs = sorted(int(f.stem.split("_")[1]) for f in tmp_path.glob("frame_*.png"))
    assert seqs and seqs[-1] == 12


def test_export_glb_and_tables_with_verified_sha256(cpp_binary, server, avatar_id, tmp_path):
    out = tmp_path / "export"
    proc = cli(cpp_binary, server, "export", avatar_id, out, "glb,tables")
    if proc.returncode != 0 and "UNIMPLEMENTED" in proc.stderr:
        pytest.xfail(f"the server does not export yet: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    reported = {}
    for line in proc.stdout.strip().splitlines():
        digest, path = line.split("  ", 1)
        reported[Path(path)] = digest
    assert reported, "the export wrote no files"
    for path, digest in reported.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, path
    names = {p.relative_to(out).as_posix() for p in reported}
    glb = [p for p in reported if p.suffix == ".glb"]
    assert glb and glb[0].read_bytes()[:4] == b"glTF", names
    table = next(p for p in reported if p.name == "blendshapes.json")
    assert len(json.loads(table.read_text())["targets"]) == 52
    # Temporary ".part" files never survive a finished export.
    assert not list(out.rglob("*.part"))


def test_wrong_token_is_unauthenticated(cpp_binary, server):
    proc = cli(cpp_binary, server, "info", token="not-the-token")
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: UNAUTHENTICATED:"), proc.stderr
    missing = cli(cpp_binary, server, "list", token=None)
    assert missing.returncode == 1
    assert "UNAUTHENTICATED" in missing.stderr


def test_stream_of_unknown_avatar_fails_with_not_found(cpp_binary, server, tmp_path):
    proc = cli(cpp_binary, server, "stream", "0" * 64, "3", tmp_path)
    assert proc.returncode == 1
    assert "NOT_FOUND" in proc.stderr, proc.stderr
    assert not list(tmp_path.glob("frame_*.png"))


def test_delete_then_get_is_not_found(cpp_binary, server, avatar_id):
    # Last in the module: later tests would lose the shared avatar.
    proc = cli(cpp_binary, server, "delete", avatar_id)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "deleted"
    gone = cli(cpp_binary, server, "get", avatar_id)
    assert gone.returncode == 1
    assert "NOT_FOUND" in gone.stderr


def test_unreal_sync_copies_client_and_generates_code(tmp_path):
    """engine_bindings/unreal/sync_client.py fills the plugin's client module from cpp/ and protos/."""
    import shutil
    import subprocess
    import sys

    from bindings_helpers import ROOT, require_tools

    require_tools("protoc", "grpc_cpp_plugin")
    plugin = tmp_path / "AvatarForge"
    shutil.copytree(ROOT / "engine_bindings" / "unreal" / "AvatarForge", plugin)
    proc = subprocess.run([sys.executable, ROOT / "engine_bindings" / "unreal" / "sync_client.py", "--plugin", plugin],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    module = plugin / "Source" / "AvatarForgeClient"
    assert (module / "Public" / "avatarforge" / "client.h").read_bytes() == \
        (ROOT / "engine_bindings" / "cpp" / "include" / "avatarforge" / "client.h").read_bytes()
    for name in ("client.cpp", "render_stream.cpp", "export_writer.cpp", "convert.cpp", "sha256.cpp", "internal.h"):
        assert (module / "Private" / "Client" / name).is_file(), name
    generated = module / "Private" / "Generated" / "avatarforge" / "v1"
    assert {p.name for p in generated.iterdir()} == {
        "avatarforge.pb.h", "avatarforge.pb.cc", "avatarforge.grpc.pb.h", "avatarforge.grpc.pb.cc"}
