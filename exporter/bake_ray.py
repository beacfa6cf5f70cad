"""Batch baking across a Ray cluster: one Ray task per portrait, under the same `run_bake` as the local pool,
so skipping what is already done, the bounded attempts and `report.json` are exactly the local bake's.

Ray is an optional extra (`pip install 'avatarforge[ray]'`), imported only when a Ray bake starts; without it
`RayUnavailable` says how to install it. Every node needs this package installed (workers import
`exporter.bake_ray` to run a task).

Each task asks for one CPU and runs with one OpenMP thread and one torch thread, so a node runs as many
portraits at once as it has CPUs. Portraits travel to the tasks as bytes, so nodes need not see the input
folder. Where the outputs go: the driver drops a probe file into OUT; a task that sees it bakes straight
into OUT (a shared filesystem mounted at the same path on every node); a task that does not bakes into a
node-local temporary folder and returns the files' bytes, which the driver writes into OUT.

Failures: a worker that dies (killed, out of memory, its node lost) has its task retried by Ray up to
`RAY_TASK_RETRIES` times; when Ray gives up, the job counts as a transient failure and gets the bake's next
attempt (up to `max_attempts`), like a crashed process of the local pool. What still fails is in the
report with its error.
"""
from __future__ import annotations

import logging
import os
import socket
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from avatar.generators import DEFAULT_GENERATOR
from exporter.bake import (
    DEFAULT_FORMATS,
    DEFAULT_MAX_ATTEMPTS,
    RECORD,
    THREAD_ENV,
    BakeReport,
    BakeResult,
    BakeSpec,
    Job,
    Record,
    bake_one,
    crashed,
    run_bake,
    write_record,
)
from exporter.options import ExportOptions

RAY_TASK_RETRIES = 3
TASK_ENV = dict.fromkeys(THREAD_ENV, "1")
PROBE_PREFIX = ".ray-probe-"
# Tasks submitted ahead of the free CPUs: enough to keep every CPU busy between two completions, few
# enough that thousands of portraits do not all sit in the object store at once.
IN_FLIGHT_PER_CPU = 2


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached; the message says what to do."""


@dataclass(frozen=True)
class ClusterInfo:
    """The cluster a Ray bake connected to: its GCS address (host:port), live nodes and CPUs."""
    address: str
    nodes: int
    cpus: int


def import_ray() -> ModuleType:
    """The `ray` module, or RayUnavailable naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise RayUnavailable("baking on Ray needs the optional Ray extra: pip install 'avatarforge[ray]' "
                             "(ray 2.60), on the driver and on every node") from None
    return ray


def check_reachable(address: str | None, timeout_s: float = 10.0) -> None:
    """RayUnavailable unless something accepts connections at `address` (host:port, or ray://host:port);
    ray.init itself keeps retrying an unreachable address for minutes."""
    if not address:
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not port.isdigit():
        return  # "auto" and the like: Ray resolves them itself
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise RayUnavailable(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); "
                             f"is its head running (ray start --head)?") from None


def bake_task(name: str, portrait: bytes, out_dir: str, probe: str, spec: BakeSpec, attempt: int
              ) -> dict[str, Any]:
    """One portrait on a Ray worker. Returns {"record": the job's bake.json content}; when `out_dir` is
    not visible here (no file at `probe`), also {"files": {path relative to out_dir: bytes}}, everything
    the job wrote except bake.json, for the driver to write."""
    with tempfile.TemporaryDirectory(prefix="avatarforge-bake-") as tmp:
        src = Path(tmp) / "in" / name  # bake_one names the record after the file
        src.parent.mkdir()
        src.write_bytes(portrait)
        if probe and os.path.isfile(probe):
            return {"record": bake_one(str(src), out_dir, spec.formats, spec.options, 1, attempt, spec.generator)}
        local = Path(tmp) / "out"
        record = bake_one(str(src), str(local), spec.formats, spec.options, 1, attempt, spec.generator)
        files = {p.relative_to(local).as_posix(): p.read_bytes() for p in sorted(local.rglob("*"))
                 if p.is_file() and p != local / RECORD}
        return {"record": record, "files": files}


def _write_returned(out: Path, files: dict[str, bytes], record: Record) -> Record:
    """Write a task's returned files into `out`, then its record (last, so a record always describes
    files that are there); a failed write is a transient error of the job."""
    try:
        for rel, data in files.items():
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        write_record(out, record)
    except OSError as exc:
        return {**record, "status": "error", "error": f"cannot write the outputs: {exc}", "retryable": True}
    return record


