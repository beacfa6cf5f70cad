"""Property tests over every RPC's inputs (issue 13): hypothesis searches cameras, orbits, expressions,
eyes, head poses, frame options, stream sequences, export options, ids and page tokens.

The property, for every input: a frame (transparent where nothing is seen), or INVALID_ARGUMENT with a
sentence (NOT_FOUND for ids, RESOURCE_EXHAUSTED for sizes above the server's limits). Never INTERNAL,
never a dead stream, and the server is still SERVING afterwards with its store unchanged.

`make test` runs a bounded number of examples per property (a few seconds each); `make fuzz` sets
AVATARFORGE_FUZZ_EXAMPLES to search far longer.
"""
from __future__ import annotations

import base64
import functools
import math
import os
import time

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from server_helpers import SERVING, ServerProcess, put_synthetic_avatar, store_listing

from avatar import camera as cam
from avatar.expressions import ARKIT_NAMES
from grpc_server import frames
from grpc_server.client import ClientError
from grpc_server.proto import pb

pytestmark = pytest.mark.timeout(600)

EXAMPLES = int(os.environ.get("AVATARFORGE_FUZZ_EXAMPLES", "0")) or None
# Frames stay tiny so a property costs seconds: the server refuses anything above 48x48.
MAX_FRAME_PIXELS = 48 * 48


def bounded(n: int):
    """Hypothesis settings: `n` examples in `make test`, AVATARFORGE_FUZZ_EXAMPLES under `make fuzz`."""
    return settings(max_examples=EXAMPLES or n, deadline=None, derandomize=EXAMPLES is None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


# -- strategies -------------------------------------------------------------------------------------
# Each input mixes valid values (most of the time, so that frames do get rendered) with wrong ones.

any_float = st.floats(allow_nan=True, allow_infinity=True, width=32)
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=32)


def mostly(valid, invalid):
    """`valid` three times in four (hypothesis picks one_of branches evenly)."""
    return st.one_of(valid, valid, valid, invalid)


@st.composite
def rotations(draw) -> np.ndarray:
    q = np.array([draw(st.floats(-1, 1)) for _ in range(4)])
    if np.linalg.norm(q) < 1e-3:
        q = np.array([1.0, 0.0, 0.0, 0.0])
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


@st.composite
def eg3d_cameras(draw) -> list[float]:
    """A finite, invertible extrinsic anywhere from inside the box to far away, looking anywhere (or
    at a point near the head, as viewports mostly do); intrinsics from a sliver of a degree to a
    fisheye, centred anywhere."""
    direction = draw(rotations())[:, 0]
    distance = draw(st.one_of(st.floats(0.9, 4.0), st.floats(0.9, 4.0), st.floats(0.0, 1.0),
                              st.floats(4.0, 1e6)))
    position = direction * distance
    c2w = np.eye(4)
    reach = draw(st.sampled_from([0.2, 0.2, 0.7]))
    target = np.array([draw(st.floats(-reach, reach)) for _ in range(3)])
    if draw(st.booleans()) and np.linalg.norm(target - position) > 1e-3 \
            and np.linalg.norm(np.cross(target - position, [0.0, 1.0, 0.0])) > 1e-6:
        c2w = cam.look_at(position, target)
    else:
        c2w[:3, :3] = draw(rotations())
    c2w[:3, 3] = position
    fx = draw(st.one_of(st.floats(0.5, 10.0), st.floats(0.01, 2.0), st.floats(2.0, 1e4)))
    fy = draw(st.one_of(st.just(fx), st.just(fx), st.floats(0.01, 1e4)))
    cx, cy = draw(st.one_of(st.just((0.5, 0.5)), st.tuples(st.floats(-3, 4), st.floats(-3, 4))))
    k = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    return [float(v) for v in np.concatenate([c2w.reshape(-1), k.reshape(-1)])]


raw_vectors = st.lists(st.one_of(any_float, finite), min_size=0, max_size=30)

