"""`avatarforge bake --ray`: a real two-node Ray cluster (one CPU per node) on this machine, a folder of
portraits, a driver killed mid-bake and the bake resumed, a worker killed mid-task and retried by Ray."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.ray_cluster import HOST, LocalRayCluster, TaskWatcher, free_port
from exporter.bake_ray import PROBE_PREFIX, RayUnavailable, bake_folder_ray

ROOT = Path(__file__).resolve().parents[1]
TASK = "bake "  # Ray titles a worker running a bake task `ray::bake <portrait>`
GUARD_S = 300.0  # a wedged cluster fails the test instead of hanging it; never a speed check


def test_without_ray_the_extra_is_named_and_nothing_is_written(tmp_path, monkeypatch, capsys):
    from grpc_server.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "face.png").write_bytes(b"never read")
    with pytest.raises(RayUnavailable, match=r"pip install 'avatarforge\[ray\]'"):
        bake_folder_ray(tmp_path / "in", tmp_path / "out")
    assert main(["bake", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--ray"]) == 1
    assert "avatarforge[ray]" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_unreachable_head_is_a_sentence(tmp_path, capsys):
    pytest.importorskip("ray")
    from grpc_server.cli import main

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "face.png").write_bytes(b"never read")
    address = f"{HOST}:{free_port()}"  # nothing listens there
    assert main(["bake", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--ray", address]) == 1
    assert f"cannot reach the Ray cluster at {address}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert main(["bake", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--ray", address, "--workers", "2"]) == 2


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("ray", reason="the Ray extra is not installed (make venv installs it)")
    c = LocalRayCluster(nodes=2)
    try:
        yield c
    finally:
        c.stop()


def _portraits(folder: Path, shared_dir: Path) -> None:
    """Four faces under five names (two byte-identical pairs) and a file that is no image."""
    from portrait_helpers import astronaut_png

    folder.mkdir()
    (folder / "astronaut.png").write_bytes(astronaut_png())
    (folder / "astronaut_copy.png").write_bytes(astronaut_png())
    reference = shared_dir / "reference" / "portraits"
    shutil.copy(reference / "einstein_1904.jpg", folder / "einstein.jpg")
    shutil.copy(reference / "einstein_1904.jpg", folder / "einstein_copy.jpg")
    shutil.copy(reference / "painting_woman_black_dress.jpg", folder / "woman.jpg")
    (folder / "broken.jpg").write_bytes(b"this is not an image at all")


def _wait_for(condition, what: str, cluster):
    deadline = time.monotonic() + GUARD_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}; cluster log:\n{cluster.log()}")
        time.sleep(0.1)


def _ok_records(out: Path) -> dict[str, int]:
    """Output folder -> bake.json mtime (ns) of every job recorded as done."""
    done = {}
    for record in out.glob("*/bake.json"):
        try:
            if json.loads(record.read_text())["status"] == "ok":
                done[record.parent.name] = record.stat().st_mtime_ns
        except (OSError, ValueError, KeyError):
            continue  # being replaced right now
    return done


def test_a_killed_driver_resumes_and_a_killed_worker_is_retried(cluster, shared_dir, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    _portraits(src, shared_dir)

    # 1. The CLI drives the bake; once a portrait is done, the driver is killed.
    watcher = TaskWatcher(cluster, TASK)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(tmp_path / "driver.log", "wb") as log:
        driver = subprocess.Popen([sys.executable, "-m", "grpc_server.cli", "bake", str(src), "-o", str(out),
                                   "--formats", "tables", "--ray", cluster.address],
                                  cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for(lambda: _ok_records(out) or driver.poll() is not None, "the first baked portrait", cluster)
    finally:
        driver.kill()
        driver.wait()
        watcher.stop()
    assert driver.returncode == -signal.SIGKILL, (tmp_path / "driver.log").read_text()
    assert not (out / "report.json").exists()  # killed mid-bake, before its report
    # Ray ends a dead driver's tasks; wait for that so the resumed bake does not race them.
    _wait_for(lambda: not cluster.task_workers(TASK), "the dead driver's tasks to end", cluster)
    done_before = _ok_records(out)
    assert 0 < len(done_before) < 5

    # 2. The same bake again (tasks return their files this time); a worker is killed mid-task.
    killer = TaskWatcher(cluster, TASK, kill_after_s=1.0)
    try:
        report = bake_folder_ray(src, out, ["tables"], address=cluster.address, return_files=True)
    finally:
        killer.stop()
    doc = json.loads((out / "report.json").read_text())
    assert doc["summary"]["inputs"] == 6 and doc["summary"]["succeeded"] == 5 and doc["summary"]["failed"] == 1
    by_input = {r.input: r for r in report.results}
    assert by_input["broken.jpg"].failed and "PortraitError" in by_input["broken.jpg"].error
    for name, mtime in done_before.items():  # done before the driver died: skipped, untouched
        result = next(r for r in report.results if Path(r.output_dir).name == name)
        assert result.status == "skipped-ok"
        assert (out / name / "bake.json").stat().st_mtime_ns == mtime
    assert report.skipped >= len(done_before)

    # The killed task finished after the kill, on Ray's retry (the bake's own attempt count stayed 1).
    killed = killer.killed
    assert killed is not None, "no bake task was seen running"
    assert killed.omp_threads == "1"
    victim = by_input[killed.task[len(TASK):]]
    assert victim.status == "ok" and victim.attempts == 1
    assert (Path(victim.output_dir) / "bake.json").stat().st_mtime_ns > killed.killed_ns
    assert {node for _, node in watcher.seen | killer.seen} == {0, 1}  # both nodes baked

    ids = {name: by_input[name].avatar_id for name in by_input if name != "broken.jpg"}
    assert ids["astronaut.png"] == ids["astronaut_copy.png"] and ids["einstein.jpg"] == ids["einstein_copy.jpg"]
    assert len(set(ids.values())) == 3
    for name, avatar_id in ids.items():  # written by the driver from the returned bytes, or by the task
        tables = json.loads((out / Path(name).stem / "blendshapes.json").read_text())
        assert tables["avatar_id"] == avatar_id and len(tables["targets"]) == 52
    assert not list(out.glob(f"{PROBE_PREFIX}*"))  # the killed driver's probe was cleared
