"""Two `serve` replicas on one store directory (the shape of a shared-volume or NFS deployment).

Behaviour decided here and documented in docs/DEPLOY.md: an avatar created on one replica is served by
every replica; creating the same portrait on two replicas at once leaves one avatar and nothing partial;
a delete takes effect at once for every new call on every replica (NOT_FOUND), while a RenderStream that
was already open keeps rendering the copy it loaded until it ends, even on a replica that had the avatar
loaded (it asks the store before it uses its cache). A replica that drains (SIGTERM) ends
its streams with UNAVAILABLE and the client reopens them on another.
"""
from __future__ import annotations

import json
import queue
import signal
import threading
import time
from functools import partial

import grpc
import numpy as np
import pytest
from server_helpers import SERVING, ServerProcess, put_synthetic_avatar, store_listing

from grpc_server.client import ClientError

pytestmark = pytest.mark.timeout(900)
GUARD_S = 300.0  # for calls that run a create; a guard, never a speed check
DRAIN_GUARD_S = 10.0  # for a replica to leave SERVING after SIGTERM; a guard, never a speed check


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    store = tmp_path_factory.mktemp("shared") / "store"
    store.mkdir()
    started: list[ServerProcess] = []
    errors: list[BaseException] = []

    def start():
        try:
            started.append(ServerProcess(store))
        except BaseException as exc:  # noqa: BLE001 - reported below, after both tries
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        if errors:
            raise errors[0]
        yield store, started[0], started[1]
    finally:
        for server in started:
            server.stop()


def _not_found(call) -> str:
    with pytest.raises(ClientError) as e:
        call()
    assert e.value.code == grpc.StatusCode.NOT_FOUND, e.value
    return str(e.value)


def _serving(server) -> bool:
    """Health says SERVING; NOT_SERVING or a refused check (a draining or stopped replica) is False."""
    try:
        return server.health() == SERVING
    except grpc.RpcError:
        return False


def _stops_serving(server) -> bool:
    """Health leaves SERVING within DRAIN_GUARD_S. The server handles a signal on its own time: on a loaded
    machine an immediate check could still find it serving."""
    deadline = time.monotonic() + DRAIN_GUARD_S
    while _serving(server):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_created_on_a_is_served_by_b(replicas, astronaut_png, tmp_path):
    _, a, b = replicas
    with a.client() as ca, b.client() as cb:
        avatar_id = ca.create(astronaut_png, timeout=GUARD_S)
        info = cb.get(avatar_id, include_thumbnail=True)
        assert info.avatar_id == avatar_id and info.thumbnail_png.startswith(b"\x89PNG")
        assert avatar_id in [x.avatar_id for x in cb.list()]
        on_a, on_b = ca.render(avatar_id, yaw=20, size=64), cb.render(avatar_id, yaw=20, size=64)
        assert on_b.shape == (64, 64, 4) and (on_b[..., 3] > 0).mean() > 0.2
        np.testing.assert_array_equal(on_a, on_b)  # one avatar, one deterministic renderer
        frames = list(cb.stream(avatar_id, [{"yaw": y} for y in (-20, 0, 20)], size=64))
        assert [f.seq for f in frames] == [0, 1, 2]
        written = cb.export(avatar_id, ["tables"], tmp_path / "export")
        tables = json.loads(next(p for p in written if p.name == "blendshapes.json").read_text())
        assert tables["avatar_id"] == avatar_id and len(tables["targets"]) == 52


