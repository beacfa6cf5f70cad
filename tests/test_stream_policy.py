"""How streams share the cores (grpc_server.app.rendering's march policies): the rule, and that under
every policy concurrent streams through a real server get exactly the frames a lone render gets."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from server_helpers import ROOT, ServerProcess, put_synthetic_avatar

from grpc_server.app.march_policy import MARCH_POLICIES, march_threads
from grpc_server.config import env_name

pytestmark = pytest.mark.timeout(300)

STREAMS = 4
FRAMES = 5
SIZE = 64


@pytest.mark.parametrize(("policy", "cores", "rendering", "asking", "slots", "expected"), [
    ("all", 2, 2, 4, 2, 2),
    ("all", 8, 1, 1, 4, 8),
    ("share", 2, 1, 4, 2, 2),   # alone in a slot when it starts, though others wait
    ("share", 2, 2, 4, 2, 1),
    ("share", 8, 3, 3, 4, 2),
    ("demand", 2, 1, 1, 2, 2),  # a lone stream marches on every core
    ("demand", 2, 1, 4, 2, 1),  # as many frames asking as cores: one each, though it starts alone
    ("demand", 8, 2, 2, 4, 4),
    ("demand", 8, 4, 9, 4, 2),  # no more frames share the cores than hold slots
    ("demand", 2, 2, 3, 4, 1),  # more frames than cores: never fewer than one
])
def test_march_threads_rule(policy, cores, rendering, asking, slots, expected):
    assert march_threads(policy, cores, rendering, asking, slots) == expected


def request(i: int) -> dict:
    return {"yaw": float(6 * i - 12), "expression": {"jawOpen": i / (FRAMES - 1)}}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    return root, put_synthetic_avatar(root, seed=0)


@pytest.mark.parametrize("policy", MARCH_POLICIES)
def test_concurrent_streams_get_a_lone_renders_frames(store, policy):
    root, avatar_id = store
    srv = ServerProcess(root, "--render-slots", "2", env={env_name("march_policy"): policy})
    results: dict[int, list] = {}
    errors: list[BaseException] = []
    started = threading.Barrier(STREAMS)

    def stream(k: int) -> None:
        try:
            with srv.client() as c:
                started.wait(60)
                # Each stream starts at another frame, so different frames render side by side.
                order = [(i + k) % FRAMES for i in range(FRAMES)]
                frames = c.stream(avatar_id, [{**request(i), "seq": i} for i in order], size=SIZE, encoding="raw")
                results[k] = sorted(frames, key=lambda f: f.seq)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    try:
        threads = [threading.Thread(target=stream, args=(k,)) for k in range(STREAMS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(240)
        assert not errors, f"{errors!r}\n{srv.log()}"
        with srv.client() as c:  # alone: the frame's march gets every core under every policy
            lone = [c.render(avatar_id, size=SIZE, **request(i)) for i in range(FRAMES)]
        assert (lone[0][..., 3] > 128).mean() > 0.05
        for k in range(STREAMS):
            assert [f.seq for f in results[k]] == list(range(FRAMES))
            for i, frame in enumerate(results[k]):
                np.testing.assert_array_equal(frame.rgba, lone[i], err_msg=f"stream {k}, frame {i}")
    finally:
        assert srv.stop() == 0


def test_unknown_policy_is_refused_with_a_sentence(store):
    root, _ = store
    done = subprocess.run([sys.executable, "-m", "grpc_server.cli", "serve", "--port", "0", "--store", str(root)],
                          cwd=ROOT, env={**os.environ, env_name("march_policy"): "greedy"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "march policy 'greedy'" in done.stdout + done.stderr and "Traceback" not in done.stderr
