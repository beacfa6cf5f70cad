"""RenderStream and TrackFace: a reader thread takes requests off the wire into a small mailbox; the
handler thread renders (through the application's Stream) or tracks from the mailbox and writes frames
or tracked faces. A RenderStream frame may carry a driving image (see grpc_server.app.application.Stream).

Backpressure: in EVERY_FRAME the mailbox holds at most `QUEUE_DEPTH` requests; when it is full the
reader stops reading, so HTTP/2 flow control slows the client down instead of the server buffering.
In LATEST_WINS the mailbox holds one request: a newer one replaces it and the replaced ones are
reported in the next frame's `dropped`. Writing a frame blocks until gRPC has sent it, so at most
one encoded frame per stream is in flight.
"""
from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Generator, Iterator
from contextlib import closing
from dataclasses import dataclass

import grpc

from avatar.camera import CameraError
from avatar.expressions import ARKIT_NAMES, ExpressionError
from avatar.portrait.decode import decode_image
from avatar.track import FaceTracker, TrackedFrame
from avatar.track.video import ClipLimits
from grpc_server import frames
from grpc_server.app.application import Application
from grpc_server.app.errors import Cancelled, InvalidRequest, ShuttingDown
from grpc_server.app.rendering import FrameInputs
from grpc_server.auth import client_identity
from grpc_server.convert import frame_inputs, frame_spec, render_options
from grpc_server.errors import rpc_errors
from grpc_server.limits import LimitExceeded
from grpc_server.proto import pb

log = logging.getLogger(__name__)

QUEUE_DEPTH = 2
_POLL_S = 0.1
# TrackFace: frames per stream (as many as a tracked clip may hold), and the frame rates it accepts.
MAX_TRACK_FRAMES = ClipLimits().max_frames
DEFAULT_TRACK_RATE, MAX_TRACK_RATE = 30.0, 1000.0
# The FaceVerse eye 4-vector's entries; "Left" turns toward the subject's own left (+x).
EYE_NAMES = ("leftEyeDown", "leftEyeLeft", "rightEyeDown", "rightEyeLeft")


@dataclass
class _Pending:
    seq: int
    inputs: FrameInputs | pb.TrackFrame
    received: float  # perf_counter when read off the wire
    driving: bytes = b""  # RenderStream: a driving image whose tracked face replaces the expression


class _End:
    pass


_END = _End()


