"""Soak (issue 13): RenderStreams held for minutes while creates, exports and deletes run beside them and
clients misbehave; the server's RSS and open file descriptors are sampled throughout.

`python -m benchmarks.soak [--seconds 600] [--streams 8] [--size 64]` prints one JSON line:
  streams.frames          frames received over all EVERY_FRAME streams
  streams.out_of_order    frames whose seq was not the next one expected (must be 0)
  streams.missing         requests sent but never answered by a stream that ended cleanly (must be 0)
  streams.errors          streams that ended with a status other than our own stop (must be empty)
  churn                   creates / exports / deletes completed, creates cancelled by the client,
                          creates and streams whose deadline passed, streams dropped mid-way
  rss_mb                  after warm-up (the first 20 % of the run), at the end, and the growth in %
                          (goal: <= +10 %)
  fds                     open descriptors after warm-up and at the end (goal: flat)
  serving_at_end          the health check once the load stops
The server is a subprocess on 127.0.0.1 with a temporary store holding the synthetic avatar (streams)
plus whatever the creates add; creates use skimage's astronaut, mirrored on every other round.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import grpc
import numpy as np

from benchmarks.stream import start_server

SAMPLE_EVERY_S = 5.0
WARM_UP_FRACTION = 0.2
WINDOW = 2  # requests in flight per stream


def process_sample(pid: int) -> tuple[float, int]:
    """(RSS in MB, open file descriptors) of a process, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        rss_kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return rss_kb / 1024.0, len(os.listdir(f"/proc/{pid}/fd"))


def portraits() -> list[bytes]:
    from PIL import Image
    from skimage import data

    face = data.astronaut()
    out = []
    for img in (face, np.ascontiguousarray(face[:, ::-1])):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


