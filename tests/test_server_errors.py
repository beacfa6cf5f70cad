"""Bad requests: each gets the right status and a sentence, the server stays SERVING and the store unchanged."""
from __future__ import annotations

import io
import os
import threading
import time

import grpc
import numpy as np
import pytest
from PIL import Image
from portrait_helpers import astronaut, astronaut_jpeg, astronaut_on_canvas, astronaut_png, encode, png_with_header_size
from server_helpers import SERVING, ServerProcess, put_synthetic_avatar, store_listing

from grpc_server.client import AvatarForgeClient, ClientError, frame_request
from grpc_server.proto import pb

pytestmark = pytest.mark.timeout(900)

MAX_PORTRAIT = 1_000_000
MAX_MESSAGE = 2_000_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    avatar_id = put_synthetic_avatar(store, seed=0)
    srv = ServerProcess(store, "--max-portrait-bytes", str(MAX_PORTRAIT), "--max-message-bytes", str(MAX_MESSAGE),
                        "--max-streams", "2", "--max-pending-jobs", "1")
    srv.avatar_id = avatar_id
    yield srv
    assert srv.stop() == 0, srv.log()


@pytest.fixture(scope="module")
def client(server):
    with server.client() as c:
        yield c


@pytest.fixture
def unchanged(server):
    """Asserts after the test that the server is SERVING and the store holds exactly what it held before."""
    before = store_listing(server.store)
    yield
    assert server.health() == SERVING, server.log()
    assert store_listing(server.store) == before
    assert server.proc.poll() is None


def expect(code: grpc.StatusCode, *phrases: str):
    class _Expect:
        def __enter__(self):
            return self

        def __exit__(self, kind, exc, tb):
            assert exc is not None, f"expected {code.name}, the call succeeded"
            assert isinstance(exc, ClientError), f"expected ClientError, got {kind.__name__}: {exc}"
            assert exc.code == code, f"expected {code.name}, got {exc.code.name}: {exc.message}"
            for p in phrases:
                assert p.lower() in exc.message.lower(), f"{p!r} not in {exc.message!r}"
            assert len(exc.message.split()) >= 3, "the status must carry a sentence"
            return True

    return _Expect()


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


