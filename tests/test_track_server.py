"""TrackFace and RenderStream's driving image, called live on a server process (the astronaut photo as
video frames: a real face; a grey frame: no face)."""
from __future__ import annotations

import io
import threading

import grpc
import numpy as np
import pytest
from PIL import Image
from server_helpers import ServerProcess, put_synthetic_avatar

MAX_PORTRAIT_BYTES = 200_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    store = tmp_path_factory.mktemp("track_store")
    avatar_id = put_synthetic_avatar(store, seed=0)
    srv = ServerProcess(store, "--max-portrait-bytes", str(MAX_PORTRAIT_BYTES))
    srv.avatar_id = avatar_id
    yield srv
    assert srv.stop() == 0, srv.log()


@pytest.fixture(scope="module")
def stub(server):
    from grpc_server.proto import pb_grpc

    with grpc.insecure_channel(server.address) as channel:
        yield pb_grpc.AvatarForgeStub(channel)


def _jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def face_jpeg() -> bytes:
    from skimage import data

    return _jpeg(data.astronaut()[:320, 40:360])


@pytest.fixture(scope="module")
def grey_jpeg() -> bytes:
    return _jpeg(np.full((256, 256, 3), 120, np.uint8))


def _requests(images, mode=None, frame_rate=30.0):
    from grpc_server.proto import pb

    yield pb.TrackFaceRequest(start=pb.TrackStart(mode=mode or pb.EVERY_FRAME, frame_rate=frame_rate))
    for seq, image in enumerate(images):
        yield pb.TrackFaceRequest(frame=pb.TrackFrame(seq=seq, image=image))


def test_track_face_sends_a_header_then_one_answer_per_frame(stub, face_jpeg, grey_jpeg):
    from avatar.expressions import ARKIT_NAMES

    images = [face_jpeg, face_jpeg, grey_jpeg, face_jpeg]
    answers = list(stub.TrackFace(_requests(images), timeout=120))
    assert answers[0].WhichOneof("response") == "header"
    assert tuple(answers[0].header.channel_names) == ARKIT_NAMES and len(answers[0].header.eye_names) == 4
    faces = [a.face for a in answers[1:]]
    assert all(a.WhichOneof("response") == "face" for a in answers[1:])
    assert [f.seq for f in faces] == [0, 1, 2, 3]
    assert [f.found for f in faces] == [True, True, False, True]
    assert faces[2].confidence == 0 and faces[0].confidence > 0.3
    assert all(len(f.weights) == 52 and len(f.eye) == 4 for f in faces)
    # The lost frame holds the last values.
    assert list(faces[2].weights) == list(faces[1].weights)
    smile = ARKIT_NAMES.index("mouthSmileLeft")
    assert faces[0].weights[smile] > 0.1, "the astronaut smiles"


def test_latest_wins_drops_what_the_tracker_cannot_keep_up_with(stub, face_jpeg):
    from grpc_server.proto import pb

    sent = 12
    answers = list(stub.TrackFace(_requests([face_jpeg] * sent, mode=pb.LATEST_WINS), timeout=120))
    faces = [a.face for a in answers[1:]]
    assert faces and [f.seq for f in faces] == sorted(f.seq for f in faces)
    assert len(faces) + sum(f.dropped for f in faces) == sent
    assert faces[-1].seq == sent - 1, "the newest frame is always answered"


def test_a_client_that_stops_reading_does_not_hold_up_other_streams(stub, face_jpeg, grey_jpeg):
    from grpc_server.proto import pb

    stalled = stub.TrackFace(_requests([face_jpeg] * 30, mode=pb.LATEST_WINS), timeout=120)
    next(stalled)  # the header; then nothing is read for a while
    done = threading.Event()
    result = {}

    def other():
        result["answers"] = list(stub.TrackFace(_requests([grey_jpeg, face_jpeg]), timeout=120))
        done.set()

    threading.Thread(target=other, daemon=True).start()
    assert done.wait(120), "a second stream must be served while the first is not read"
    assert [a.face.found for a in result["answers"][1:]] == [False, True]
    rest = [a.face for a in stalled]
    assert rest[-1].seq == 29 and len(rest) + sum(f.dropped for f in rest) == 30


@pytest.mark.parametrize("make, code, words", [
    (lambda pb, img: [pb.TrackFaceRequest(frame=pb.TrackFrame(seq=0, image=img))], "INVALID_ARGUMENT",
     "first TrackFace message must be `start`"),
    (lambda pb, img: [pb.TrackFaceRequest(start=pb.TrackStart()),
                      pb.TrackFaceRequest(frame=pb.TrackFrame(seq=4, image=b"GIF89a not really"))],
     "INVALID_ARGUMENT", "image"),
    (lambda pb, img: [pb.TrackFaceRequest(start=pb.TrackStart()),
                      pb.TrackFaceRequest(frame=pb.TrackFrame(seq=7, image=b"\xff\xd8" + bytes(MAX_PORTRAIT_BYTES)))],
     "RESOURCE_EXHAUSTED", f"limit {MAX_PORTRAIT_BYTES} bytes"),
    (lambda pb, img: [pb.TrackFaceRequest(start=pb.TrackStart(frame_rate=-5))], "INVALID_ARGUMENT", "frame_rate"),
])
def test_bad_track_requests_get_a_status_with_a_sentence(stub, face_jpeg, make, code, words):
    from grpc_server.proto import pb

    with pytest.raises(grpc.RpcError) as info:
        list(stub.TrackFace(iter(make(pb, face_jpeg)), timeout=60))
    assert info.value.code().name == code, info.value.details()
    assert words in info.value.details()


def test_server_info_states_the_track_frame_limit(stub):
    from grpc_server.proto import pb

    assert stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=30).limits.max_track_frames > 0


def test_render_stream_driven_by_an_image(stub, server, face_jpeg, grey_jpeg):
    from grpc_server.proto import pb

    def frames(driving):
        yield pb.RenderStreamRequest(start=pb.StreamStart(avatar_id=server.avatar_id,
                                                          options=pb.FrameOptions(width=64, height=64,
                                                                                  encoding=pb.RAW_RGBA8)))
        for seq, image in enumerate(driving):
            yield pb.RenderStreamRequest(frame=pb.FrameRequest(seq=seq, driving_image=image))

    neutral, *_ = list(stub.RenderStream(frames([b""]), timeout=120))
    driven = list(stub.RenderStream(frames([face_jpeg, grey_jpeg]), timeout=120))
    assert [f.seq for f in driven] == [0, 1]
    image = lambda f: np.frombuffer(f.data, np.uint8).reshape(64, 64, 4).astype(int)  # noqa: E731
    assert np.abs(image(driven[0]) - image(neutral)).mean() > 0.5, "the tracked face must change the frame"
    # No face in the second driving image: the last tracked values are held.
    np.testing.assert_array_equal(image(driven[1]), image(driven[0]))
    with pytest.raises(grpc.RpcError) as info:
        list(stub.RenderStream(frames([b"not an image"]), timeout=60))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_python_client_tracks_frames(server, face_jpeg, grey_jpeg):
    from avatar.expressions import ARKIT_NAMES

    with server.client() as client:
        names, faces = client.track([face_jpeg, grey_jpeg, face_jpeg], frame_rate=30.0, timeout=120)
        faces = list(faces)
    assert tuple(names) == ARKIT_NAMES
    assert [f.seq for f in faces] == [0, 1, 2] and [f.found for f in faces] == [True, False, True]
    assert faces[0].weights[ARKIT_NAMES.index("mouthSmileLeft")] > 0.1
