"""Load, restart and crash behaviour of a real server process."""
from __future__ import annotations

import signal
import threading
import time

import numpy as np
import pytest
from portrait_helpers import astronaut, encode
from server_helpers import SERVING, ServerProcess, put_synthetic_avatar, store_listing

from grpc_server.client import ClientError

pytestmark = pytest.mark.timeout(1200)

STREAMS = 8
FRAMES = 60


def portrait_variant(k: int) -> bytes:
    """Distinct bytes (so a distinct avatar id) of the same face."""
    img = astronaut().copy()
    img[0, 0] = (k % 256, k // 256 % 256, 7)
    return encode(img, "PNG")


def request_params(k: int, i: int) -> dict:
    """Stream k's i-th request; stream k at i asks for what stream 0 asks at i + 3k."""
    p = (i + 3 * k) % 20
    return {"yaw": float(p - 10), "expression": {"jawOpen": (p % 5) / 4}}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    put_synthetic_avatar(root, seed=0)
    return root


def test_concurrent_streams_with_a_create_meanwhile_then_restart(store):
    srv = ServerProcess(store, "--max-streams", str(STREAMS + 1))
    avatar_id = sorted(p.name for p in store.iterdir() if not p.name.startswith("."))[0]
    results: dict[int, list] = {}
    errors: list[BaseException] = []
    created: list[str] = []
    started = threading.Barrier(STREAMS + 1)

    def stream(k: int):
        try:
            with srv.client() as c:
                started.wait(60)
                reqs = [request_params(k, i) for i in range(FRAMES)]
                results[k] = list(c.stream(avatar_id, reqs, mode="every_frame", size=64, encoding="raw"))
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    def create():
        try:
            with srv.client() as c:
                started.wait(60)
                created.append(c.create(portrait_variant(1)))
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    try:
        threads = [threading.Thread(target=stream, args=(k,)) for k in range(STREAMS)]
        threads.append(threading.Thread(target=create))
        for t in threads:
            t.start()
        for t in threads:
            t.join(900)
        assert not errors, f"{errors!r}\n{srv.log()}"
        for k in range(STREAMS):
            frames = results[k]
            assert [f.seq for f in frames] == list(range(FRAMES)), f"stream {k} lost or reordered frames"
            assert all(f.rgba.shape == (64, 64, 4) and f.dropped == 0 for f in frames)
        # The same request on different streams gives the same pixels: concurrent renders do not interfere.
        for k in range(1, STREAMS):
            for i in range(0, FRAMES - 3 * k, 7):
                assert request_params(k, i) == request_params(0, i + 3 * k)
                np.testing.assert_array_equal(results[k][i].rgba, results[0][i + 3 * k].rgba)
        assert len(created) == 1 and len(created[0]) == 64
        assert srv.health() == SERVING

        # SIGTERM: graceful, exit status 0.
        srv.signal(signal.SIGTERM)
        assert srv.wait() == 0, srv.log()
    finally:
        srv.stop()

    # Restart on the same store: avatars from before render after.
    srv2 = ServerProcess(store)
    try:
        with srv2.client() as c:
            ids = {a.avatar_id for a in c.list()}
            assert {avatar_id, created[0]} <= ids
            for i in (avatar_id, created[0]):
                rgba = c.render(i, size=48)
                assert rgba.shape == (48, 48, 4) and (rgba[..., 3] > 128).mean() > 0.05
    finally:
        assert srv2.stop() == 0


def test_latest_wins_under_a_slow_reader_reports_drops(store):
    srv = ServerProcess(store)
    avatar_id = sorted(p.name for p in store.iterdir() if not p.name.startswith("."))[0]
    try:
        with srv.client() as c:
            def paced():
                for i in range(120):
                    yield {"yaw": float(i % 40 - 20), "seq": i}
                    time.sleep(0.002)

            frames = list(c.stream(avatar_id, paced(), mode="latest_wins", size=96, encoding="jpeg"))
        seqs = [f.seq for f in frames]
        assert seqs == sorted(seqs) and seqs[-1] == 119
        assert sum(f.dropped for f in frames) + len(frames) == 120
        assert sum(f.dropped for f in frames) > 0
    finally:
        assert srv.stop() == 0


def test_kill_9_during_create_leaves_no_partial_avatar(store):
    srv = ServerProcess(store)
    before = {p for p in store_listing(store) if not p.startswith(".")}
    progressed = threading.Event()
    outcome: list = []

    def create():
        try:
            with srv.client() as c:
                outcome.append(c.create(portrait_variant(2), progress=lambda p: progressed.set()))
        except ClientError as e:
            outcome.append(e)

    t = threading.Thread(target=create)
    t.start()
    assert progressed.wait(300), srv.log()
    srv.kill9()
    t.join(60)
    assert outcome and isinstance(outcome[0], ClientError)  # the server died under the call

    srv2 = ServerProcess(store)
    try:
        with srv2.client() as c:
            listed = {a.avatar_id for a in c.list()}
            # Nothing new, or (had the kill come after the final rename) a complete avatar that renders.
            assert before <= listed and len(listed - before) <= 1
            for new in listed - before:
                assert c.render(new, size=32).shape == (32, 32, 4)
        visible = {p for p in store_listing(store) if not p.startswith(".")}
        assert visible == listed
    finally:
        assert srv2.stop() == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_ends_streams_with_unavailable_and_exits_0(store, signum):
    import grpc

    srv = ServerProcess(store, "--grace", "20")
    avatar_id = sorted(p.name for p in store.iterdir() if not p.name.startswith("."))[0]
    try:
        with srv.client() as c:
            def endless():
                i = 0
                while True:
                    yield {"yaw": float(i % 30 - 15), "seq": i}
                    i += 1
                    time.sleep(0.02)

            frames = c.stream(avatar_id, endless(), size=32, mode="latest_wins")
            first = next(frames)
            assert first.seq >= 0
            srv.signal(signum)
            with pytest.raises(ClientError) as e:
                for _ in frames:
                    pass
            assert e.value.code == grpc.StatusCode.UNAVAILABLE and "shutting down" in e.value.message
        assert srv.wait() == 0, srv.log()
    finally:
        srv.stop()