class Mailbox:
    """Requests between the reader and the renderer; bounded, or single-slot latest-wins."""

    def __init__(self, latest_wins: bool, depth: int = QUEUE_DEPTH):
        self._latest_wins = latest_wins
        self._depth = 1 if latest_wins else depth
        self._items: deque[_Pending] = deque()
        self._dropped = 0
        self._closed = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()

    def put(self, item: _Pending, stop: threading.Event) -> bool:
        """False when the mailbox was closed (the stream is ending) and the item was not taken."""
        with self._cond:
            if self._latest_wins:
                if self._closed:
                    return False
                self._dropped += len(self._items)
                self._items.clear()
            else:
                while len(self._items) >= self._depth and not self._closed and not stop.is_set():
                    self._cond.wait(_POLL_S)
                if self._closed or stop.is_set():
                    return False
            self._items.append(item)
            self._cond.notify_all()
            return True

    def close(self, error: BaseException | None = None) -> None:
        """No more requests; `error` is raised to the renderer after the requests already queued."""
        with self._cond:
            if not self._closed:
                self._closed = True
                self._error = error
            self._cond.notify_all()

    def get(self, timeout: float):
        """(item, dropped), or None on timeout, or _END; raises the reader's error once drained."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            if self._items:
                item = self._items.popleft()
                dropped, self._dropped = self._dropped, 0
                self._cond.notify_all()
                return item, dropped
            if self._closed:
                if self._error is not None:
                    raise self._error
                return _END
            return None


def first_request(requests, context: grpc.ServicerContext):
    """The next request of a stream, or None when the client is gone or sent nothing."""
    try:
        return next(requests)
    except StopIteration:
        return None
    except grpc.RpcError:
        return None  # the client went away before saying anything
    except Exception:
        if not context.is_active():
            return None
        raise


class _Session(ABC):
    """One bidirectional stream: holds a stream slot (global and per client) while it runs, and stops
    when the caller goes away. Subclasses answer in `_serve`."""

    rpc = ""

    def __init__(self, app: Application, request_iterator, context: grpc.ServicerContext):
        self._app = app
        self._requests = request_iterator
        self._context = context
        self._stop = threading.Event()

    def _cancelled(self) -> bool:
        return self._stop.is_set() or not self._context.is_active()

    def run(self) -> Iterator:
        context = self._context
        with rpc_errors(context, self.rpc), self._app.stream_slot(client_identity(context)):
            context.add_callback(self._stop.set)
            try:
                yield from self._serve()
            finally:
                self._stop.set()

    @abstractmethod
    def _serve(self) -> Iterator:
        """The stream's answers, after the first request."""

    @abstractmethod
    def _read(self, mailbox: Mailbox) -> None:
        """The reader thread: every request after the first into `mailbox`, then close it."""

    def _queued(self, mailbox: Mailbox, reader_name: str) -> Generator[tuple[_Pending, int], None, None]:
        """Starts the reader thread and yields (request, dropped before it) as the handler takes them,
        until the requests end or the caller goes away. While the server stops, what is already queued
        is answered and the client is then told to reconnect elsewhere."""
        threading.Thread(target=self._read, args=(mailbox,), daemon=True, name=reader_name).start()
        try:
            while not self._cancelled():
                if self._app.stopping.is_set():
                    mailbox.close(ShuttingDown())
                got = mailbox.get(_POLL_S)
                if got is _END:
                    return
                if got is not None:
                    yield got
        finally:
            self._stop.set()
            mailbox.close()

    def _reader_failed(self, mailbox, error: Exception) -> None:
        """A failure reading requests ends the stream with its status, unless the caller already left."""
        if self._context.is_active() and not self._stop.is_set():
            mailbox.close(error)
        else:
            mailbox.close()


class StreamSession(_Session):
    rpc = "RenderStream"

    def _serve(self) -> Iterator[pb.Frame]:
        app = self._app
        first = first_request(self._requests, self._context)
        if first is None:
            return
        if first.WhichOneof("request") != "start":
            raise InvalidRequest("the first RenderStream message must be `start` (avatar id, frame options, mode)")
        start = first.start
        spec = frame_spec(start.options, app.limits)
        stream = app.open_stream(start.avatar_id, render_options(start.options, spec))
        mailbox = Mailbox(start.mode == pb.LATEST_WINS)
        with closing(self._queued(mailbox, f"stream-reader-{start.avatar_id[:8]}")) as queued:
            for item, dropped in queued:
                assert isinstance(item.inputs, FrameInputs)
                try:
                    rendered = stream.render(item.inputs, item.driving, self._cancelled)
                except Cancelled:
                    return
                yield frames.message(rendered, spec, app.limits.max_message_bytes, item.received, item.seq, dropped)

    def _read(self, mailbox: Mailbox) -> None:
        try:
            for req in self._requests:
                kind = req.WhichOneof("request")
                if kind == "start":
                    raise InvalidRequest("`start` may be sent only once, as the first RenderStream message")
                if kind != "frame":
                    raise InvalidRequest("a RenderStream message must set `start` or `frame`")
                received = time.perf_counter()
                try:
                    inputs = frame_inputs(req.frame)
                except (ExpressionError, CameraError) as e:
                    raise type(e)(f"frame seq {req.frame.seq}: {e}") from None
                driving = bytes(req.frame.driving_image)
                if len(driving) > self._app.limits.max_portrait_bytes:
                    raise LimitExceeded(f"frame seq {req.frame.seq}: driving image too large ({len(driving)} "
                                        f"bytes > limit {self._app.limits.max_portrait_bytes} bytes)")
                if not mailbox.put(_Pending(req.frame.seq, inputs, received, driving), self._stop):
                    return
            mailbox.close()
        except Exception as e:  # noqa: BLE001 - any reader failure ends the stream with a status
            self._reader_failed(mailbox, e)