# -- portraits --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, data, code, phrase", [
    ("random bytes", np.random.default_rng(0).bytes(5000), grpc.StatusCode.INVALID_ARGUMENT, "not an image"),
    ("empty", b"", grpc.StatusCode.INVALID_ARGUMENT, "empty"),
    ("truncated png", None, grpc.StatusCode.INVALID_ARGUMENT, "truncated"),
    ("truncated jpeg", None, grpc.StatusCode.INVALID_ARGUMENT, "truncated"),
    ("30000x30000 header", png_with_header_size(30000, 30000), grpc.StatusCode.RESOURCE_EXHAUSTED, "too large"),
    ("no face", None, grpc.StatusCode.INVALID_ARGUMENT, "face"),
    ("two faces", None, grpc.StatusCode.INVALID_ARGUMENT, "2 faces"),
    ("tiny face", None, grpc.StatusCode.INVALID_ARGUMENT, "pixels wide"),
    ("over the portrait limit", np.random.default_rng(1).bytes(MAX_PORTRAIT + 10),
     grpc.StatusCode.RESOURCE_EXHAUSTED, "too large"),
])
def test_bad_portraits(client, unchanged, name, data, code, phrase):
    if name == "truncated png":
        data = astronaut_png()[: len(astronaut_png()) // 2]
    elif name == "truncated jpeg":
        data = astronaut_jpeg()[: len(astronaut_jpeg()) // 2]
    elif name == "no face":
        data = png_bytes(np.full((512, 512, 3), (90, 140, 200), dtype=np.uint8))
    elif name == "two faces":
        data = encode(np.concatenate([astronaut(), astronaut()], axis=1), "JPEG", quality=90)
    elif name == "tiny face":
        data = png_bytes(astronaut_on_canvas(480, 180))
    with expect(code, phrase):
        client.create(data)


def test_missing_face_models_are_a_failed_precondition(tmp_path):
    """A server without its perception models says so at GetServerInfo and refuses CreateAvatar with
    FAILED_PRECONDITION naming the make target, writing nothing."""
    store = tmp_path / "store"
    srv = ServerProcess(store, env={"AVATARFORGE_MODEL_DIR": str(tmp_path / "no-models")})
    try:
        with srv.client() as c:
            projective = {g.name: g for g in c.info().generators}["projective"]
            assert not projective.available and "make models" in projective.unavailable_reason
            with expect(grpc.StatusCode.FAILED_PRECONDITION, "make models"):
                c.create(astronaut_png())
        assert store_listing(store) == []
        assert srv.health() == SERVING
    finally:
        assert srv.stop() == 0, srv.log()


def test_oversized_message_is_refused_by_transport(client, unchanged):
    with expect(grpc.StatusCode.RESOURCE_EXHAUSTED, "larger than"):
        client.create(np.random.default_rng(2).bytes(MAX_MESSAGE + 100_000))


def test_unknown_generator_and_bad_landmarks(client, unchanged):
    with expect(grpc.StatusCode.INVALID_ARGUMENT, "unknown generator", "projective"):
        client.create(astronaut_jpeg(), generator="stylegan9")
    with expect(grpc.StatusCode.INVALID_ARGUMENT, "landmarks"):
        client.create(astronaut_jpeg(), landmarks=[1.0, 2.0, 3.0])


# -- expressions, cameras, frames -------------------------------------------------------------------

@pytest.mark.parametrize("expression, phrases", [
    ({"jawOpen": float("nan")}, ("jawOpen", "finite")),
    ({"jawOpen": 1.5}, ("jawOpen", "outside [0, 1]")),
    ([0.0] * 51 + [float("nan")], ("tongueOut", "finite")),
    ([0.0] * 10 + [-0.5] + [0.0] * 41, ("eyeLookDownLeft", "outside")),
    ({"jawOpenWide": 0.5}, ("unknown blendshape name", "jawOpenWide")),
    ([0.5] * 51, ("52 weights",)),
])
def test_bad_expressions(server, client, unchanged, expression, phrases):
    with expect(grpc.StatusCode.INVALID_ARGUMENT, *phrases):
        client.render(server.avatar_id, expression=expression, size=32)


def test_bad_cameras_and_frames(server, client, unchanged):
    with expect(grpc.StatusCode.INVALID_ARGUMENT, "pitch"):
        client.render(server.avatar_id, pitch=95, size=32)
    with expect(grpc.StatusCode.INVALID_ARGUMENT, "25 values"):
        client.render(server.avatar_id, camera=np.zeros(16), size=32)
    with expect(grpc.StatusCode.INVALID_ARGUMENT, "rotation"):
        client.render(server.avatar_id, camera=np.r_[np.ones(16), np.eye(3).ravel()], size=32)
    with expect(grpc.StatusCode.INVALID_ARGUMENT, "head pose"):
        client.render(server.avatar_id, head_pose=(10.0, 0.0, 0.0), size=32)
    with expect(grpc.StatusCode.INVALID_ARGUMENT, "eye"):
        client.render(server.avatar_id, eye=[0.1, 0.2], size=32)
    with expect(grpc.StatusCode.INVALID_ARGUMENT, "width 8", "16..2048"):
        client.render(server.avatar_id, size=(32, 8))
    with expect(grpc.StatusCode.INVALID_ARGUMENT, "jpeg_quality"):
        client.render(server.avatar_id, size=32, encoding="jpeg", jpeg_quality=101)
    with expect(grpc.StatusCode.INVALID_ARGUMENT, "background"):
        client.render(server.avatar_id, size=32, background=(2, 0, 0))
    # 1024x1024 RAW with depth cannot fit this server's 2 MB messages: refused before any rendering.
    with expect(grpc.StatusCode.RESOURCE_EXHAUSTED, "message limit"):
        client.render_frame(server.avatar_id, size=1024, encoding="raw", depth=True)


# -- ids ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad_id, phrase", [
    ("0" * 64, "does not exist"),
    ("../../../../etc/passwd", "not a valid avatar id"),
    ("..", "not a valid avatar id"),
    ("/" + "0" * 63, "not a valid avatar id"),
    ("", "not a valid avatar id"),
])
def test_unknown_and_traversal_ids(client, unchanged, bad_id, phrase):
    with expect(grpc.StatusCode.NOT_FOUND, phrase):
        client.get(bad_id)
    with expect(grpc.StatusCode.NOT_FOUND, phrase):
        client.render(bad_id, size=32)
    with expect(grpc.StatusCode.NOT_FOUND, phrase):
        list(client.stream(bad_id, [{"yaw": 0}], size=32))
    with expect(grpc.StatusCode.NOT_FOUND, phrase):
        client.export(bad_id, ["tables"], "/nonexistent-never-written")
    if phrase == "does not exist":
        assert client.delete(bad_id) is False
    else:
        with expect(grpc.StatusCode.NOT_FOUND, phrase):
            client.delete(bad_id)


