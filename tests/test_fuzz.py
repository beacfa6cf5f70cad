"""Fuzzed decoders (issue 13): portrait bytes, the animation readers and the protobuf messages.

Each decoder gets real seed files and hypothesis-driven mutations of them (bit flips, overwritten and
inserted bytes, truncation, headers claiming huge sizes). The property: a decoded value, or the
decoder's own error type with a sentence (PortraitError with a known reason, ExportError, DecodeError).
Nothing else may escape: anything else would reach a client as INTERNAL.

Crashes the search found are pinned below as plain regression tests. `make test` runs a short budget;
`make fuzz` sets AVATARFORGE_FUZZ_EXAMPLES for a long one.
"""
from __future__ import annotations

import functools
import io
import json
import os
import struct

import grpc
import numpy as np
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, currently_in_test_context, event, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from portrait_helpers import astronaut, encode, png_chunk, png_with_header_size
from server_helpers import SERVING, ServerProcess, put_synthetic_avatar, store_listing

from avatar.expressions import ARKIT_NAMES
from avatar.portrait.decode import decode_image
from avatar.portrait.errors import REASONS, PortraitError, PortraitLimits
from exporter.options import ExportError
from exporter.sources import from_sources
from grpc_server.proto import pb

pytestmark = pytest.mark.timeout(600)

EXAMPLES = int(os.environ.get("AVATARFORGE_FUZZ_EXAMPLES", "0")) or None


def outcome(name: str) -> None:
    """Counted in --hypothesis-show-statistics (the checks also run outside hypothesis)."""
    if currently_in_test_context():
        event(name)


def budget(n: int):
    return settings(max_examples=EXAMPLES or n, deadline=None, derandomize=EXAMPLES is None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


# -- mutations ------------------------------------------------------------------------------------------

@st.composite
def mutated(draw, seeds: dict[str, bytes]) -> bytes:
    """A seed file with a few edits: flipped bits, overwritten bytes, inserted or deleted runs, a
    truncation. Edits favour the first bytes, where the headers are."""
    data = bytearray(seeds[draw(st.sampled_from(sorted(seeds)))])
    for _ in range(draw(st.integers(0, 3))):
        if not data:
            break
        near_head = draw(st.booleans())
        pos = draw(st.integers(0, min(len(data) - 1, 64) if near_head else len(data) - 1))
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "max"]))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[pos] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[pos:pos + draw(st.integers(1, 16))]
        else:  # the largest value a size field can hold
            data[pos:pos + 4] = b"\xff\xff\xff\xff"[:len(data) - pos]
    if draw(st.integers(0, 3)) == 0:
        data = data[:draw(st.integers(0, len(data)))]
    return bytes(data)


# -- portraits ------------------------------------------------------------------------------------------

LIMITS = PortraitLimits()


@functools.cache
def portrait_seeds() -> dict[str, bytes]:
    face = np.ascontiguousarray(astronaut()[40:200:2, 160:320:2])  # 80 x 80: decodes in a millisecond
    rgba = np.dstack([face, np.full(face.shape[:2], 200, np.uint8)])
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate on display
    buf = io.BytesIO()
    Image.fromarray(face).save(buf, "JPEG", exif=exif.tobytes())
    return {
        "png": encode(face, "PNG"),
        "png-rgba": encode(rgba, "PNG"),
        "png-grey16": encode((face[..., 0].astype(np.uint16) * 257), "PNG"),
        "png-palette": encode(face, "PNG", mode="P"),
        "jpeg": encode(face, "JPEG", quality=80),
        "jpeg-progressive": encode(face, "JPEG", quality=80, progressive=True),
        "jpeg-exif": buf.getvalue(),
        "webp": encode(face, "WEBP", quality=80),
        "webp-lossless": encode(rgba, "WEBP", lossless=True),
    }


