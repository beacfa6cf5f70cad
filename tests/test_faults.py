"""Injected faults (issue 13): a store that fills up, a read-only store, kill -9 during an export and
during a bake, a corrupted avatar, transient bake failures, racing loaders; and the security checks
that need no network beyond loopback.

The full and read-only stores are real filesystems: the server runs alone in a user + mount namespace
(`unshare -rm`) whose store is a small tmpfs the test mounts; the test reaches it through
/proc/<pid>/root. Nothing is mounted outside that namespace, and it disappears with the process.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from portrait_helpers import astronaut_jpeg
from server_helpers import ROOT, SERVING, ServerProcess, put_synthetic_avatar, store_listing

from grpc_server.client import ClientError
from grpc_server.proto import pb

pytestmark = pytest.mark.timeout(900)


def _namespaces_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


needs_namespaces = pytest.mark.skipif(not _namespaces_available(),
                                      reason="needs unshare -rm and tmpfs mounts in a user namespace")


def expect_status(code: grpc.StatusCode, call, *phrases: str) -> ClientError:
    with pytest.raises(ClientError) as info:
        call()
    e = info.value
    assert e.code == code, f"expected {code.name}, got {e.code.name}: {e.message}"
    for p in phrases:
        assert p.lower() in e.message.lower(), f"{p!r} not in {e.message!r}"
    return e


class TmpfsServer(ServerProcess):
    """`avatarforge serve` whose store is a fresh tmpfs of `size_mb` in a mount namespace of its own."""

    def __init__(self, store: Path, size_mb: int, *args: str):
        self.store = Path(store)
        self.store.mkdir(parents=True, exist_ok=True)
        self.args = list(args)
        self.log_path = self.store.parent / f"tmpfs-server-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")
        serve = [sys.executable, "-m", "grpc_server.cli", "serve", "--host", "127.0.0.1", "--port", "0",
                 "--store", str(self.store), *self.args]
        mount = f'mount -t tmpfs -o size={size_mb}m tmpfs "$0" && exec "$@"'
        self.proc = subprocess.Popen(["unshare", "-rm", "sh", "-c", mount, str(self.store), *serve], cwd=ROOT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                                     stderr=self._log)
        self.host, self.port = self._wait_ready()
        self.address = f"{self.host}:{self.port}"
        self.stdout_rest: list[bytes] = []
        threading.Thread(target=lambda: self.stdout_rest.extend(self.proc.stdout), daemon=True).start()

    @property
    def inside(self) -> Path:
        """The store as the server sees it (the tmpfs), from outside its namespace."""
        return Path(f"/proc/{self.proc.pid}/root") / self.store.relative_to("/")

    def fill(self, leave_bytes: int) -> Path:
        """Fill the tmpfs until `leave_bytes` remain; returns the filler file."""
        stat = os.statvfs(self.inside)
        free = stat.f_bavail * stat.f_frsize
        filler = self.inside / "filler"
        with open(filler, "wb") as f:
            f.truncate(0)
            block = b"\0" * (1 << 20)
            remaining = max(0, free - leave_bytes)
            while remaining > 0:
                remaining -= f.write(block[:min(len(block), remaining)])
        return filler


# -- a store that fills up --------------------------------------------------------------------------------

@needs_namespaces
def test_full_store_during_create_and_export(tmp_path):
    """RESOURCE_EXHAUSTED with a sentence, nothing partial left, still SERVING; works once space returns."""
    srv = TmpfsServer(tmp_path / "store", 64)
    try:
        with srv.client(timeout=300) as c:
            filler = srv.fill(leave_bytes=2 << 20)
            before = sorted(os.listdir(srv.inside))
            expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, lambda: c.create(astronaut_jpeg(), timeout=300),
                          "no space left")
            assert sorted(os.listdir(srv.inside)) == before, "a failed create left something behind"
            assert srv.health() == SERVING
            filler.unlink()
            avatar_id = c.create(astronaut_jpeg(), timeout=300)
            assert [a.avatar_id for a in c.list()] == [avatar_id]

            filler = srv.fill(leave_bytes=1 << 20)
            before = sorted(os.listdir(srv.inside))
            out = tmp_path / "export"
            expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          lambda: c.export(avatar_id, ["triplane"], out, timeout=300), "no space left")
            assert sorted(os.listdir(srv.inside)) == before, "a failed export left its scratch behind"
            assert srv.health() == SERVING
            filler.unlink()
            written = c.export(avatar_id, ["triplane"], out, timeout=300)
            assert any(p.name.endswith(".exr") for p in written)
            assert c.render(avatar_id, size=32).shape == (32, 32, 4)
    finally:
        assert srv.stop() == 0, srv.log()


@needs_namespaces
def test_read_only_store_is_a_clear_error_at_start_up(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    serve = [sys.executable, "-m", "grpc_server.cli", "serve", "--port", "0", "--store", str(store)]
    mount = 'mount -t tmpfs -o ro,size=1m tmpfs "$0" && exec "$@"'
    run = subprocess.run(["unshare", "-rm", "sh", "-c", mount, str(store), *serve], cwd=ROOT, capture_output=True,
                         text=True, timeout=180)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "not writable" in run.stderr and "Read-only file system" in run.stderr, run.stderr[-2000:]
    assert "listening" not in run.stdout


# -- kill -9 ------------------------------------------------------------------------------------------------

def test_kill_9_during_an_export_leaves_the_store_usable(tmp_path):
    """The export's scratch lives in the store as a .tmp- directory: invisible, and swept at start-up once
    it is older than the sweep age (here aged by hand, as if the restart came later)."""
    store = tmp_path / "store"
    avatar_id = put_synthetic_avatar(store)
    srv = ServerProcess(store)
    started = threading.Event()
    outcome: list = []

    def export():
        try:
            with srv.client() as c:
                c.export(avatar_id, ["glb"], tmp_path / "out", progress=lambda p: started.set(), timeout=600)
            outcome.append("finished")
        except ClientError as e:
            outcome.append(e.code)

    worker = threading.Thread(target=export, daemon=True)
    worker.start()
    assert started.wait(300), srv.log()
    srv.kill9()
    worker.join(60)
    assert outcome and outcome[0] == grpc.StatusCode.UNAVAILABLE, outcome
    leftovers = [n for n in os.listdir(store) if n.startswith(".tmp-export-")]
    assert len(leftovers) == 1, os.listdir(store)
    old = time.time() - 3600
    os.utime(store / leftovers[0], (old, old))

    srv = ServerProcess(store)
    try:
        assert store_listing(store) == [avatar_id], "the restart must sweep the dead export's scratch"
        with srv.client() as c:
            assert [a.avatar_id for a in c.list()] == [avatar_id]
            assert c.render(avatar_id, size=32).shape == (32, 32, 4)
            assert {p.name for p in c.export(avatar_id, ["tables"], tmp_path / "out2")} >= {"blendshapes.json"}
    finally:
        assert srv.stop() == 0, srv.log()


def _bake(inputs: Path, out: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "grpc_server.cli", "bake", str(inputs), "-o", str(out),
                             "--formats", "tables"], cwd=ROOT, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def test_bake_retries_transient_failures_and_resumes_after_kill_9(tmp_path):
    """Run 1: the perception models are missing (a server condition, not the portrait's fault): each face
    is tried 3 times, recorded as retryable, while the junk file fails once for good. Run 2 (models back)
    is killed -9 mid-batch. Run 3 skips the junk file and what run 2 finished, and bakes the rest."""
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    (inputs / "a_junk.png").write_bytes(b"not an image")
    faces = [f"face_{k}.jpg" for k in range(6)]
    for k, name in enumerate(faces):  # distinct bytes, so each is a job of its own
        (inputs / name).write_bytes(astronaut_jpeg(quality=80 + k))

    empty_models = tmp_path / "no-models"
    empty_models.mkdir()
    run1 = _bake(inputs, out, {"AVATARFORGE_MODEL_DIR": str(empty_models)})
    assert run1.wait(300) == 1, run1.stderr.read().decode()[-2000:]
    report = {r["input"]: r for r in json.loads((out / "report.json").read_text())["inputs"]}
    assert report["a_junk.png"]["status"] == "error" and report["a_junk.png"]["attempts"] == 1
    assert report["a_junk.png"]["retryable"] is False
    for name in faces:
        face = report[name]
        assert face["status"] == "error" and face["retryable"] is True and face["attempts"] == 3, face
        assert "PerceptionUnavailable" in face["error"]

    def baked() -> set[str]:
        return {p.parent.name for p in out.glob("face_*/bake.json") if json.loads(p.read_text())["status"] == "ok"}

    run2 = _bake(inputs, out)
    deadline = time.monotonic() + 300
    while not baked() and time.monotonic() < deadline:
        time.sleep(0.2)  # the first face is baked: the batch is under way
    assert run2.poll() is None, "the batch finished before it could be interrupted"
    os.killpg(run2.pid, signal.SIGKILL)
    run2.wait(60)
    done_before = baked()
    assert 1 <= len(done_before) < len(faces)

    run3 = _bake(inputs, out)
    _, stderr = run3.communicate(timeout=600)
    assert run3.returncode == 0, stderr.decode()[-2000:]
    report = {r["input"]: r for r in json.loads((out / "report.json").read_text())["inputs"]}
    assert report["a_junk.png"]["status"] == "skipped-error"
    for name in faces:
        expected = "skipped-ok" if name.split(".")[0] in done_before else "ok"
        assert report[name]["status"] == expected and report[name]["attempts"] == 1, report[name]
        assert (out / name.split(".")[0] / "blendshapes.json").is_file()
    assert not list(out.rglob("*.partial"))


def test_a_portrait_that_vanishes_mid_bake_is_a_retryable_error(tmp_path):
    """Regression: bake_one read the input outside its error handling, so a file moved away between
    listing and baking crashed the whole batch."""
    from exporter.bake import bake_one
    from exporter.options import ExportOptions

    record = bake_one(str(tmp_path / "gone.png"), str(tmp_path / "out"), ["tables"], ExportOptions())
    assert record["status"] == "error" and record["retryable"] is True and "cannot read" in record["error"]


# -- a corrupted avatar -------------------------------------------------------------------------------------

def test_corrupted_avatar_is_data_loss_for_that_id_only(tmp_path):
    store = tmp_path / "store"
    good, bad, unreadable = (put_synthetic_avatar(store, seed=s) for s in (0, 1, 2))
    tensors = store / bad / "avatar.safetensors"
    data = bytearray(tensors.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = os.urandom(64)
    tensors.write_bytes(bytes(data))
    (store / unreadable / "avatar.json").write_text("{ not json")
    srv = ServerProcess(store)
    try:
        with srv.client() as c:
            expect_status(grpc.StatusCode.DATA_LOSS, lambda: c.render(bad, size=32), bad)
            expect_status(grpc.StatusCode.DATA_LOSS, lambda: list(c.stream(bad, [{"yaw": 0}], size=32)), bad)
            expect_status(grpc.StatusCode.DATA_LOSS, lambda: c.export(bad, ["tables"], tmp_path / "o"), bad)
            expect_status(grpc.StatusCode.DATA_LOSS, lambda: c.get(unreadable), unreadable)
            assert c.render(good, size=32).shape == (32, 32, 4)
            assert {a.avatar_id for a in c.list()} == {good, bad}  # the unreadable one is skipped
            assert srv.health() == SERVING
    finally:
        assert srv.stop() == 0, srv.log()


# -- in process ------------------------------------------------------------------------------------------

def test_nvdiffrast_context_is_created_once_under_racing_threads(monkeypatch):
    """Regression: `_contexts` was filled from several render threads with no lock. nvdiffrast needs
    CUDA, so its context class is stood in for by one that is slow to build and counts its builds."""
    import types

    from avatar.raster import nvdiffrast_backend as backend

    built = []

    class SlowContext:
        def __init__(self, device):
            built.append(device)
            time.sleep(0.05)

    fake = types.ModuleType("nvdiffrast.torch")
    fake.RasterizeCudaContext = SlowContext
    monkeypatch.setitem(sys.modules, "nvdiffrast", types.ModuleType("nvdiffrast"))
    monkeypatch.setitem(sys.modules, "nvdiffrast.torch", fake)
    monkeypatch.setattr(backend, "_contexts", {})
    import torch

    got = []
    threads = [threading.Thread(target=lambda: got.append(backend._context(torch.device("cuda", 0))))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and len({id(g) for g in got}) == 1


# -- security ----------------------------------------------------------------------------------------------

def test_listening_beyond_loopback_without_tokens_needs_an_explicit_flag(tmp_path):
    from grpc_server.config import ConfigError, ServerConfig

    with pytest.raises(ConfigError, match=r"refusing to listen on 0\.0\.0\.0 without authentication"):
        ServerConfig(host="0.0.0.0", store=tmp_path).validate()
    ServerConfig(host="0.0.0.0", store=tmp_path, token_file="tokens").validate()
    ServerConfig(host="0.0.0.0", store=tmp_path, allow_unauthenticated_remote=True).validate()
    ServerConfig(host="::1", store=tmp_path).validate()
    assert ServerConfig.from_env({"AVATARFORGE_ALLOW_UNAUTHENTICATED_REMOTE": "yes"}).allow_unauthenticated_remote
    with pytest.raises(ConfigError, match="AVATARFORGE_ALLOW_UNAUTHENTICATED_REMOTE"):
        ServerConfig.from_env({"AVATARFORGE_ALLOW_UNAUTHENTICATED_REMOTE": "maybe"})
    run = subprocess.run([sys.executable, "-m", "grpc_server.cli", "serve", "--host", "0.0.0.0", "--port", "0",
                          "--store", str(tmp_path / "s")], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert run.returncode == 2 and "refusing to listen" in run.stderr and "listening on" not in run.stdout


def test_export_names_and_ids_cannot_escape(tmp_path):
    """Ids are 64 lowercase hex digits before any path is built; animation file names must be plain;
    the client refuses a server-sent path outside its output folder."""
    from grpc_server import exports
    from grpc_server.app.exports import checked_paths
    from grpc_server.client import _safe_target
    from grpc_server.errors import InvalidRequest
    from grpc_server.store import AvatarNotFound, check_id

    for bad in ("../" + "0" * 61, "/etc/passwd", "0" * 63 + "/", ".." , "0" * 64 + "\x00"):
        with pytest.raises(AvatarNotFound):
            check_id(bad)
    for name in ("../take.csv", "a/b.csv", "a\\b.csv", "..", ".", ""):
        with pytest.raises(InvalidRequest):
            exports.animation_sources([pb.AnimationSource(file_name=name, data=b"x")], ["animation"])
    for rel in ("../evil", "/etc/passwd", "a/../../evil"):
        with pytest.raises(ClientError):
            _safe_target(tmp_path, rel)
    (tmp_path / "out").mkdir()
    with pytest.raises(RuntimeError, match="not a file inside"):
        checked_paths(tmp_path / "out", ["../" + tmp_path.name])


def test_limits_are_per_client(tmp_path):
    """With tokens and --max-streams-per-client 1: a second stream with the same token is refused while another team's
    token still gets one; the slot comes back when the first stream ends."""
    from grpc_server.client import AvatarForgeClient

    tokens = tmp_path / "tokens"
    tokens.write_text("team-a-token\nteam-b-token\n")
    store = tmp_path / "store"
    avatar_id = put_synthetic_avatar(store)
    srv = ServerProcess(store, "--token-file", str(tokens), "--max-streams-per-client", "1",
                        "--max-jobs-per-client", "1")

    def endless():
        i = 0
        while True:
            yield {"yaw": float(i % 20), "seq": i}
            i += 1
            time.sleep(0.02)

    try:
        with AvatarForgeClient(srv.address, token="team-a-token") as a, \
                AvatarForgeClient(srv.address, token="team-b-token") as b:
            first = a.stream(avatar_id, endless(), size=16, mode="latest_wins")
            next(first)
            expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          lambda: list(a.stream(avatar_id, [{"yaw": 0}], size=16)), "per client")
            assert [f.seq for f in b.stream(avatar_id, [{"yaw": 0}, {"yaw": 5}], size=16)] == [0, 1]
            first.close()
            for _ in range(50):  # the server notices the cancellation within its poll interval
                try:
                    assert len(list(a.stream(avatar_id, [{"yaw": 0}], size=16))) == 1
                    break
                except ClientError as e:
                    assert e.code == grpc.StatusCode.RESOURCE_EXHAUSTED
                    time.sleep(0.1)
            else:
                pytest.fail("the per-client stream slot was never released")
            assert srv.health() == SERVING
        # With auth on, health stays open (probes carry no secret) and reflection needs a token.
        from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

        ask = reflection_pb2.ServerReflectionRequest(list_services="")
        with grpc.insecure_channel(srv.address) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            with pytest.raises(grpc.RpcError) as e:
                list(stub.ServerReflectionInfo(iter([ask]), timeout=30))
            assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
            answers = list(stub.ServerReflectionInfo(iter([ask]), timeout=30,
                                                     metadata=(("authorization", "Bearer team-b-token"),)))
            assert "avatarforge.v1.AvatarForge" in {s.name for s in answers[0].list_services_response.service}
    finally:
        assert srv.stop() == 0, srv.log()