def test_bad_page_token(client, unchanged):
    with expect(grpc.StatusCode.INVALID_ARGUMENT, "page_token"):
        try:
            client.stub.ListAvatars(pb.ListAvatarsRequest(page_token="../../etc"))
        except grpc.RpcError as e:
            raise ClientError(e.code(), e.details()) from None


# -- streams -------------------------------------------------------------------------------------------

def raw_stream(client, messages, timeout=120):
    try:
        return list(client.stub.RenderStream(iter(messages), timeout=timeout))
    except grpc.RpcError as e:
        raise ClientError(e.code(), e.details()) from None


def start_message(avatar_id, mode=pb.EVERY_FRAME):
    return pb.RenderStreamRequest(start=pb.StreamStart(avatar_id=avatar_id, mode=mode,
                                                       options=pb.FrameOptions(width=32, height=32)))


def test_stream_protocol_errors(server, client, unchanged):
    frame = pb.RenderStreamRequest(frame=frame_request(0))
    with expect(grpc.StatusCode.INVALID_ARGUMENT, "first RenderStream message must be `start`"):
        raw_stream(client, [frame])
    with expect(grpc.StatusCode.INVALID_ARGUMENT, "only once"):
        raw_stream(client, [start_message(server.avatar_id), frame, start_message(server.avatar_id)])
    # Frames before a bad request are answered, then the stream ends naming the bad one.
    got = []
    bad = pb.RenderStreamRequest(frame=frame_request(3, expression={"jawOpen": 7.0}))
    with expect(grpc.StatusCode.INVALID_ARGUMENT, "frame seq 3", "jawOpen"):
        for f in client.stream(server.avatar_id, [frame_request(i) for i in range(3)] + [bad.frame], size=32):
            got.append(f.seq)
    assert got == [0, 1, 2]
    assert raw_stream(client, [start_message(server.avatar_id)]) == []  # start alone: an empty, clean stream


