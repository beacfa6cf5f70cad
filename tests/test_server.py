"""Every RPC through the Python client against a real server subprocess, plus grpcurl (reflection, health)."""
from __future__ import annotations

import json
import subprocess

import grpc
import numpy as np
import pytest
from server_helpers import SERVING, ServerProcess, grpcurl, put_synthetic_avatar, synthetic

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    avatar_id = put_synthetic_avatar(store, seed=0)
    srv = ServerProcess(store)
    srv.avatar_id = avatar_id
    yield srv
    assert srv.stop() == 0, srv.log()


@pytest.fixture(scope="module")
def client(server):
    with server.client() as c:
        yield c


def test_server_info(client):
    from avatar.expressions import ARKIT_NAMES

    info = client.info()
    assert info.version
    assert info.default_generator == "projective"
    projective = {g.name: g for g in info.generators}["projective"]
    assert projective.available and not projective.unavailable_reason
    assert list(info.expression_names) == list(ARKIT_NAMES)
    assert info.limits.max_message_bytes >= info.limits.max_portrait_bytes
    assert info.limits.max_streams >= 1 and info.limits.max_frame_pixels >= 2048 * 2048
    assert info.rasterizer_backend == "cpu" and info.device == "cpu"
    assert info.auth_required is False


def test_grpcurl_lists_services_and_health_is_serving(server):
    tool = grpcurl()
    listed = subprocess.run([tool, "-plaintext", server.address, "list"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    services = listed.stdout.split()
    for name in ("avatarforge.v1.AvatarForge", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"):
        assert name in services
    health = subprocess.run([tool, "-plaintext", server.address, "grpc.health.v1.Health/Check"],
                            capture_output=True, text=True, timeout=60)
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout)["status"] == "SERVING"
    described = subprocess.run([tool, "-plaintext", server.address, "describe", "avatarforge.v1.AvatarForge"],
                               capture_output=True, text=True, timeout=60)
    assert "rpc RenderStream" in described.stdout
    info = subprocess.run([tool, "-plaintext", "-d", "{}", server.address, "avatarforge.v1.AvatarForge/GetServerInfo"],
                          capture_output=True, text=True, timeout=60)
    assert info.returncode == 0 and json.loads(info.stdout)["default_generator"] == "projective"


def test_get_and_list(server, client):
    info = client.get(server.avatar_id, include_thumbnail=True)
    avatar = synthetic(0)
    assert info.avatar_id == server.avatar_id
    assert info.generator == avatar.generator and info.head_model_id == avatar.head_model_id
    np.testing.assert_allclose(info.portrait_camera, avatar.portrait_camera, atol=1e-6)
    if avatar.thumbnail is not None:
        assert info.thumbnail_png.startswith(b"\x89PNG")
    assert client.get(server.avatar_id).thumbnail_png == b""
    assert server.avatar_id in [a.avatar_id for a in client.list(page_size=1)]


def test_render_matches_in_process_renderer(server, client):
    from avatar.camera import camera_vector
    from avatar.expressions import weights_from_map
    from avatar.render import Renderer

    expression = {"jawOpen": 0.7, "eyeBlinkLeft": 1.0}
    frame = client.render_frame(server.avatar_id, yaw=20, pitch=5, expression=expression, size=(48, 64),
                                encoding="raw", depth=True, alpha=True)
    assert frame.rgba.shape == (48, 64, 4) and frame.rgba.dtype == np.uint8
    local = Renderer(synthetic(0)).render(camera_vector(yaw_deg=20, pitch_deg=5), weights_from_map(expression),
                                          size=(48, 64))
    expected = local.rgba8().astype(int)
    got = frame.rgba.astype(int)
    assert np.abs(got[..., 3] - expected[..., 3]).max() <= 1
    visible = expected[..., 3] > 0  # colour is meaningless where alpha is 0
    assert np.abs(got[visible] - expected[visible]).max() <= 1
    assert (frame.rgba[..., 3] > 0).mean() > 0.2  # the head is in the picture
    alpha = np.frombuffer(frame.message.alpha, np.uint8).reshape(48, 64)
    np.testing.assert_array_equal(alpha, frame.rgba[..., 3])
    inside = local.alpha.numpy() > 0.5
    assert np.all(frame.depth[inside] > 1.5) and np.all(frame.depth[inside] < 4.0)
    assert np.all(frame.depth[local.alpha.numpy() <= 1 / 512] == 0)


def test_encodings_agree(server, client):
    common = dict(yaw=-15, expression={"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0}, size=64)
    raw = client.render(server.avatar_id, encoding="raw", **common)
    png = client.render(server.avatar_id, encoding="png", **common)
    np.testing.assert_array_equal(raw, png)
    jpeg = client.render(server.avatar_id, encoding="jpeg", jpeg_quality=95, **common)
    over_black = (raw[..., :3].astype(float) * raw[..., 3:4] / 255.0)
    assert np.abs(jpeg[..., :3].astype(float) - over_black).mean() < 6
    green = client.render(server.avatar_id, encoding="png", background=(0, 1, 0), **common)
    empty = raw[..., 3] == 0
    assert empty.any()
    assert np.all(green[empty][:, :3] == [0, 255, 0]) and np.array_equal(green[..., 3], raw[..., 3])


def test_expression_forms_and_effect(server, client):
    from avatar.expressions import ARKIT_NAMES

    vec = np.zeros(52)
    vec[ARKIT_NAMES.index("jawOpen")] = 1.0
    by_vector = client.render(server.avatar_id, expression=vec, encoding="raw", size=64)
    by_name = client.render(server.avatar_id, expression={"JawOpen": 1.0}, encoding="raw", size=64)
    neutral = client.render(server.avatar_id, encoding="raw", size=64)
    np.testing.assert_array_equal(by_vector, by_name)
    assert np.abs(by_vector.astype(int) - neutral.astype(int)).max() > 20


def test_render_stream_every_frame_in_order(server, client):
    yaws = [-30, -10, 0, 10, 30, 0, 5, -5]
    frames = list(client.stream(server.avatar_id, [{"yaw": y, "seq": 100 + i} for i, y in enumerate(yaws)],
                                mode="every_frame", size=32, encoding="raw"))
    assert [f.seq for f in frames] == [100 + i for i in range(len(yaws))]
    assert all(f.dropped == 0 for f in frames)
    for f, y in zip(frames[:3], yaws[:3]):
        np.testing.assert_array_equal(f.rgba, client.render(server.avatar_id, yaw=y, size=32, encoding="raw"))
    assert all(f.render_ms > 0 and f.queue_ms >= 0 for f in frames)


def test_neural_resolution_and_upsampler_reach_the_renderer(server, client):
    """Render and RenderStream pass both options to the renderer (the frames equal the in-process
    renderer's with them) and refuse values outside their range with a sentence."""
    from avatar.camera import camera_vector
    from avatar.render import Renderer
    from grpc_server.client import ClientError

    local = Renderer(synthetic(0))
    cam = camera_vector(yaw_deg=10)
    for nr, upsampler in ((16, "edge"), (16, "bilinear"), (64, "edge")):
        frame = client.render_frame(server.avatar_id, yaw=10, size=(48, 64), encoding="raw", alpha=True,
                                    neural_resolution=nr, upsampler=upsampler)
        expected = local.render(cam, size=(48, 64), neural_resolution=nr, upsampler=upsampler).rgba8()
        assert np.abs(frame.rgba[..., 3].astype(int) - expected[..., 3].astype(int)).max() <= 1, (nr, upsampler)
        streamed = list(client.stream(server.avatar_id, [{"yaw": 10}], size=(48, 64), encoding="raw",
                                      neural_resolution=nr, upsampler=upsampler))
        np.testing.assert_array_equal(streamed[0].rgba, frame.rgba)
    coarse, sharp = (client.render(server.avatar_id, size=64, encoding="raw", neural_resolution=16, upsampler=u)
                     for u in ("bilinear", "edge"))
    assert not np.array_equal(coarse[..., 3], sharp[..., 3])
    for bad, phrase in (({"neural_resolution": 7}, "neural_resolution 7"),
                        ({"neural_resolution": 1025}, "8..1024"), ({"upsampler": 9}, "upsampler")):
        with pytest.raises(ClientError) as e:
            client.render(server.avatar_id, size=32, **bad)
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and phrase in e.value.message
        with pytest.raises(ClientError) as e:
            list(client.stream(server.avatar_id, [{"yaw": 0}], size=32, **bad))
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and phrase in e.value.message
    assert server.health() == SERVING


def test_render_stream_latest_wins_drops_stale_requests(server, client):
    n = 40
    frames = list(client.stream(server.avatar_id, [{"yaw": (i % 20) - 10} for i in range(n)], mode="latest_wins",
                                size=48, encoding="jpeg"))
    seqs = [f.seq for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert seqs[-1] == n - 1  # the newest request is always answered
    assert len(frames) + sum(f.dropped for f in frames) == n
    assert sum(f.dropped for f in frames) > 0


def test_create_get_list_delete_round_trip(server, client):
    from portrait_helpers import astronaut_jpeg

    events = []
    avatar_id = client.create(astronaut_jpeg(), progress=events.append, display_name="astronaut")
    assert len(avatar_id) == 64
    assert events and all(0.0 <= e.fraction <= 1.0 for e in events)
    assert events[-1].stage == "save"
    info = client.get(avatar_id, include_thumbnail=True)
    assert info.display_name == "astronaut" and info.generator == "projective"
    assert len(info.portrait_camera) == 25 and info.schema_version >= 1
    # Idempotent: the same portrait is the same avatar.
    assert client.create(astronaut_jpeg()) == avatar_id
    ids = [a.avatar_id for a in client.list(page_size=1)]
    assert ids == sorted(ids) and {avatar_id, server.avatar_id} <= set(ids)
    rgba = client.render(avatar_id, size=64)
    assert rgba.shape == (64, 64, 4) and (rgba[..., 3] > 128).mean() > 0.1
    assert client.delete(avatar_id) is True
    assert client.delete(avatar_id) is False
    from grpc_server.client import ClientError

    with pytest.raises(ClientError) as e:
        client.get(avatar_id)
    assert e.value.code == grpc.StatusCode.NOT_FOUND and "does not exist" in e.value.message
    assert avatar_id not in [a.avatar_id for a in client.list()]


def test_export(server, client, tmp_path):
    progress = []
    paths = client.export(server.avatar_id, ["tables"], tmp_path, progress=progress.append)
    names = {p.name for p in paths}
    assert "blendshapes.json" in names
    table = json.loads((tmp_path / "blendshapes.json").read_text())
    assert table["avatar_id"] == server.avatar_id and len(table["targets"]) == 52


def test_health_still_serving(server):
    assert server.health() == SERVING
    assert server.health("avatarforge.v1.AvatarForge") == SERVING
