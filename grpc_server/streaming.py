"""RenderStream: a reader thread takes requests off the wire into a small mailbox; the handler thread
renders from the mailbox and writes frames.

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
from collections import deque
from dataclasses import dataclass
from typing import Iterator

import grpc

from avatar.camera import CameraError
from avatar.expressions import ExpressionError
from grpc_server.proto import pb
from grpc_server.convert import FrameInputs, frame_inputs, frame_spec
from grpc_server.errors import Cancelled, InvalidRequest, ShuttingDown, rpc_errors
from grpc_server.store import check_id

log = logging.getLogger(__name__)

QUEUE_DEPTH = 2
_POLL_S = 0.1


@dataclass
class _Pending:
    seq: int
    inputs: FrameInputs
    received: float  # perf_counter when read off the wire


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


class StreamSession:
    def __init__(self, service, request_iterator, context: grpc.ServicerContext):
        self._service = service
        self._requests = request_iterator
        self._context = context
        self._stop = threading.Event()

    def _cancelled(self) -> bool:
        return self._stop.is_set() or not self._context.is_active()

    def frames(self) -> Iterator[pb.Frame]:
        service, context = self._service, self._context
        with rpc_errors(context, "RenderStream"):
            service.check_open()
            with service.stream_slots:
                context.add_callback(self._stop.set)
                try:
                    yield from self._serve()
                finally:
                    self._stop.set()

    def _serve(self) -> Iterator[pb.Frame]:
        service = self._service
        first = self._next_request()
        if first is None:
            return
        if first.WhichOneof("request") != "start":
            raise InvalidRequest("the first RenderStream message must be `start` (avatar id, frame options, mode)")
        start = first.start
        check_id(start.avatar_id)
        spec = frame_spec(start.options, service.limits)
        pool = service.store.renderers(start.avatar_id)
        latest_wins = start.mode == pb.LATEST_WINS
        mailbox = Mailbox(latest_wins)
        reader = threading.Thread(target=self._read, args=(mailbox,), daemon=True,
                                  name=f"stream-reader-{start.avatar_id[:8]}")
        reader.start()
        try:
            while True:
                if self._cancelled():
                    return
                if service.stopping.is_set():
                    # Answer what is already queued, then tell the client to reconnect elsewhere.
                    mailbox.close(ShuttingDown())
                got = mailbox.get(_POLL_S)
                if got is None:
                    continue
                if got is _END:
                    return
                item, dropped = got
                try:
                    rendered = service.frame_renderer.render(pool, item.inputs, spec, self._cancelled)
                except Cancelled:
                    return
                enc = rendered.encoded
                yield pb.Frame(seq=item.seq, width=spec.width, height=spec.height, encoding=spec.encoding,
                               data=enc.data, depth=enc.depth, alpha=enc.alpha, render_ms=rendered.render_ms,
                               queue_ms=(time.perf_counter() - item.received) * 1e3 - rendered.render_ms,
                               dropped=dropped)
        finally:
            self._stop.set()
            mailbox.close()

    def _next_request(self):
        try:
            return next(self._requests)
        except StopIteration:
            return None
        except grpc.RpcError:
            return None  # the client went away before saying anything
        except Exception:  # noqa: BLE001 - the request iterator raises plain exceptions on cancellation too
            if not self._context.is_active():
                return None
            raise

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
                if not mailbox.put(_Pending(req.frame.seq, inputs, received), self._stop):
                    return
            mailbox.close()
        except Exception as e:  # noqa: BLE001 - any reader failure ends the stream with a status
            if self._context.is_active() and not self._stop.is_set():
                mailbox.close(e)
            else:
                mailbox.close()