def test_the_same_portrait_created_on_both_at_once_is_one_avatar(replicas):
    from portrait_helpers import astronaut, encode

    store, a, b = replicas
    portrait = encode(np.ascontiguousarray(astronaut()[:, ::-1]), "PNG")  # not yet in the store
    before = set(store_listing(store))
    results: dict[str, str] = {}
    shortcuts: list[str] = []
    go = threading.Barrier(2)

    def create(name, server):
        def progress(p):
            if "already exists" in p.message:
                shortcuts.append(name)

        with server.client() as c:
            go.wait()
            results[name] = c.create(portrait, progress=progress, timeout=GUARD_S)

    threads = [threading.Thread(target=create, args=(n, s)) for n, s in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) == {"a", "b"} and results["a"] == results["b"]
    assert not shortcuts  # both replicas generated it: the race at the store really happened
    avatar_id = results["a"]
    assert set(store_listing(store)) - before == {avatar_id}  # no temporary or half-written directory
    listed = json.loads((store / avatar_id / "avatar.json").read_text())["files"]
    assert sorted(p.name for p in (store / avatar_id).iterdir()) == sorted([*listed, "avatar.json"])
    with a.client() as ca, b.client() as cb:
        assert ca.get(avatar_id).source_sha256 == cb.get(avatar_id).source_sha256
        assert cb.render(avatar_id, size=32).shape == (32, 32, 4)


def test_delete_on_a_while_b_streams(replicas, tmp_path):
    """B's open stream keeps its loaded copy; new calls for the avatar are NOT_FOUND on both replicas."""
    store, a, b = replicas
    avatar_id = put_synthetic_avatar(store, seed=3)
    requests: queue.Queue = queue.Queue()

    def frames():
        while (item := requests.get()) is not None:
            yield item

    with a.client() as ca, b.client() as cb:
        stream = cb.stream(avatar_id, frames(), size=32)
        requests.put({"seq": 0})
        assert next(stream).seq == 0
        assert ca.delete(avatar_id) is True
        assert not (store / avatar_id).exists()
        requests.put({"seq": 1, "yaw": 10})
        assert next(stream).seq == 1  # the open stream renders on from its copy
        requests.put(None)
        assert list(stream) == []

        for client in (cb, ca):
            assert "does not exist" in _not_found(partial(client.get, avatar_id))
            _not_found(partial(client.export, avatar_id, ["tables"], tmp_path / "x"))
        _not_found(lambda: ca.render(avatar_id, size=32))
        _not_found(lambda: list(ca.stream(avatar_id, [{"yaw": 0}], size=32)))
        assert ca.delete(avatar_id) is False and cb.delete(avatar_id) is False
    assert not [n for n in store_listing(store) if n.startswith(".trash-")]


def test_a_replica_does_not_render_an_avatar_deleted_elsewhere(replicas):
    store, a, b = replicas
    avatar_id = put_synthetic_avatar(store, seed=4)
    with a.client() as ca, b.client() as cb:
        cb.render(avatar_id, size=32)  # B has its renderers loaded
        assert ca.delete(avatar_id) is True
        _not_found(lambda: cb.render(avatar_id, size=32))
        _not_found(lambda: list(cb.stream(avatar_id, [{"yaw": 0}], size=32)))


def test_a_draining_replica_ends_its_streams_and_the_other_takes_them(replicas):
    """SIGTERM on A (a rolling restart): A's open stream ends UNAVAILABLE, naming another replica, and the
    client reopens it on B. Runs last: it stops A."""
    store, a, b = replicas
    avatar_id = put_synthetic_avatar(store, seed=5)
    assert _serving(a) and _serving(b)
    requests: queue.Queue = queue.Queue()

    def frames():
        while (item := requests.get()) is not None:
            yield item

    with a.client() as ca, b.client() as cb:
        stream = ca.stream(avatar_id, frames(), size=32)
        requests.put({"seq": 0})
        assert next(stream).seq == 0
        a.signal(signal.SIGTERM)
        assert _stops_serving(a)  # what takes A out of the balancer's rotation
        with pytest.raises(ClientError) as e:
            for seq in range(1, 200):  # the server answers what it has queued, then ends the stream
                requests.put({"seq": seq})
                next(stream)
        requests.put(None)
        assert e.value.code == grpc.StatusCode.UNAVAILABLE and "another replica" in e.value.message
        assert a.wait() == 0
        assert [f.seq for f in cb.stream(avatar_id, [{"seq": 7, "yaw": 5}], size=32)] == [7]
        assert _serving(b)