class TrackSession(_Session):
    """TrackFace: like RenderStream, a reader thread fills a Mailbox (bounded, or latest-wins) and the
    handler thread tracks from it; one FaceTracker (identity fixed from the first frames) per stream."""

    rpc = "TrackFace"

    def _serve(self) -> Iterator[pb.TrackFaceResponse]:
        first = first_request(self._requests, self._context)
        if first is None:
            return
        if first.WhichOneof("request") != "start":
            raise InvalidRequest("the first TrackFace message must be `start` (mode, frame rate)")
        start = first.start
        rate = start.frame_rate or DEFAULT_TRACK_RATE
        if not (rate > 0 and rate <= MAX_TRACK_RATE):
            raise InvalidRequest(f"frame_rate {rate:g} is outside 0..{MAX_TRACK_RATE:g} frames per second")
        tracker = FaceTracker(frame_rate=rate, smooth=not start.without_smoothing)
        mailbox = Mailbox(start.mode == pb.LATEST_WINS)
        with closing(self._queued(mailbox, "track-reader")) as queued:
            yield pb.TrackFaceResponse(header=pb.TrackHeader(channel_names=list(ARKIT_NAMES),
                                                             eye_names=list(EYE_NAMES)))
            for item, dropped in queued:
                begin = time.perf_counter()
                frame = item.inputs
                assert isinstance(frame, pb.TrackFrame)
                rgb = decode_image(frame.image, self._app.limits.portrait_limits())
                t = frame.time_s if frame.time_s > 0 else None
                result = tracker.track(rgb, t)
                yield pb.TrackFaceResponse(face=tracked_face(item.seq, result, dropped,
                                                             (time.perf_counter() - begin) * 1e3))

    def _read(self, mailbox: Mailbox) -> None:
        limits = self._app.limits
        count = 0
        try:
            for req in self._requests:
                kind = req.WhichOneof("request")
                if kind == "start":
                    raise InvalidRequest("`start` may be sent only once, as the first TrackFace message")
                if kind != "frame":
                    raise InvalidRequest("a TrackFace message must set `start` or `frame`")
                count += 1
                if count > MAX_TRACK_FRAMES:
                    raise LimitExceeded(f"a TrackFace stream may carry at most {MAX_TRACK_FRAMES} frames; "
                                        f"start a new stream")
                if len(req.frame.image) > limits.max_portrait_bytes:
                    raise LimitExceeded(f"frame seq {req.frame.seq}: image too large ({len(req.frame.image)} "
                                        f"bytes > limit {limits.max_portrait_bytes} bytes)")
                if not req.frame.image:
                    raise InvalidRequest(f"frame seq {req.frame.seq}: no image; send JPEG or PNG bytes")
                if not mailbox.put(_Pending(req.frame.seq, req.frame, time.perf_counter()), self._stop):
                    return
            mailbox.close()
        except Exception as e:  # noqa: BLE001 - any reader failure ends the stream with a status
            self._reader_failed(mailbox, e)


def tracked_face(seq: int, result: TrackedFrame, dropped: int = 0, track_ms: float = 0.0) -> pb.TrackedFace:
    """A TrackedFrame (avatar.track) as the TrackedFace message."""
    yaw, pitch, roll = (float(v) for v in result.head_pose)
    return pb.TrackedFace(seq=seq, time_s=result.time, found=result.found, confidence=result.confidence,
                          weights=[float(w) for w in result.weights],
                          head_pose=pb.HeadPose(yaw=yaw, pitch=pitch, roll=roll),
                          eye=[float(v) for v in result.eye], dropped=dropped, track_ms=track_ms)