orbits = st.builds(pb.OrbitCamera,
                   yaw_deg=mostly(st.floats(-720, 720, width=32), any_float),
                   pitch_deg=mostly(st.floats(-95, 95, width=32), any_float),
                   roll_deg=mostly(st.floats(-720, 720, width=32), any_float),
                   radius=mostly(st.floats(0, 120, width=32), any_float),
                   fov_deg=mostly(st.floats(0, 130, width=32), any_float))

names = mostly(st.sampled_from(ARKIT_NAMES), st.one_of(st.sampled_from(ARKIT_NAMES).map(str.upper),
                                                       st.text(max_size=20)))
weights = mostly(st.floats(0, 1, width=32), st.one_of(st.floats(-2, 3, width=32), any_float))
valid_expressions = st.one_of(
    st.none(),
    st.lists(st.floats(0, 1, width=32), min_size=52, max_size=52).map(lambda w: pb.Expression(weights=w)),
    st.dictionaries(st.sampled_from(ARKIT_NAMES), st.floats(0, 1, width=32), max_size=6)
    .map(lambda m: pb.Expression(named=m)))
expressions = mostly(valid_expressions, st.one_of(
    st.lists(weights, min_size=52, max_size=52).map(lambda w: pb.Expression(weights=w)),
    st.lists(weights, min_size=0, max_size=60).map(lambda w: pb.Expression(weights=w)),
    st.dictionaries(names, weights, max_size=6).map(lambda m: pb.Expression(named=m))))
angle = st.floats(-3.125, 3.125, width=32)
head_poses = mostly(st.one_of(st.none(), st.tuples(angle, angle, angle)),
                    st.tuples(*[st.one_of(st.floats(-7, 7, width=32), any_float)] * 3))
eyes = mostly(st.one_of(st.none(), st.lists(st.floats(-1.5, 1.5, width=32), min_size=4, max_size=4)),
              st.lists(st.one_of(st.floats(-2, 2, width=32), any_float), min_size=0, max_size=6))


valid_orbits = st.builds(pb.OrbitCamera, yaw_deg=st.floats(-720, 720, width=32),
                         pitch_deg=st.floats(-88, 88, width=32), roll_deg=st.floats(-180, 180, width=32),
                         radius=st.one_of(st.just(0.0), st.floats(1.0, 100, width=32)),
                         fov_deg=st.one_of(st.just(0.0), st.floats(1, 120, width=32)))
valid_head_poses = st.one_of(st.none(), st.tuples(angle, angle, angle))
valid_eyes = st.one_of(st.none(), st.lists(st.floats(-1.5, 1.5, width=32), min_size=4, max_size=4))


@st.composite
def frame_messages(draw, seq: int = 0) -> pb.FrameRequest:
    """Two requests in three are sane throughout (a viewport's traffic); the rest may be wrong anywhere."""
    sane = draw(st.sampled_from([True, True, False]))
    kinds = ["eg3d", "orbit", "default"] if sane else ["eg3d", "raw", "orbit", "default"]
    kind = draw(st.sampled_from(kinds))
    req = pb.FrameRequest(seq=seq)
    if kind == "eg3d":
        req.camera.eg3d.values.extend(draw(eg3d_cameras()))
    elif kind == "raw":
        req.camera.eg3d.values.extend(draw(raw_vectors))
    elif kind == "orbit":
        req.camera.orbit.CopyFrom(draw(valid_orbits if sane else orbits))
    expr = draw(valid_expressions if sane else expressions)
    if expr is not None:
        req.expression.CopyFrom(expr)
    pose = draw(valid_head_poses if sane else head_poses)
    if pose is not None:
        req.head_pose.CopyFrom(pb.HeadPose(yaw=pose[0], pitch=pose[1], roll=pose[2]))
    eye = draw(valid_eyes if sane else eyes)
    if eye is not None:
        req.eye.extend(eye)
    return req


side = st.integers(16, 48)
valid_frame_options = st.builds(
    pb.FrameOptions, width=side, height=side, encoding=st.integers(0, 3), jpeg_quality=st.integers(0, 100),
    include_depth=st.booleans(), include_alpha=st.booleans(),
    background=st.one_of(st.just([]), st.lists(st.floats(0, 1, width=32), min_size=3, max_size=3)))
