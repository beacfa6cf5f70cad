"""RenderStream throughput and latency through a real server, against the renderer alone in this process.

`python -m benchmarks.stream [--frames N] [--size 256] [--policies all:2,demand:2]` prints one JSON line.
For each scheduling policy (grpc_server.app.rendering: how many cores a frame's march is offered, and
how many frames render at once; by default only the server's default), for 1 and 4 streams and for
RAW_RGBA8 and JPEG frames it reports:
  fps_grpc      frames per second received by the client(s) (decoded), all streams together
  fps_renderer  the same frames rendered in this process with the same concurrency and policy, no gRPC;
                measured in blocks alternating with the gRPC ones so that both see the same machine load
  ratio         fps_grpc / fps_renderer (budget: >= 0.9 for one stream)
  p50_ms/p99_ms request sent -> frame decoded, with a window of 2 requests in flight per stream
  four_over_one fps_grpc of 4 streams / fps_grpc of 1 stream, per encoding
The avatar is the synthetic one (no portrait needed); the server is a subprocess on 127.0.0.1, one per
policy, the policies measured one after the other in the order given (the machine is shared: repeat runs
in another order before comparing them).
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
from typing import NamedTuple

# The in-process renderer runs with the server's default of one torch thread per render for torch's own
# ops (a policy may raise it per thread); OpenMP sizes its pool from this once, when torch loads.
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


def start_server(store: Path, *options: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """`avatarforge serve` on a free port with extra command-line `options` (and environment variables
    `env`): the process and its address."""
    proc = subprocess.Popen([sys.executable, "-m", "grpc_server.cli", "serve", "--port", "0", "--store", str(store),
                             "--log-level", "WARNING", *options], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    for line in proc.stdout:
        m = re.search(rb"avatarforge listening on (\S+)", line)
        if m:
            threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()
            return proc, m.group(1).decode()
    raise RuntimeError("the server exited before listening")


class Policy(NamedTuple):
    """MARCH:SLOTS[:TORCH] on the command line."""

    march: str      # grpc_server.app.rendering.MARCH_POLICIES
    slots: int      # frames rendered at once (--render-slots)
    torch: int = 1  # torch's intra-op threads per render (--torch-threads)

    @classmethod
    def parse(cls, text: str) -> Policy:
        march, slots, *torch = text.split(":")
        return cls(march, int(slots), *(int(t) for t in torch))

    def __str__(self) -> str:
        return f"{self.march}:{self.slots}" + (f":{self.torch}" if self.torch != 1 else "")


class InProcess:
    """The server's frame scheduling (slots, march policy, renderer pool) in this process: no gRPC, no
    encoding."""

    def __init__(self, avatar, streams: int, policy: Policy):
        from avatar.render import Renderer
        from grpc_server.app.renderers import RendererPool
        from grpc_server.app.rendering import FrameRenderer

        self.torch_threads = policy.torch
        self.streams = streams
        self.frames = FrameRenderer(policy.slots, policy.march)
        self.pool = RendererPool(avatar, Renderer, policy.slots)

    def run(self, params: list[dict], size: int) -> float:
        """Seconds for `streams` threads to render `params` each, all at once."""
        from avatar.camera import camera_vector
        from avatar.expressions import to_expression
        from grpc_server import torch_threads
        from grpc_server.app.rendering import FrameInputs, RenderOptions

        torch_threads.configure(self.torch_threads)  # as the server does; each render thread applies it
        options = RenderOptions(size, size)
        jobs = [FrameInputs(camera_vector(yaw_deg=p["yaw"], pitch_deg=p["pitch"]), to_expression(p["expression"]),
                            None, None) for p in params]

        def run(_):
            for inputs in jobs:
                self.frames.render(self.pool, inputs, options, lambda: False)

        return timed_threads(run, range(self.streams))


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


class Cell:
    """One policy, stream count and encoding: its in-process renderer and what its blocks measured."""

    def __init__(self, avatar, address: str, policy: Policy, streams: int, encoding: str, size: int):
        self.avatar, self.address, self.policy = avatar, address, policy
        self.streams, self.encoding, self.size = streams, encoding, size
        self.local = InProcess(avatar, streams, policy)
        self.t_local = self.t_grpc = 0.0
        self.frames = 0
        self.latencies: list[float] = []

    def warm(self) -> None:
        warm = frame_params(2)
        self.local.run(warm, self.size)
        grpc_block(self.address, self.avatar.avatar_id, self.streams, warm, self.size, self.encoding, [])

    def block(self, params: list[dict]) -> None:
        """One in-process block, then the same frames over gRPC."""
        self.t_local += self.local.run(params, self.size)
        self.t_grpc += grpc_block(self.address, self.avatar.avatar_id, self.streams, params, self.size,
                                  self.encoding, self.latencies)
        self.frames += len(params)

    def result(self) -> dict:
        fps_r, fps_g = self.streams * self.frames / self.t_local, self.streams * self.frames / self.t_grpc
        return {"policy": str(self.policy), "streams": self.streams,
                "encoding": "RAW_RGBA8" if self.encoding == "raw" else "JPEG", "frames_per_stream": self.frames,
                "fps_grpc": round(fps_g, 2), "fps_renderer": round(fps_r, 2), "ratio": round(fps_g / fps_r, 3),
                "p50_ms": round(float(np.percentile(self.latencies, 50)), 1),
                "p99_ms": round(float(np.percentile(self.latencies, 99)), 1)}


def measure(avatar, store: Path, policies: list[Policy], encodings: list[str], frames: int, size: int,
            block: int) -> list[dict]:
    """One server per policy, all up at once; blocks of frames go round every policy, stream count and
    encoding, each in-process then over gRPC, so all of them see the same machine load (the machine is
    shared: measuring one after the other would compare different loads)."""
    from grpc_server.config import env_name

    servers = []
    try:
        for p in policies:
            servers.append(start_server(store, "--render-slots", str(p.slots), "--torch-threads", str(p.torch),
                                        env={env_name("march_policy"): p.march, "OMP_NUM_THREADS": str(p.torch)}))
        cells = [Cell(avatar, address, p, streams, encoding, size)
                 for p, (_, address) in zip(policies, servers) for streams in (1, 4) for encoding in encodings]
        for cell in cells:
            cell.warm()
        done = 0
        while done < frames:
            n = min(block, frames - done)
            for cell in cells:  # four streams render half as many frames each
                if cell.streams == 1 or done < max(block, frames // 2):
                    cell.block(frame_params(n, offset=done))
            done += n
        return [cell.result() for cell in cells]
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait(60)


def summary(policy: Policy, results: list[dict]) -> dict:
    mine = [r for r in results if r["policy"] == str(policy)]
    one = [r for r in mine if r["streams"] == 1]
    four_over_one = {}
    for r in one:
        four = next(f for f in mine if f["streams"] == 4 and f["encoding"] == r["encoding"])
        four_over_one[r["encoding"]] = round(four["fps_grpc"] / r["fps_grpc"], 3)
    return {"policy": str(policy), "fps_one_stream": {r["encoding"]: r["fps_grpc"] for r in one},
            "four_over_one_grpc": four_over_one, "ratio_one_stream_min": min(r["ratio"] for r in one),
            "p99_over_p50_max": round(max(r["p99_ms"] / r["p50_ms"] for r in mine), 2)}


def main(argv=None) -> int:
    from grpc_server.app.rendering import DEFAULT_MARCH_POLICY
    from grpc_server.config import ServerConfig

    default = Policy(DEFAULT_MARCH_POLICY, ServerConfig().render_slots)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=40, help="frames per stream (half that with 4 streams)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--block", type=int, default=8, help="frames per alternating block")
    parser.add_argument("--policies", default=str(default),
                        help=f"comma-separated MARCH:SLOTS[:TORCH] scheduling policies to measure: the march "
                             f"policy, frames at once, torch threads per render (default {default})")
    parser.add_argument("--encodings", default="raw,jpeg", help="comma-separated: raw, jpeg")
    args = parser.parse_args(argv)
    policies = [Policy.parse(p) for p in args.policies.split(",")]

    from avatar.asset import save_avatar
    from avatar.render import Renderer
    from avatar.synthetic import synthetic_avatar

    avatar = synthetic_avatar(0)
    with tempfile.TemporaryDirectory(prefix="avatarforge-bench-") as tmp:
        save_avatar(avatar, tmp)
        results = measure(avatar, Path(tmp), policies, args.encodings.split(","), args.frames, args.size,
                          args.block)
    summaries = [summary(p, results) for p in policies]
    first = summaries[0]
    print(json.dumps({"benchmark": "stream", "size": args.size, "cpu_count": os.cpu_count(),
                      "march": Renderer(avatar).march,
                      "load_average_1min": round(os.getloadavg()[0], 2),
                      "default_policy": str(default),
                      "budget": {"fps": 30, "ratio_one_stream": 0.9, "four_over_one": 1.6, "p99_over_p50": 3},
                      "ratio_one_stream_min": first["ratio_one_stream_min"],
                      "four_over_one_grpc": first["four_over_one_grpc"],
                      "p99_over_p50_max": first["p99_over_p50_max"],
                      "policies": summaries, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
