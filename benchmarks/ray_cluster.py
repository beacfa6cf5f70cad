"""A throwaway Ray cluster of one-CPU nodes on this machine, for the Ray bake's tests and benchmark.

`LocalRayCluster` runs `ray start --head --block --num-cpus 1`, and `ray start --block --address HEAD
--num-cpus 1` for every node added, each in its own process session; `stop()` ends them (SIGTERM, then
SIGKILL for whatever of theirs is left) and removes the cluster's temporary folder. Ray turns 127.0.0.1
and localhost into the machine's routable address (it expects nodes on other machines to reach the head),
so the cluster lives on 127.0.0.2: still loopback, nothing leaves the machine.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.2"
OBJECT_STORE_BYTES = 100_000_000  # Ray's floor is 75 MB; bake results are a few MB at most
START_GUARD_S = 180.0  # a node that is not up by then failed (never a speed check)
STOP_GUARD_S = 30.0
_STARTED = "Ray runtime started"


@dataclass(frozen=True)
class TaskWorker:
    """A Ray worker process running a task: its pid, the task's name and which node (0 = head) runs it."""
    pid: int
    task: str
    node: int


@dataclass(frozen=True)
class KilledTask:
    """A task whose worker `TaskWatcher` SIGKILLed: its name, node, the unix time (ns) of the kill, and the
    worker's OMP_NUM_THREADS ("" when unset)."""
    task: str
    node: int
    killed_ns: int
    omp_threads: str


def free_port() -> int:
    """A port nothing listens on at HOST right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _ray_cli() -> str:
    return str(Path(sys.executable).with_name("ray"))


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process visible in /proc."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the command name in (...) may hold spaces
        out[int(entry)] = (ppid, cmdline.strip())
    return out


class LocalRayCluster:
    def __init__(self, nodes: int = 2, env: dict | None = None):
        self._env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **(env or {})}
        # Short: Ray's unix sockets live under it and a socket path may not exceed 107 bytes.
        self.workdir = Path(tempfile.mkdtemp(prefix="afray-", dir="/tmp"))
        self._nodes: list[subprocess.Popen] = []
        self.address = f"{HOST}:{free_port()}"
        try:
            self._start_node(["--head", "--port", self.address.rsplit(":", 1)[1], "--include-dashboard", "false",
                              "--ray-client-server-port", str(free_port()), "--temp-dir", str(self.workdir / "ray")])
            for _ in range(nodes - 1):
                self.add_node()
        except BaseException:
            self.stop()
            raise

    def _start_node(self, args: list[str]) -> None:
        log = self.workdir / f"node{len(self._nodes)}.log"
        cmd = [_ray_cli(), "start", "--block", "--num-cpus", "1", "--node-ip-address", HOST,
               "--object-store-memory", str(OBJECT_STORE_BYTES), "--disable-usage-stats", *args]
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self._env, start_new_session=True)
        self._nodes.append(proc)
        deadline = time.monotonic() + START_GUARD_S
        while _STARTED not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray node {len(self._nodes) - 1} did not start; its log:\n"
                                   f"{log.read_text(errors='replace')[-4000:]}")
            time.sleep(0.2)

    def add_node(self) -> None:
        """Join one more one-CPU node to the cluster."""
        self._start_node(["--address", self.address])

    @property
    def nodes(self) -> int:
        return len(self._nodes)

    def _descendants(self) -> dict[int, int]:
        """pid -> node index of every live process started (directly or not) by our `ray start`s."""
        procs = _processes()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in procs.items():
            children.setdefault(ppid, []).append(pid)
        owner: dict[int, int] = {}
        for index, node in enumerate(self._nodes):
            stack = [node.pid]
            while stack:
                pid = stack.pop()
                if pid in procs and pid not in owner:
                    owner[pid] = index
                    stack.extend(children.get(pid, ()))
        return owner

    def task_workers(self, prefix: str = "") -> list[TaskWorker]:
        """Worker processes of this cluster running a task whose name starts with `prefix` (Ray titles a
        busy worker `ray::<task name>`; an idle one `ray::IDLE`)."""
        procs = _processes()
        out = []
        for pid, node in self._descendants().items():
            title = procs.get(pid, (0, ""))[1]
            if title.startswith("ray::") and not title.startswith("ray::IDLE"):
                task = title[len("ray::"):]
                if task.startswith(prefix) and "Agent" not in task:
                    out.append(TaskWorker(pid, task, node))
        return sorted(out, key=lambda w: w.pid)

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-2000:] for p in sorted(self.workdir.glob("node*.log")))

    def stop(self) -> None:
        """End every process of the cluster (the last node first) and remove its temporary folder."""
        before = _processes()
        leftovers = self._descendants()
        for node in reversed(self._nodes):
            if node.poll() is None:
                node.send_signal(signal.SIGTERM)
                try:
                    node.wait(timeout=STOP_GUARD_S)
                except subprocess.TimeoutExpired:
                    node.kill()
                    node.wait()
        # Workers run in sessions of their own and may outlive their raylet: end the ones we saw.
        alive = _processes()
        for pid in leftovers:
            if pid in alive and alive[pid][1] == before[pid][1] and pid not in (n.pid for n in self._nodes):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._nodes.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalRayCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class TaskWatcher:
    """Watches a cluster's tasks whose name starts with `prefix` and remembers every (task, node) it saw
    running; with `kill_after_s`, SIGKILLs the worker of the first one that long after it started."""

    def __init__(self, cluster: LocalRayCluster, prefix: str, kill_after_s: float | None = None):
        self.cluster = cluster
        self.prefix = prefix
        self.kill_after_s = kill_after_s
        self.seen: set[tuple[str, int]] = set()
        self.killed: KilledTask | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="task-watcher")
        self._thread.start()

    def _run(self) -> None:
        first: tuple[TaskWorker, float] | None = None
        while not self._stop.wait(0.1):
            workers = self.cluster.task_workers(self.prefix)
            self.seen.update((w.task, w.node) for w in workers)
            if self.kill_after_s is None or self.killed is not None or not workers:
                continue
            if first is None or first[0] not in workers:  # a new first task (the old one ended)
                first = (workers[0], time.monotonic())
            elif time.monotonic() - first[1] >= self.kill_after_s:
                victim = first[0]
                environ = Path(f"/proc/{victim.pid}/environ").read_bytes().split(b"\0")
                omp = next((e.split(b"=", 1)[1].decode() for e in environ if e.startswith(b"OMP_NUM_THREADS=")), "")
                os.kill(victim.pid, signal.SIGKILL)
                self.killed = KilledTask(victim.task, victim.node, time.time_ns(), omp)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