def check_portrait(data: bytes) -> str:
    try:
        rgb = decode_image(data, LIMITS)
    except PortraitError as e:
        outcome(e.reason)
        assert e.reason in REASONS
        assert len(str(e).split()) >= 3, str(e)
        return e.reason
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert rgb.shape[0] * rgb.shape[1] <= LIMITS.max_pixels
    outcome("decoded")
    return "decoded"


def jpeg_with_size(width: int, height: int) -> bytes:
    """The seed JPEG with its SOF header claiming another size."""
    data = bytearray(portrait_seeds()["jpeg"])
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def webp_with_canvas(width: int, height: int) -> bytes:
    """An extended (VP8X) WebP header claiming a width x height canvas, then nothing."""
    vp8x = bytes([0, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize("data, reason", [
    (png_with_header_size(100_000, 100_000), "too_large"),
    (png_with_header_size(2**31 - 1, 2**31 - 1), None),
    (jpeg_with_size(65535, 65535), "too_large"),
    (webp_with_canvas(16384, 16384), "too_large"),
    (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)), "truncated"),
])
def test_portraits_that_claim_huge_sizes_are_refused_before_decoding(data, reason):
    got = check_portrait(data)
    assert got != "decoded"
    if reason is not None:
        assert got == reason


@budget(300)
@given(data=mutated(portrait_seeds()))
def test_fuzz_portrait_decoder(data):
    check_portrait(data)


@budget(100)
@given(data=st.binary(max_size=2048))
def test_fuzz_portrait_decoder_on_noise(data):
    assert check_portrait(data) != "decoded" or data[:4] in (b"\x89PNG", b"RIFF") or data[:2] == b"\xff\xd8"


# -- animation readers ----------------------------------------------------------------------------------

def _npy(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


@functools.cache
def animation_seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    header = ["Timecode", "BlendShapeCount", *[n[0].upper() + n[1:] for n in ARKIT_NAMES],
              "HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
              "RightEyeYaw", "RightEyePitch", "RightEyeRoll"]
    rows = [",".join(header)]
    for i in range(3):
        rows.append(",".join([f"00:00:00:{i:02d}.000", "61"] + [f"{v:.3f}" for v in rng.random(61)]))
    frames = [{"jawOpen": 0.5, "eyeBlinkLeft": 0.2}, {"jawOpen": 0.1, "mouthSmileLeft": 1.0}]
    return {
        "take.csv": ("\n".join(rows) + "\n").encode(),
        "take.json": json.dumps(frames).encode(),
        "f.npy": _npy(rng.normal(size=(2, 621)).astype(np.float32)),
        "g.npy": _npy(rng.normal(size=490)),
    }


def check_animation(name: str, data: bytes) -> str:
    try:
        anim = from_sources([(name, data)])
    except ExportError as e:
        assert len(str(e).split()) >= 3, str(e)
        outcome(f"{name}: refused")
        return "refused"
    outcome(f"{name}: read")
    assert anim.num_frames >= 1
    assert np.isfinite(anim.weights).all()
    return "read"


@st.composite
def animation_files(draw) -> tuple[str, bytes]:
    seeds = animation_seeds()
    name = draw(st.sampled_from(sorted(seeds)))
    data = draw(mutated({name: seeds[name]}))
    return name.replace("g.npy", "f.npy"), data


@budget(300)
@given(file=animation_files())
def test_fuzz_animation_readers(file):
    check_animation(*file)


json_scalars = st.one_of(st.floats(-0.2, 1.2), st.floats(allow_nan=True, allow_infinity=True), st.integers(),
                        st.text(max_size=5), st.booleans(), st.none())
json_keys = st.one_of(st.sampled_from(ARKIT_NAMES), st.sampled_from(ARKIT_NAMES).map(str.lower),
                      st.sampled_from(["HeadYaw", "headPitch", "HeadRoll", "LeftEyeYaw", "RightEyePitch"]),
                      st.text(max_size=8))
json_docs = st.one_of(
    st.lists(st.dictionaries(json_keys, st.one_of(json_scalars, st.floats(0, 1), st.floats(0, 1)), max_size=8),
             min_size=1, max_size=4),
    st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(json_keys, inner, max_size=3)), max_leaves=8))