wild_frame_options = st.builds(
    pb.FrameOptions, width=st.one_of(side, st.integers(0, 5000), st.integers(0, 2**32 - 1)),
    height=st.one_of(side, st.integers(0, 5000), st.integers(0, 2**32 - 1)),
    encoding=st.one_of(st.integers(0, 3), st.integers(4, 2**31 - 1)),
    jpeg_quality=st.one_of(st.integers(0, 100), st.integers(101, 2**32 - 1)),
    include_depth=st.booleans(), include_alpha=st.booleans(),
    background=st.lists(st.one_of(st.floats(-1, 2, width=32), any_float), max_size=5))
frame_options = st.one_of(valid_frame_options, wild_frame_options)
small_options = st.builds(pb.FrameOptions, width=st.integers(16, 40), height=st.integers(16, 40),
                          encoding=st.sampled_from([pb.RAW_RGBA8, pb.PNG, pb.JPEG]),
                          include_depth=st.booleans(), include_alpha=st.booleans())

hex_ids = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
ids = st.one_of(hex_ids, st.text(max_size=80), st.sampled_from(["", "..", "../etc", "/etc/passwd", "a/../b",
                                                               "A" * 64, "0" * 63, "0" * 65, ".tmp-x", "\x00"]))


# -- the server ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    store = tmp_path_factory.mktemp("props-store")
    avatar_id = put_synthetic_avatar(store, seed=0)
    srv = ServerProcess(store, "--max-frame-pixels", str(MAX_FRAME_PIXELS), "--max-streams", "4")
    srv.avatar_id = avatar_id
    yield srv
    assert srv.stop() == 0, srv.log()


@pytest.fixture(scope="module")
def client(server):
    with server.client(timeout=60) as c:
        yield c


@pytest.fixture
def still_serving(server):
    before = store_listing(server.store)
    yield
    assert server.proc.poll() is None, server.log()
    assert server.health() == SERVING, server.log()
    assert store_listing(server.store) == before


def refused(exc: ClientError, *allowed: grpc.StatusCode, server=None) -> None:
    """A refusal is one of the allowed statuses and carries a sentence, never INTERNAL."""
    event(f"refused {exc.code.name}")
    log = server.log() if server is not None and exc.code == grpc.StatusCode.INTERNAL else ""
    assert exc.code in allowed, f"{exc.code.name}: {exc.message}\n{log}"
    assert len(exc.message.split()) >= 3, f"the status must carry a sentence: {exc.message!r}"


def camera_is_usable(values) -> bool:
    """Whether the server must render this camera (values as the float32 proto carries them)."""
    try:
        cam.validate_camera_vector(np.asarray(values, dtype=np.float32))
    except cam.CameraError:
        return False
    return True


def box_behind(values) -> bool:
    """True when every corner of the head's box is behind the camera: the frame must be empty."""
    v = np.asarray(values, dtype=np.float64)
    c2w = v[:16].reshape(4, 4)
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    depth = (corners - c2w[:3, 3]) @ c2w[:3, 2]
    return bool((depth < 0).all())


def render(client, avatar_id, frame: pb.FrameRequest, options: pb.FrameOptions) -> pb.Frame:
    req = pb.RenderRequest(avatar_id=avatar_id, camera=frame.camera, expression=frame.expression,
                           head_pose=frame.head_pose, eye=frame.eye, options=options)
    if not frame.HasField("camera"):
        req.ClearField("camera")
    try:
        return client.stub.Render(req, timeout=60)
    except grpc.RpcError as e:
        raise ClientError(e.code(), e.details()) from None


# -- the renderer alone (fast, many examples) -------------------------------------------------------

@pytest.fixture(scope="module")
def renderer():
    from server_helpers import synthetic

    from avatar.render import Renderer

    return Renderer(synthetic(0))


def side_camera() -> np.ndarray:
    """Issue 13's crash: an engine viewport panned off the face, narrow field of view, sees the
    avatar's box but no occupied cell."""
    c2w = cam.look_at(np.array([0.0, 0.0, 2.7]), np.array([0.45, 0.45, 0.0]))
    return np.concatenate([c2w.reshape(-1), cam.intrinsics(1.0).reshape(-1)])


