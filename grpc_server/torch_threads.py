"""How many threads torch uses inside one render or create.

torch's thread count is a per-thread OpenMP setting: a value set in the main thread does not reach
gRPC's handler threads or the job threads. Every thread that runs torch work calls `apply()` first.
"""
from __future__ import annotations

import threading

import torch

_local = threading.local()
_threads = 0  # 0 = leave torch's default


def configure(threads: int) -> None:
    global _threads
    _threads = int(threads)
    apply()


def apply() -> None:
    if _threads and getattr(_local, "threads", None) != _threads:
        torch.set_num_threads(_threads)
        _local.threads = _threads
