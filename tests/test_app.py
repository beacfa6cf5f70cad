"""The application layer in process (grpc_server.app): the renderer cache, the job pool, exports as
chunks, and the layering rule that it imports neither gRPC nor protobuf."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from server_helpers import ROOT, put_synthetic_avatar

from avatar.camera import camera_vector
from exporter.options import ExportOptions
from grpc_server.app.application import Application, AppOptions
from grpc_server.app.errors import Cancelled, InvalidRequest
from grpc_server.app.jobs import Jobs
from grpc_server.app.renderers import RendererCache
from grpc_server.app.rendering import FrameInputs, RenderOptions
from grpc_server.limits import LimitExceeded
from grpc_server.store import AvatarNotFound, AvatarStore

ALL_IDS = [hashlib.sha256(f"id-{n}".encode()).hexdigest() for n in range(3)]


def test_the_application_layer_imports_no_grpc():
    code = ("import sys, grpc_server.app.application, grpc_server.commands._backend; "
            "bad = sorted(m for m in sys.modules if m == 'grpc' or m.startswith(('grpc.', 'google.protobuf', "
            "'grpc_server._proto', 'grpc_server.proto'))); print(bad); sys.exit(1 if bad else 0)")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr


def test_cache_is_bounded_and_evicts():
    loads = []

    def load(avatar_id):
        loads.append(avatar_id)
        return type("Loaded", (), {"avatar_id": avatar_id})()

    cache = RendererCache(load, lambda avatar: avatar.avatar_id, capacity=2)
    pools = [cache.pool(i) for i in ALL_IDS]
    assert cache.pool(ALL_IDS[2]) is pools[2]
    assert cache.pool(ALL_IDS[0]) is not pools[0]  # evicted (capacity 2), loaded again
    with cache.pool(ALL_IDS[2]).lease() as renderer:  # still cached
        assert renderer == ALL_IDS[2]
    cache.evict(ALL_IDS[2])
    cache.pool(ALL_IDS[2])
    assert loads == [ALL_IDS[0], ALL_IDS[1], ALL_IDS[2], ALL_IDS[0], ALL_IDS[2]]


def test_renderer_pool_limits_instances():
    made = []
    cache = RendererCache(lambda i: object(), lambda a: made.append(1) or object(), renderers_per_avatar=2)
    pool = cache.pool(ALL_IDS[0])
    leased, release = [], threading.Event()

    def hold():
        with pool.lease() as r:
            leased.append(r)
            release.wait(30)

    holders = [threading.Thread(target=hold) for _ in range(3)]
    for t in holders:
        t.start()
    for _ in range(500):
        if len(leased) >= 2:
            break
        threading.Event().wait(0.01)
    assert len(leased) == 2 and len(made) == 2  # the third waits rather than building a third renderer
    release.set()
    for t in holders:
        t.join()
    assert len(leased) == 3 and len(made) == 2


def test_failed_loads_leave_no_lock_behind(tmp_path):
    """Regression: a lock stayed behind for every id that failed to load, so requests for unknown
    well-formed ids grew the table without bound."""
    store = AvatarStore(tmp_path / "store")
    cache = RendererCache(store.load, lambda a: object())
    rng = np.random.default_rng(0)
    unknown = ["".join(rng.choice(list("0123456789abcdef"), 64)) for _ in range(200)]

    def load(avatar_id):
        try:
            cache.pool(avatar_id)
        except AvatarNotFound:
            pass

    threads = [threading.Thread(target=lambda ids=unknown[i::8]: [load(a) for a in ids]) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.loading() == 0


def test_concurrent_loads_of_one_avatar_share_one_pool(tmp_path):
    root = tmp_path / "store"
    avatar_id = put_synthetic_avatar(root)
    store = AvatarStore(root)
    loads = []

    def load(i):
        loads.append(i)
        return store.load(i)

    cache = RendererCache(load, lambda a: object())
    pools = []
    threads = [threading.Thread(target=lambda: pools.append(cache.pool(avatar_id))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(p) for p in pools}) == 1 and loads == [avatar_id] and cache.loading() == 0


def test_jobs_report_progress_refuse_beyond_limits_and_stop_when_cancelled():
    jobs = Jobs(workers=1, max_pending=1, max_per_client=1)
    try:
        def work(progress):
            progress("half", 0.5, "halfway")
            progress("nan", float("nan"))
            return 42

        run = jobs.run(work)
        events = []
        while True:
            try:
                events.append(next(run))
            except StopIteration as done:
                assert done.value == 42
                break
        assert [(e.stage, e.fraction) for e in events] == [("half", 0.5), ("nan", 0.0)]

        started, stop = threading.Event(), threading.Event()

        def slow(progress):
            started.set()
            while True:
                progress("working", 0.1)
                stop.wait(0.05)

        gone = threading.Event()
        first = jobs.run(slow, client="a", cancelled=gone.is_set)
        next(first)
        with pytest.raises(LimitExceeded, match="too many concurrent"):
            next(jobs.run(lambda p: 0, client="b"))
        gone.set()
        with pytest.raises(Cancelled):
            for _ in first:
                pass
        for _ in range(500):  # the job unwinds at its next progress report and gives its slot back
            if jobs.slots.used == 0:
                break
            threading.Event().wait(0.01)
        assert jobs.slots.used == 0 and jobs.client_slots.used("a") == 0
    finally:
        jobs.close()


@pytest.fixture
def app(tmp_path):
    application = Application(AvatarStore(tmp_path / "store"), AppOptions(render_slots=1))
    application.avatar_id = put_synthetic_avatar(application.store.root)
    yield application
    application.close()


def test_render_options_are_checked_and_used(app):
    inputs = FrameInputs(camera=camera_vector(yaw_deg=15.0), expression=np.zeros(52, np.float32), head_pose=None,
                         eye=None)
    for bad in ({"neural_resolution": 7}, {"neural_resolution": 1025}, {"upsampler": "nearest"}):
        with pytest.raises(InvalidRequest):
            RenderOptions(height=48, width=64, **bad)
    edge = app.render(app.avatar_id, inputs, RenderOptions(height=48, width=64, neural_resolution=16))
    bilinear = app.render(app.avatar_id, inputs, RenderOptions(height=48, width=64, neural_resolution=16,
                                                               upsampler="bilinear"))
    fine = app.render(app.avatar_id, inputs, RenderOptions(height=48, width=64, neural_resolution=64))
    assert edge.rgb.shape == (48, 64, 3) and edge.alpha.shape == (48, 64) and edge.alpha.max() > 0.9
    assert not np.array_equal(edge.alpha, bilinear.alpha)  # the edge-aware pass re-sharpened the silhouette
    assert np.abs(fine.alpha - edge.alpha).mean() > 1e-3   # marched at another resolution


def test_export_as_chunks_then_gone(app, tmp_path):
    progress = []
    run = app.export(app.avatar_id, ["TABLES"], ExportOptions())
    while True:
        try:
            progress.append(next(run))
        except StopIteration as done:
            files = done.value
            break
    assert progress and progress[-1].stage == "done"
    with files:
        assert files.root.parent == app.store.root and files.root.name.startswith(".tmp-")
        received: dict[str, bytearray] = {}
        for chunk in files.chunks(1000):
            received.setdefault(chunk.path, bytearray()).extend(chunk.data)
            if chunk.last:
                assert hashlib.sha256(received[chunk.path]).hexdigest() == chunk.sha256
                assert chunk.size == len(received[chunk.path])
    assert sorted(received) == ["blendshapes.csv", "blendshapes.json", "blendshapes.npz"]
    assert not files.root.exists() and os.listdir(app.store.root) == [app.avatar_id]
    with pytest.raises(InvalidRequest, match="plain file name"):
        next(app.export(app.avatar_id, ["animation"], ExportOptions(), [("../take.csv", b"")]))
    with pytest.raises(AvatarNotFound):
        next(app.export("0" * 64, ["tables"], ExportOptions()))
    written = app.export_to(app.avatar_id, ["tables"], ExportOptions(), [], tmp_path / "out")
    assert sorted(written) == sorted(received)
    assert (tmp_path / "out" / "blendshapes.json").read_bytes() == bytes(received["blendshapes.json"])


def test_an_export_closed_mid_way_leaves_nothing(app):
    run = app.export(app.avatar_id, ["tables"], ExportOptions())
    next(run)
    run.close()  # the caller went away
    for _ in range(500):
        if os.listdir(app.store.root) == [app.avatar_id]:
            break
        threading.Event().wait(0.02)
    assert os.listdir(app.store.root) == [app.avatar_id]


def test_delete_drops_the_cached_renderers(app):
    pool = app.renderers.pool(app.avatar_id)
    assert app.delete(app.avatar_id) is True
    assert app.delete(app.avatar_id) is False
    with pytest.raises(AvatarNotFound):
        app.renderers.pool(app.avatar_id)
    assert pool.avatar.avatar_id == app.avatar_id
    assert not Path(app.store.root / app.avatar_id).exists()