def test_camera_that_sees_the_box_but_nothing_in_it_renders_transparent(renderer):
    """Regression: `_march_accelerated` called torch.cat on an empty list for such a camera."""
    for size in (16, 64):
        result = renderer.render(side_camera(), size=size)
        assert result.alpha.shape == (size, size)
        assert float(result.alpha.max()) == 0.0 and float(result.rgb.abs().max()) == 0.0
    # The same viewport panned back onto the face still draws it.
    assert float(renderer.render(cam.camera_vector(cam.Orbit()), size=16).alpha.max()) > 0.5


@bounded(60)
@given(camera=eg3d_cameras())
def test_renderer_property_any_camera(renderer, camera):
    """Every camera gives finite RGB in [0, 1]-ish, alpha in [0, 1], depth >= 0, or a CameraError."""
    try:
        result = renderer.render(camera, size=16)
    except cam.CameraError as e:
        event("CameraError")
        assert len(str(e).split()) >= 3
        assert not camera_is_usable(camera)
        return
    event("drawn" if float(result.alpha.max()) > 0 else "transparent")
    for name, t in (("rgb", result.rgb), ("alpha", result.alpha), ("depth", result.depth)):
        assert bool(np.isfinite(t.numpy()).all()), f"{name} has non-finite values"
    assert 0.0 <= float(result.alpha.min()) and float(result.alpha.max()) <= 1.0 + 1e-5
    assert float(result.depth.min()) >= 0.0
    if box_behind(camera):
        assert float(result.alpha.max()) == 0.0


# -- Render -------------------------------------------------------------------------------------------

@bounded(40)
@given(frame=frame_messages(), options=small_options)
def test_render_property(server, client, still_serving, frame, options):
    try:
        msg = render(client, server.avatar_id, frame, options)
    except ClientError as e:
        refused(e, grpc.StatusCode.INVALID_ARGUMENT, server=server)
        if frame.camera.WhichOneof("camera") == "eg3d" and not frame.HasField("expression") \
                and not frame.HasField("head_pose") and not len(frame.eye):
            assert not camera_is_usable(list(frame.camera.eg3d.values)), e.message
        return
    rgba = frames.decode(msg)
    assert rgba.shape == (options.height, options.width, 4)
    event("frame")
    if options.include_depth:
        assert np.isfinite(frames.decode_depth(msg)).all()
    if frame.camera.WhichOneof("camera") == "eg3d" and not frame.HasField("head_pose") \
            and box_behind(list(frame.camera.eg3d.values)):
        # JPEG carries no alpha unless asked for; the empty frame is then the black background.
        seen = frames.decode_alpha(msg) if msg.alpha else rgba[..., :3] if msg.encoding == pb.JPEG else rgba[..., 3]
        assert int(seen.max()) == 0, "a camera facing away from the head must give a transparent frame"


@bounded(40)
@given(options=frame_options)
def test_frame_options_property(server, client, still_serving, options):
    try:
        msg = render(client, server.avatar_id, pb.FrameRequest(), options)
    except ClientError as e:
        refused(e, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED, server=server)
        return
    assert frames.decode(msg).shape == (options.height or 256, options.width or 256, 4)


# -- RenderStream ---------------------------------------------------------------------------------------