class _RayRunner:
    """A `JobRunner` on a Ray cluster; connects at its first call (a bake with nothing left to do never
    does) and disconnects in `close`."""

    def __init__(self, ray: ModuleType, address: str | None, out_root: Path, return_files: bool,
                 on_connected: Callable[[ClusterInfo], None] | None):
        self._ray = ray
        self._address = address
        self._out_root = out_root
        self._return_files = return_files
        self._on_connected = on_connected
        self._task: Any = None  # the remote `bake_task` once connected (a ray.RemoteFunction; Ray ships no types)
        self._probe = ""
        self._owns_connection = False

    def _connect(self) -> None:
        ray = self._ray
        if not ray.is_initialized():
            try:
                ray.init(address=self._address, log_to_driver=False, logging_level=logging.WARNING)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = self._address or "RAY_ADDRESS or a new local instance"
                raise RayUnavailable(f"cannot reach the Ray cluster at {where}: {exc}") from None
            self._owns_connection = True
        self._task = ray.remote(num_cpus=1, max_retries=RAY_TASK_RETRIES,
                                runtime_env={"env_vars": TASK_ENV})(bake_task)
        for stale in self._out_root.glob(f"{PROBE_PREFIX}*"):  # left by a driver that was killed
            stale.unlink(missing_ok=True)
        if not self._return_files:
            probe = self._out_root / f"{PROBE_PREFIX}{uuid.uuid4().hex}"
            probe.touch()
            self._probe = str(probe.resolve())
        if self._on_connected is not None:
            alive = [n for n in ray.nodes() if n.get("Alive")]
            self._on_connected(ClusterInfo(ray.get_runtime_context().gcs_address, len(alive),
                                           int(ray.cluster_resources().get("CPU", 0))))

    def __call__(self, jobs: list[Job], spec: BakeSpec, attempt: int, finished: Callable[[Path, Record], None]
                 ) -> None:
        if self._task is None:
            self._connect()
        ray = self._ray
        waiting = list(jobs)
        running: dict[object, Job] = {}  # Ray object ref -> its job
        while waiting or running:
            window = max(1, IN_FLIGHT_PER_CPU * int(ray.cluster_resources().get("CPU", 1)))
            while waiting and len(running) < window:
                p, out = waiting.pop(0)
                try:
                    data = p.read_bytes()
                except OSError as exc:  # moved or unreadable since the folder was listed
                    finished(p, crashed(p, attempt, exc))
                    continue
                ref = self._task.options(name=f"bake {p.name}").remote(p.name, data, str(out.resolve()),
                                                                        self._probe, spec, attempt)
                running[ref] = (p, out)
            if not running:
                continue
            (ref,), _ = ray.wait(list(running), num_returns=1)
            p, out = running.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as exc:  # Ray's retries are spent: the bake's next attempt
                finished(p, crashed(p, attempt, exc))
                continue
            record = result["record"]
            finished(p, _write_returned(out, result["files"], record) if "files" in result else record)

    def close(self) -> None:
        if self._probe:
            Path(self._probe).unlink(missing_ok=True)
        if self._owns_connection:
            self._ray.shutdown()


def bake_folder_ray(portraits_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                    formats: tuple[str, ...] | list[str] = DEFAULT_FORMATS, options: ExportOptions | None = None,
                    address: str | None = None, on_result: Callable[[BakeResult], None] | None = None,
                    max_attempts: int = DEFAULT_MAX_ATTEMPTS, generator: str = DEFAULT_GENERATOR,
                    return_files: bool = False,
                    on_connected: Callable[[ClusterInfo], None] | None = None) -> BakeReport:
    """`exporter.bake.bake_folder` with one Ray task per portrait on the cluster at `address` (host:port
    of its head; None: RAY_ADDRESS, else a new local Ray instance; a process already connected to Ray
    bakes on that connection and leaves it open). `return_files` makes every task return its files to
    the driver even where it could write OUT itself. `on_connected` is told the cluster's size once
    connected."""
    ray = import_ray()  # a missing extra or an unreachable head is a sentence before any work
    check_reachable(address)
    runner = _RayRunner(ray, address, Path(out_dir), return_files, on_connected)
    try:
        return run_bake(portraits_dir, out_dir, runner, formats, options, on_result, max_attempts, generator)
    finally:
        runner.close()