class Soak:
    def __init__(self, address: str, avatar_id: str, seconds: float, size: int):
        from grpc_server.client import AvatarForgeClient

        self.client = AvatarForgeClient(address)
        self.avatar_id = avatar_id
        self.size = size
        self.stop = threading.Event()
        self.deadline = time.monotonic() + seconds
        self.lock = threading.Lock()
        self.frames = 0
        self.out_of_order = 0
        self.missing = 0
        self.errors: list[str] = []
        self.churn: Counter = Counter()

    def running(self) -> bool:
        return not self.stop.is_set() and time.monotonic() < self.deadline

    def note(self, key: str) -> None:
        with self.lock:
            self.churn[key] += 1

    # -- the EVERY_FRAME streams that must see every frame in order --------------------------------------
    def stream(self, index: int) -> None:
        sent = [0]
        # A viewport keeps a couple of requests in flight; without a window, HTTP/2 flow control alone
        # would let hundreds of requests queue in the transport (bounded memory, but minutes of backlog).
        window = threading.Semaphore(WINDOW)

        def requests():
            i = 0
            while self.running():
                if not window.acquire(timeout=0.5):
                    continue
                t = (i + 7 * index) / 30.0
                yield {"seq": i, "yaw": 30.0 * np.sin(t), "pitch": 8.0 * np.sin(0.7 * t),
                       "expression": {"jawOpen": 0.5 + 0.5 * np.sin(2 * t)}}
                i += 1
                sent[0] = i

        expected = received = 0
        try:
            for frame in self.client.stream(self.avatar_id, requests(), size=self.size, encoding="jpeg"):
                received += 1
                window.release()
                with self.lock:
                    self.frames += 1
                    if frame.seq != expected:
                        self.out_of_order += 1
                expected = frame.seq + 1
        except Exception as e:  # noqa: BLE001 - every failure is a finding
            with self.lock:
                self.errors.append(f"stream {index}: {e}")
            return
        with self.lock:
            self.missing += sent[0] - received  # requests the clean end of the stream left unanswered

    # -- creates, exports, deletes ------------------------------------------------------------------------
    def churn_avatars(self) -> None:
        from grpc_server.client import ClientError

        faces = portraits()
        round_ = 0
        with tempfile.TemporaryDirectory(prefix="soak-export-") as out:
            while self.running():
                portrait = faces[round_ % len(faces)]
                round_ += 1
                try:
                    avatar_id = self.client.create(portrait, timeout=600)
                    self.note("creates")
                    for fmt in (["tables"], ["triplane"]):
                        self.client.export(avatar_id, fmt, Path(out) / str(round_), timeout=600)
                        self.note("exports")
                    if self.client.delete(avatar_id):
                        self.note("deletes")
                except ClientError as e:
                    with self.lock:
                        self.errors.append(f"churn: {e}")

    # -- clients that misbehave -----------------------------------------------------------------------------
    def misbehave(self) -> None:
        from grpc_server.client import ClientError

        faces = portraits()
        kinds = ["drop_stream", "cancel_create", "stream_deadline", "create_deadline"]
        i = 0
        while self.running():
            kind = kinds[i % len(kinds)]
            i += 1
            try:
                if kind == "drop_stream":
                    frames = self.client.stream(self.avatar_id, ({"yaw": float(k % 30)} for k in range(10_000)),
                                                size=self.size, mode="latest_wins")
                    for _ in range(3):
                        next(frames)
                    frames.close()  # the client goes away mid-stream
                    self.note("streams_dropped")
                elif kind == "cancel_create":
                    call = self.client.stub.CreateAvatar(self._create_request(faces[i % 2]), timeout=600)
                    next(call)  # the first progress event: the job is running
                    call.cancel()
                    self.note("creates_cancelled")
                elif kind == "stream_deadline":
                    try:
                        list(self.client.stream(self.avatar_id, ({"yaw": 0.0} for _ in range(10_000)),
                                                size=self.size, timeout=1.0))
                    except ClientError as e:
                        if e.code != grpc.StatusCode.DEADLINE_EXCEEDED:
                            raise
                    self.note("stream_deadlines")
                else:
                    try:
                        self.client.create(faces[i % 2], timeout=1.0)
                    except ClientError as e:
                        if e.code != grpc.StatusCode.DEADLINE_EXCEEDED:
                            raise
                    self.note("create_deadlines")
            except (ClientError, grpc.RpcError, StopIteration) as e:
                code = getattr(e, "code", None)
                code = code() if callable(code) else code
                if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    self.note(f"{kind}_refused_busy")  # job slots are full of the churn's creates: fine
                else:
                    with self.lock:
                        self.errors.append(f"{kind}: {e}")
            time.sleep(1.0)

    @staticmethod
    def _create_request(portrait: bytes):
        from grpc_server.proto import pb

        return pb.CreateAvatarRequest(portrait=portrait)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args(argv)

    from avatar.asset import save_avatar
    from avatar.synthetic import synthetic_avatar

    with tempfile.TemporaryDirectory(prefix="soak-store-") as store:
        avatar = synthetic_avatar(0)
        save_avatar(avatar, store)
        proc, address = start_server(Path(store), "--max-streams", str(args.streams + 4))
        try:
            soak = Soak(address, avatar.avatar_id, args.seconds, args.size)
            workers = [threading.Thread(target=soak.stream, args=(i,), daemon=True) for i in range(args.streams)]
            workers += [threading.Thread(target=soak.churn_avatars, daemon=True),
                        threading.Thread(target=soak.misbehave, daemon=True)]
            started = time.monotonic()
            for w in workers:
                w.start()
            samples: list[tuple[float, float, int]] = []
            while time.monotonic() < soak.deadline:
                samples.append((time.monotonic() - started, *process_sample(proc.pid)))
                time.sleep(min(SAMPLE_EVERY_S, max(0.0, soak.deadline - time.monotonic())))
            soak.stop.set()
            for w in workers:
                w.join(timeout=600)
            samples.append((time.monotonic() - started, *process_sample(proc.pid)))
            from grpc_health.v1 import health_pb2, health_pb2_grpc

            with grpc.insecure_channel(address) as channel:
                status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30).status
            warm = [s for s in samples if s[0] >= WARM_UP_FRACTION * args.seconds]
            base = warm[0] if warm else samples[0]
            end = samples[-1]
            print(json.dumps({
                "seconds": round(end[0], 1), "streams": args.streams, "size": args.size,
                "stream_results": {"frames": soak.frames, "out_of_order": soak.out_of_order,
                                   "missing": soak.missing,
                                   "fps_all_streams": round(soak.frames / max(end[0], 1e-9), 2)},
                "errors": soak.errors[:20], "error_count": len(soak.errors),
                "churn": dict(soak.churn),
                "rss_mb": {"start": round(samples[0][1], 1), "after_warm_up": round(base[1], 1),
                           "end": round(end[1], 1), "max": round(max(s[1] for s in samples), 1),
                           "growth_pct": round(100.0 * (end[1] - base[1]) / base[1], 2)},
                "fds": {"start": samples[0][2], "after_warm_up": base[2], "end": end[2],
                        "max": max(s[2] for s in samples)},
                "serving_at_end": status == health_pb2.HealthCheckResponse.SERVING,
            }))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