@bounded(15)
@given(data=st.data(), options=small_options, mode=st.sampled_from([pb.EVERY_FRAME, pb.LATEST_WINS, 0, 7]))
def test_stream_property(server, client, still_serving, data, options, mode):
    """Frames come back in order for the valid prefix; the first bad request ends the stream with
    INVALID_ARGUMENT naming its seq. The stream never dies any other way."""
    n = data.draw(st.integers(1, 6))
    requests = [data.draw(frame_messages(seq=i)) for i in range(n)]
    start = pb.RenderStreamRequest(start=pb.StreamStart(avatar_id=server.avatar_id, options=options, mode=mode))
    got = []
    try:
        for f in client.stub.RenderStream(iter([start] + [pb.RenderStreamRequest(frame=r) for r in requests]),
                                          timeout=120):
            assert frames.decode(f).shape == (options.height, options.width, 4)
            got.append(f.seq)
        error = None
        event("stream ended cleanly")
    except grpc.RpcError as e:
        error = ClientError(e.code(), e.details())
        refused(error, grpc.StatusCode.INVALID_ARGUMENT, server=server)
    event(f"{min(len(got), 3)}+ frames" if len(got) >= 3 else f"{len(got)} frames")
    assert got == sorted(got) and len(set(got)) == len(got)
    every_frame = mode != pb.LATEST_WINS  # unset and unknown modes are EVERY_FRAME
    if every_frame and error is None:
        assert got == list(range(n))
    if error is not None and error.message.startswith("frame seq "):
        bad = int(error.message.split()[2].rstrip(":"))
        if every_frame:
            assert got == list(range(bad)), "every frame before the bad one must have been answered"


# -- ids, page tokens, exports ---------------------------------------------------------------------------

@bounded(40)
@given(avatar_id=ids, which=st.sampled_from(["get", "delete", "render", "stream", "export"]))
def test_ids_property(server, client, still_serving, avatar_id, which):
    tiny = pb.FrameOptions(width=16, height=16)
    calls = {
        "get": lambda: client.stub.GetAvatar(pb.GetAvatarRequest(avatar_id=avatar_id), timeout=30),
        "delete": lambda: client.stub.DeleteAvatar(pb.DeleteAvatarRequest(avatar_id=avatar_id), timeout=30),
        "render": lambda: client.stub.Render(pb.RenderRequest(avatar_id=avatar_id, options=tiny), timeout=30),
        "stream": lambda: list(client.stub.RenderStream(iter([pb.RenderStreamRequest(
            start=pb.StreamStart(avatar_id=avatar_id, options=tiny))]), timeout=30)),
        "export": lambda: list(client.stub.Export(pb.ExportRequest(avatar_id=avatar_id, formats=[pb.TABLES]),
                                                  timeout=30)),
    }
    try:
        reply = calls[which]()
    except grpc.RpcError as e:
        refused(ClientError(e.code(), e.details()), grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT,
                server=server)
        return
    assert which == "delete" and reply.deleted is False, f"{which} of unknown id {avatar_id!r} succeeded"


tokens = st.one_of(st.text(max_size=40), st.binary(max_size=40).map(lambda b: base64.urlsafe_b64encode(b).decode()),
                   hex_ids.map(lambda i: base64.urlsafe_b64encode(f"after:{i}".encode()).decode().rstrip("=")))


@bounded(40)
@given(token=tokens, page_size=st.integers(0, 2**32 - 1))
def test_page_tokens_property(server, client, still_serving, token, page_size):
    try:
        page = client.stub.ListAvatars(pb.ListAvatarsRequest(page_size=page_size, page_token=token), timeout=30)
    except grpc.RpcError as e:
        refused(ClientError(e.code(), e.details()), grpc.StatusCode.INVALID_ARGUMENT, server=server)
        return
    stored = len([n for n in store_listing(server.store) if not n.startswith(".")])
    assert len(page.avatars) <= stored and (page.next_page_token == "" or len(page.avatars) == page_size)


export_options = st.builds(
    pb.ExportOptions,
    texture_size=mostly(st.sampled_from([0, 256, 512]), st.one_of(st.integers(0, 5000), st.integers(0, 2**32 - 1))),
    static_triangle_budget=mostly(st.sampled_from([0, 100, 5000]), st.integers(0, 2**32 - 1)),
    without_static_parts=st.booleans(), without_target_normals=st.booleans(),
    frame_rate=mostly(st.floats(0, 1000, width=32), st.one_of(st.floats(-10, 1e5, width=32), any_float)))
export_formats = mostly(st.sampled_from([[pb.TABLES], [pb.ANIMATION], [pb.TABLES, pb.ANIMATION], [pb.GLB]]),
                        st.lists(st.integers(0, 2**31 - 1), max_size=4))
