"""RenderStream throughput and latency through a real server, against the renderer alone in this process.

`python -m benchmarks.stream [--frames N] [--size 256]` prints one JSON line. For 1 and 4 streams and
for RAW_RGBA8 and JPEG frames it reports:
  fps_grpc      frames per second received by the client(s) (decoded), all streams together
  fps_renderer  the same frames rendered in this process with the same concurrency, no gRPC; measured
                in blocks alternating with the gRPC ones so that both see the same machine load
  ratio         fps_grpc / fps_renderer (budget: >= 0.9 for one stream)
  p50_ms/p99_ms request sent -> frame decoded, with a window of 2 requests in flight per stream
The avatar is the synthetic one (no portrait needed); the server is a subprocess on 127.0.0.1.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# The in-process renderer runs with the server's default threading (one torch thread per render for
# torch's own ops, the march kernel's cores shared among the renders in flight); OpenMP reads this
# once, when torch loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WINDOW = 2


def frame_params(count: int, offset: int = 0) -> list[dict]:
    """A viewport-like sequence: the camera orbits while the jaw and a smile move."""
    out = []
    for i in range(count):
        t = (i + offset) / 30.0
        out.append({"yaw": 25.0 * np.sin(t), "pitch": 5.0 * np.sin(0.7 * t),
                    "expression": {"jawOpen": 0.5 + 0.5 * np.sin(2 * t), "mouthSmileLeft": 0.5 + 0.5 * np.cos(t)}})
    return out


def start_server(store: Path, *options: str) -> tuple[subprocess.Popen, str]:
    """`avatarforge serve` on a free port with extra command-line `options`: the process and its address."""
    proc = subprocess.Popen([sys.executable, "-m", "grpc_server.cli", "serve", "--port", "0", "--store", str(store),
                             "--log-level", "WARNING", *options], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    for line in proc.stdout:
        m = re.search(rb"avatarforge listening on (\S+)", line)
        if m:
            threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()
            return proc, m.group(1).decode()
    raise RuntimeError("the server exited before listening")


class InProcess:
    """The renderer alone: one Renderer per stream, like the server's pool, no gRPC, no encoding."""

    def __init__(self, avatar, streams: int):
        from avatar.render import Renderer

        self.renderers = [Renderer(avatar) for _ in range(streams)]
        for r in self.renderers:  # the server's policy: the cores shared among the frames in flight
            r.march_threads = max(1, (os.cpu_count() or 1) // streams)

    def run(self, params: list[dict], size: int) -> float:
        """Seconds to render `params` on every renderer at once."""
        from avatar.camera import camera_vector
        from avatar.expressions import to_expression

        jobs = [(camera_vector(yaw_deg=p["yaw"], pitch_deg=p["pitch"]), to_expression(p["expression"])) for p in params]

        def run(renderer):
            for camera, expression in jobs:
                renderer.render(camera, expression, size=(size, size))

        return timed_threads(run, self.renderers)


def timed_threads(target, items) -> float:
    """Seconds for `target(item)` to finish for every item, each on its own thread, all at once."""
    threads = [threading.Thread(target=target, args=(item,)) for item in items]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def grpc_block(address: str, avatar_id: str, streams: int, params: list[dict], size: int, encoding: str,
               latencies: list[float]) -> float:
    """Seconds for `streams` concurrent RenderStreams to deliver (decoded) a frame for each of `params`."""
    from grpc_server.client import AvatarForgeClient

    lock = threading.Lock()

    def one(client):
        sent: dict[int, float] = {}
        window = threading.Semaphore(WINDOW)

        def requests():
            for i, p in enumerate(params):
                window.acquire()
                sent[i] = time.perf_counter()
                yield {**p, "seq": i}

        for frame in client.stream(avatar_id, requests(), size=size, encoding=encoding):
            now = time.perf_counter()
            window.release()
            with lock:
                latencies.append((now - sent[frame.seq]) * 1e3)

    clients = [AvatarForgeClient(address) for _ in range(streams)]
    try:
        return timed_threads(one, clients)
    finally:
        for c in clients:
            c.close()


def measure(avatar, address: str, streams: int, encoding: str, frames: int, size: int, block: int) -> dict:
    """Alternate blocks of in-process and gRPC frames, so both see the same machine load (the machine is
    shared; measuring one after the other would compare two different loads)."""
    local = InProcess(avatar, streams)
    warm = frame_params(2)
    local.run(warm, size)
    grpc_block(address, avatar.avatar_id, streams, warm, size, encoding, [])
    t_local = t_grpc = 0.0
    latencies: list[float] = []
    done = 0
    while done < frames:
        params = frame_params(min(block, frames - done), offset=done)
        t_local += local.run(params, size)
        t_grpc += grpc_block(address, avatar.avatar_id, streams, params, size, encoding, latencies)
        done += len(params)
    fps_r, fps_g = streams * frames / t_local, streams * frames / t_grpc
    return {"streams": streams, "encoding": "RAW_RGBA8" if encoding == "raw" else "JPEG", "frames_per_stream": frames,
            "fps_grpc": round(fps_g, 2), "fps_renderer": round(fps_r, 2), "ratio": round(fps_g / fps_r, 3),
            "p50_ms": round(float(np.percentile(latencies, 50)), 1),
            "p99_ms": round(float(np.percentile(latencies, 99)), 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=40, help="frames per stream (half that with 4 streams)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--block", type=int, default=8, help="frames per alternating block")
    args = parser.parse_args(argv)

    from avatar.asset import save_avatar
    from avatar.synthetic import synthetic_avatar

    avatar = synthetic_avatar(0)
    results = []
    with tempfile.TemporaryDirectory(prefix="avatarforge-bench-") as tmp:
        save_avatar(avatar, tmp)
        proc, address = start_server(Path(tmp))
        try:
            for streams in (1, 4):
                frames = args.frames if streams == 1 else max(args.block, args.frames // 2)
                for encoding in ("raw", "jpeg"):
                    results.append(measure(avatar, address, streams, encoding, frames, args.size, args.block))
        finally:
            proc.terminate()
            proc.wait(60)
    one = [r for r in results if r["streams"] == 1]
    four_over_one = {}
    for encoding in ("RAW_RGBA8", "JPEG"):
        by = {r["streams"]: r for r in results if r["encoding"] == encoding}
        four_over_one[encoding] = round(by[4]["fps_grpc"] / by[1]["fps_grpc"], 3)
    from avatar.render import Renderer

    print(json.dumps({"benchmark": "stream", "size": args.size, "cpu_count": os.cpu_count(),
                      "march": Renderer(avatar).march,
                      "torch_threads_per_render": int(os.environ["OMP_NUM_THREADS"]),
                      "load_average_1min": round(os.getloadavg()[0], 2),
                      "budget": {"fps": 30, "ratio_one_stream": 0.9, "four_over_one": 1.6, "p99_over_p50": 3},
                      "ratio_one_stream_min": min(r["ratio"] for r in one),
                      "four_over_one_grpc": four_over_one,
                      "p99_over_p50_max": round(max(r["p99_ms"] / r["p50_ms"] for r in results), 2),
                      "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
