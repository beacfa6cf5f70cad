"""Batch baking throughput, local pool against Ray: `python -m benchmarks.bake` prints one JSON line.

One run, the same portraits (the reference portraits and the astronaut, copied under more names up to
`--portraits`), fresh output folders each time, wall time of the whole bake as a user sees it (worker
start-up included), in portraits per minute:
- ray_1_node: Ray on a local cluster of one one-CPU node;
- local_2_workers: `bake_folder(workers=2)`, `--rounds` times, before any cluster is up;
- ray_2_nodes: the same cluster after a second one-CPU node joined, `--rounds` times (medians; every
  round's figure in *_rounds); ray_vs_local and ray_2_vs_1 are ratios of the medians;
- kill_to_done_s: two more portraits on the two-node cluster; the worker of the first task is SIGKILLed
  a second after it starts; seconds from the kill to that portrait's result (Ray's retry: a new worker,
  its imports, the whole create again), with the node(s) that task was seen on;
- ray_task_median_s / local_task_median_s: the median time of one portrait inside a worker, by mode.
The machine's 1-minute load average before and after says how much else was running; on a shared
machine compare ray_task_median_s with local_task_median_s before reading ray_vs_local.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

from benchmarks.portraits import astronaut_png
from benchmarks.ray_cluster import LocalRayCluster, TaskWatcher
from exporter.bake import BakeReport, bake_folder
from exporter.bake_ray import bake_folder_ray

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "portraits"


def portraits(folder: Path, count: int) -> None:
    """`count` portrait files: the distinct ones first, then copies under new names."""
    folder.mkdir()
    sources = [("astronaut.png", astronaut_png())]
    if REFERENCE.is_dir():
        sources += [(p.name, p.read_bytes()) for p in sorted(REFERENCE.iterdir()) if p.is_file()]
    for i in range(count):
        name, data = sources[i % len(sources)]
        stem, ext = os.path.splitext(name)
        (folder / f"{stem}_{i // len(sources)}{ext}").write_bytes(data)


def per_minute(run) -> tuple[float, BakeReport]:
    start = time.perf_counter()
    report = run()
    seconds = time.perf_counter() - start
    if report.failed:
        raise RuntimeError(f"the benchmark bake failed: {[(r.input, r.error) for r in report.results if r.failed]}")
    return round(len(report.results) * 60 / seconds, 2), report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # 16 by default: in a bake of 8, worker start-up (imports, models) is a third of a node's time.
    parser.add_argument("--portraits", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="alternations of Ray (2 nodes) and the local pool")
    parser.add_argument("--formats", default="tables", help="comma-separated bake formats (default tables)")
    args = parser.parse_args()
    formats = args.formats.split(",")
    out: dict = {"portraits": args.portraits, "formats": formats, "load_before": round(os.getloadavg()[0], 2)}
    tmp = Path(tempfile.mkdtemp(prefix="bench-bake-"))
    try:
        portraits(tmp / "in", args.portraits)
        # The local pool first, with no cluster up: an idle Ray cluster's daemons, each in a scheduling
        # session of its own, would take a share of the CPUs from the pool's workers.
        local, local_seconds = [], []
        for i in range(args.rounds):
            rate, report = per_minute(partial(bake_folder, tmp / "in", tmp / f"local_{i}", formats, workers=2))
            local.append(rate)
            local_seconds += [r.seconds for r in report.results]
        with LocalRayCluster(nodes=1) as cluster:
            ray1, _ = per_minute(lambda: bake_folder_ray(tmp / "in", tmp / "ray1", formats, address=cluster.address))
            cluster.add_node()
            ray2, ray_seconds = [], []
            for i in range(args.rounds):
                rate, report = per_minute(partial(bake_folder_ray, tmp / "in", tmp / f"ray2_{i}", formats,
                                                  address=cluster.address))
                ray2.append(rate)
                ray_seconds += [r.seconds for r in report.results]
            ray2_median, local_median = statistics.median(ray2), statistics.median(local)
            out.update(ray_1_node_per_min=ray1, ray_2_nodes_per_min=ray2_median, local_2_workers_per_min=local_median,
                       ray_vs_local=round(ray2_median / local_median, 3), ray_2_vs_1=round(ray2_median / ray1, 3),
                       ray_2_nodes_rounds=ray2, local_2_workers_rounds=local,
                       ray_task_median_s=round(statistics.median(ray_seconds), 2),
                       local_task_median_s=round(statistics.median(local_seconds), 2))
            out.update(kill_after_worker_death(cluster, tmp, formats))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out["load_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out))


def kill_after_worker_death(cluster: LocalRayCluster, tmp: Path, formats: list[str]) -> dict:
    (tmp / "kill").mkdir()
    for name in ("a.png", "b.png"):
        (tmp / "kill" / name).write_bytes(astronaut_png())
    done_ns: dict[str, int] = {}
    killer = TaskWatcher(cluster, "bake ", kill_after_s=1.0)
    try:
        bake_folder_ray(tmp / "kill", tmp / "kill_out", formats, address=cluster.address,
                        on_result=lambda r: done_ns.setdefault(r.input, time.time_ns()))
    finally:
        killer.stop()
    if killer.killed is None:
        raise RuntimeError("no bake task was seen running, nothing was killed")
    victim = killer.killed.task.removeprefix("bake ")
    nodes = sorted({node for task, node in killer.seen if task == killer.killed.task})
    return {"kill_to_done_s": round((done_ns[victim] - killer.killed.killed_ns) / 1e9, 2),
            "killed_on_node": killer.killed.node, "victim_seen_on_nodes": nodes}


if __name__ == "__main__":
    main()