@st.composite
def csv_docs(draw) -> bytes:
    """Live Link Face CSVs: every blendshape column (any case and order), maybe pose columns or a stray
    one; cells mostly in range, sometimes anything; timecodes mostly valid."""
    columns = [n[0].upper() + n[1:] if draw(st.booleans()) else n.lower() for n in ARKIT_NAMES]
    columns += draw(st.lists(st.sampled_from(["HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch",
                                              "RightEyeYaw", "RightEyePitch", "Mystery"]), unique=True, max_size=4))
    columns = draw(st.permutations(columns))
    cell = st.one_of(st.floats(0, 1).map(lambda v: f"{v:.4f}"), st.floats(0, 1).map(lambda v: f"{v:.4f}"),
                     st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=4))
    rows = [",".join(["Timecode", "BlendShapeCount", *columns])]
    for i in range(draw(st.integers(1, 4))):
        tc = draw(st.one_of(st.just(f"00:00:01:{i:02d}.000"), st.text(max_size=14)))
        rows.append(",".join([tc, str(len(columns))] + [draw(cell) for _ in columns]))
    return ("\n".join(rows) + "\n").encode()


def check_weights_in_range(name: str, data: bytes) -> None:
    if check_animation(name, data) == "read":
        anim = from_sources([(name, data)])
        assert float(anim.weights.min()) >= 0.0 and float(anim.weights.max()) <= 1.0


@budget(150)
@given(doc=json_docs)
def test_fuzz_arkit_json_structure(doc):
    check_weights_in_range("take.json", json.dumps(doc).encode())


@budget(60)
@given(doc=csv_docs())
def test_fuzz_livelink_csv_structure(doc):
    check_weights_in_range("take.csv", doc)


def _npy_claiming(shape: str) -> bytes:
    header = f"{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}".encode().ljust(118) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\0" * 64


@pytest.mark.parametrize("name, data", [
    # Found by this search: each escaped as MemoryError, RecursionError, csv.Error or a bare ValueError.
    ("take.npy", _npy_claiming("(1000000000000000,)")),
    ("take.npy", _npy_claiming("(1000000000, 621)")),
    ("take.json", b"[" * 100_000 + b"]" * 100_000),
    ("take.json", b'[{"jawOpen": ' + b"9" * 5000 + b"}]"),
    ("take.csv", b"Timecode,JawOpen\n" + b'0,"' + b"x" * 200_000 + b'"\n'),
    ("take.npy", _npy_claiming("(2, 621)").replace(b"{'de", b"\xff\xff\xff\xff")),  # a TokenError
])
def test_hostile_animation_files_are_refused_with_a_sentence(name, data):
    assert check_animation(name, data) == "refused"


# -- protobuf messages ----------------------------------------------------------------------------------

MESSAGES = [pb.CreateAvatarRequest, pb.RenderRequest, pb.RenderStreamRequest, pb.ExportRequest,
            pb.ListAvatarsRequest, pb.GetAvatarRequest, pb.DeleteAvatarRequest]


@functools.cache
def message_seeds() -> dict[str, bytes]:
    from grpc_server.client import frame_request

    render = pb.RenderRequest(avatar_id="0" * 64, camera=frame_request(0, yaw=20).camera,
                              expression=pb.Expression(named={"jawOpen": 0.5}), eye=[0.1, 0, 0, 0],
                              options=pb.FrameOptions(width=16, height=16, encoding=pb.PNG))
    return {
        "render": render.SerializeToString(),
        "stream": pb.RenderStreamRequest(frame=frame_request(3, pitch=5)).SerializeToString(),
        "export": pb.ExportRequest(avatar_id="0" * 64, formats=[pb.TABLES],
                                   animation_source=[pb.AnimationSource(file_name="a.csv", data=b"x")]
                                   ).SerializeToString(),
        "list": pb.ListAvatarsRequest(page_size=3, page_token="abc").SerializeToString(),
    }