source_names = mostly(st.sampled_from(["take.csv", "take.json", "f0.npy", "f1.npy"]),
                      st.one_of(st.sampled_from(["take.fbx", "../x.csv", "a/b.json", ".", ""]), st.text(max_size=12)))
source_data = st.one_of(st.binary(max_size=64), st.sampled_from([
    b"Timecode,BlendShapeCount,jawOpen\n00:00:00:00.000,1,0.5\n", b'{"frames": [{"jawOpen": 0.5}]}', b"[]",
    b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (621,), }" + b" " * 44 + b"\n"]))


@bounded(12)
@given(options=export_options, formats=export_formats,
       sources=st.lists(st.tuples(source_names, source_data), max_size=2))
def test_export_options_property(server, client, still_serving, options, formats, sources):
    """TABLES and ANIMATION exports run to completion here; GLB/TRIPLANE take seconds each, so any
    such accepted request is cancelled once it starts working, itself a property (no partial state)."""
    req = pb.ExportRequest(avatar_id=server.avatar_id, formats=formats, options=options,
                           animation_source=[pb.AnimationSource(file_name=n, data=d) for n, d in sources])
    call = client.stub.Export(req, timeout=120)
    try:
        for ev in call:
            if ev.HasField("chunk"):
                assert not ev.chunk.path.startswith(("/", "..")) and ".." not in ev.chunk.path.split("/")
            elif set(formats) & {pb.GLB, pb.TRIPLANE}:
                call.cancel()
                return
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.CANCELLED and call.cancelled():
            return
        refused(ClientError(e.code(), e.details()), grpc.StatusCode.INVALID_ARGUMENT, server=server)


@functools.cache
def small_portrait() -> bytes:
    from portrait_helpers import astronaut, encode

    return encode(np.ascontiguousarray(astronaut()[20:220, 150:350]), "JPEG", quality=85)


coordinate = mostly(st.floats(-50, 250, width=32), any_float)
face_boxes = st.one_of(st.none(), st.tuples(coordinate, coordinate, coordinate, coordinate))
landmark_lists = st.one_of(st.none(), st.lists(coordinate, max_size=12),
                           st.sampled_from([136, 135, 956, 957]).flatmap(
                               lambda n: st.lists(coordinate, min_size=n, max_size=n)))


# Seconds a create may take in test_create_inputs_property before the test stops waiting for it.
CREATE_DEADLINE = 6


@bounded(5)
@given(face_box=face_boxes, landmarks=landmark_lists, generator=st.sampled_from(["", "projective", "nope", "../x"]))
def test_create_inputs_property(server, client, face_box, landmarks, generator):
    """Face boxes and landmarks anywhere (NaN, inf, outside the image, wrong counts) and generator names.
    A create that is accepted may run past this test's short deadline; that is fine, a crash is not."""
    req = pb.CreateAvatarRequest(portrait=small_portrait(), generator=generator)
    if face_box is not None:
        req.face_box.CopyFrom(pb.FaceBox(x=face_box[0], y=face_box[1], width=face_box[2], height=face_box[3]))
    if landmarks is not None:
        req.landmarks.CopyFrom(pb.Landmarks(xy=landmarks))
    start = time.monotonic()
    try:
        for _ in client.stub.CreateAvatar(req, timeout=CREATE_DEADLINE):
            pass
        event("created")
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED and time.monotonic() - start >= CREATE_DEADLINE:
            # This test's own deadline: gRPC's client ends the call with its own two words, not a refusal.
            event("ran past the deadline")
        else:
            refused(ClientError(e.code(), e.details() or ""), grpc.StatusCode.INVALID_ARGUMENT,
                    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED,
                    grpc.StatusCode.FAILED_PRECONDITION, server=server)
    assert server.health() == SERVING


def test_server_info_and_health_after_the_search(server, client):
    info = client.stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=30)
    assert info.limits.max_frame_pixels == MAX_FRAME_PIXELS
    assert server.health() == SERVING
    assert math.isfinite(float(np.asarray(client.render(server.avatar_id, size=16)).mean()))