def test_stream_limit_and_cancellation_release_slots(server, client, unchanged):
    """--max-streams 2: a third concurrent stream is refused; cancelled streams free their slots."""
    def endless():
        i = 0
        while True:
            yield {"yaw": float(i % 40 - 20), "seq": i}
            i += 1
            time.sleep(0.01)

    for _round in range(3):  # leaked slots would make the second and third rounds fail
        streams = [client.stream(server.avatar_id, endless(), size=32, mode="latest_wins") for _ in range(2)]
        firsts = [next(s) for s in streams]
        assert all(f.rgba.shape == (32, 32, 4) for f in firsts)
        with expect(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many concurrent render streams"):
            list(client.stream(server.avatar_id, [{"yaw": 0}], size=32))
        for s in streams:
            next(s)
            s.close()  # the client goes away mid-stream
        time.sleep(0.5)
    frames = list(client.stream(server.avatar_id, [{"yaw": 0}, {"yaw": 1}], size=32))
    assert [f.seq for f in frames] == [0, 1]


def test_cancel_mid_stream_with_raw_call(server, client, unchanged):
    stop = threading.Event()

    def requests():
        yield start_message(server.avatar_id)
        i = 0
        while not stop.is_set():
            yield pb.RenderStreamRequest(frame=frame_request(i, yaw=i % 30))
            i += 1

    call = client.stub.RenderStream(requests())
    received = [next(call).seq for _ in range(3)]
    call.cancel()
    stop.set()
    assert received == [0, 1, 2]
    with pytest.raises(grpc.RpcError) as e:
        next(call)
    assert e.value.code() == grpc.StatusCode.CANCELLED


# -- deadlines -----------------------------------------------------------------------------------------

def test_deadline_shorter_than_a_render(server, client, unchanged):
    with expect(grpc.StatusCode.DEADLINE_EXCEEDED):
        client.render(server.avatar_id, size=512, timeout=0.005)
    assert client.render(server.avatar_id, size=32).shape == (32, 32, 4)


def test_deadline_shorter_than_a_create_saves_nothing(server, client, unchanged):
    portrait = astronaut_jpeg(quality=85)
    with expect(grpc.StatusCode.DEADLINE_EXCEEDED):
        client.create(portrait, timeout=1.0)
    # The cancelled create holds the only job slot (--max-pending-jobs 1) until it has stopped; once a new
    # create is admitted (and fails on its own input), the cancelled one is over and must have saved nothing.
    no_face = png_bytes(np.zeros((256, 256, 3), np.uint8))
    for _ in range(600):
        try:
            client.create(no_face)
        except ClientError as e:
            if e.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                time.sleep(0.2)
                continue
            assert e.code == grpc.StatusCode.INVALID_ARGUMENT
            break
    else:
        pytest.fail("the cancelled create never released its job slot")


# -- authentication ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("auth")
    tokens = root / "tokens"
    tokens.write_text("# team tokens\nfirst-secret-token\n\nsecond-secret-token\n")
    srv = ServerProcess(root / "store", "--token-file", str(tokens))
    yield srv
    assert srv.stop() == 0, srv.log()


def test_tokens(auth_server):
    before = store_listing(auth_server.store)
    for token, phrase in ((None, "missing credentials"), ("wrong-token", "invalid credentials"),
                          ("first-secret-token-but-longer", "invalid credentials")):
        with AvatarForgeClient(auth_server.address, token=token) as c:
            with expect(grpc.StatusCode.UNAUTHENTICATED, phrase):
                c.info()
            with expect(grpc.StatusCode.UNAUTHENTICATED, phrase):
                c.create(astronaut_jpeg())
            with expect(grpc.StatusCode.UNAUTHENTICATED, phrase):
                list(c.stream("0" * 64, [{"yaw": 0}]))
    for token in ("first-secret-token", "second-secret-token"):
        with AvatarForgeClient(auth_server.address, token=token) as c:
            assert c.info().auth_required is True
            assert list(c.list()) == []
    assert auth_server.health() == SERVING  # health stays open for probes
    assert store_listing(auth_server.store) == before


def test_bad_token_file_fails_start(tmp_path):
    empty = tmp_path / "tokens"
    empty.write_text("\n# nothing\n")
    with pytest.raises(AssertionError, match="contains no tokens"):
        ServerProcess(tmp_path / "store", "--token-file", str(empty))
    assert not os.path.exists(tmp_path / "store") or store_listing(tmp_path / "store") == []