@budget(200)
@given(kind=st.sampled_from(MESSAGES), data=st.one_of(mutated(message_seeds()), st.binary(max_size=256)))
def test_fuzz_protobuf_parsing(kind, data):
    """Parsing never fails other than with DecodeError, and what parses re-serializes."""
    try:
        msg = kind.FromString(data)
    except DecodeError:
        return
    kind.FromString(msg.SerializeToString())


# -- the same bytes through a live server -------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    store = tmp_path_factory.mktemp("fuzz-store")
    avatar_id = put_synthetic_avatar(store, seed=0)
    srv = ServerProcess(store, "--max-frame-pixels", str(32 * 32), "--max-portrait-bytes", "200000",
                        "--max-message-bytes", "1000000")
    srv.avatar_id = avatar_id
    yield srv
    assert srv.stop() == 0, srv.log()


RPC_STATUSES = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.RESOURCE_EXHAUSTED}


@budget(25)
@given(name=st.sampled_from(["take.csv", "take.json", "f.npy"]), data=st.data())
def test_fuzz_animation_sources_through_export(server, name, data):
    """A mutated animation file in an ANIMATION export: files, or INVALID_ARGUMENT; never INTERNAL."""
    seeds = animation_seeds()
    blob = data.draw(mutated({name: seeds[name.replace("f.npy", "f.npy")]}))
    req = pb.ExportRequest(avatar_id=server.avatar_id, formats=[pb.ANIMATION],
                           animation_source=[pb.AnimationSource(file_name=name, data=blob)])
    with server.client() as c:
        try:
            events = list(c.stub.Export(req, timeout=120))
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, f"{e.code().name}: {e.details()}\n{server.log()}"
            return
    assert any(ev.HasField("chunk") and ev.chunk.last for ev in events)


@budget(5)
@given(data=mutated({k: v for k, v in portrait_seeds().items() if k in ("png", "jpeg", "webp")}))
def test_fuzz_portraits_through_create(server, data):
    """Mutated small portraits (no face big enough to fit) are refused with a sentence, nothing is stored."""
    before = store_listing(server.store)
    with server.client() as c:
        try:
            c.create(data, timeout=120)
        except Exception as e:  # noqa: BLE001 - checked below
            assert getattr(e, "code", None) in RPC_STATUSES | {grpc.StatusCode.FAILED_PRECONDITION}, \
                f"{e}\n{server.log()}"
            assert len(e.message.split()) >= 3
    assert store_listing(server.store) == before or len(store_listing(server.store)) == len(before) + 1


@budget(40)
@given(method=st.sampled_from(["GetAvatar", "ListAvatars", "DeleteAvatar", "Render", "GetServerInfo"]),
       data=st.one_of(mutated(message_seeds()), st.binary(max_size=256)))
@example(method="Render", data=b"\xff" * 16)
def test_fuzz_raw_bytes_on_the_wire(server, method, data):
    """Arbitrary bytes as a request body. What protobuf cannot parse, gRPC itself refuses (INTERNAL,
    'Exception deserializing request!', before any handler runs); everything else is one of our
    statuses. The server stays SERVING."""
    with grpc.insecure_channel(server.address) as channel:
        call = channel.unary_unary(f"/avatarforge.v1.AvatarForge/{method}")
        try:
            call(data, timeout=60)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.INTERNAL:
                assert "deserializ" in (e.details() or "").lower(), f"{e.details()}\n{server.log()}"
            else:
                assert e.code() in RPC_STATUSES, f"{e.code().name}: {e.details()}"
    assert server.health() == SERVING
