"""`avatarforge bake`: a folder with good and bad portraits, run twice."""
import json

import numpy as np
import pytest

from avatar.generators import GeneratorError
from exporter.bake import bake_folder, output_names
from exporter.options import ExportError


def _projective_available() -> bool:
    try:
        from avatar.generators import get_generator

        get_generator("projective")
    except (ImportError, ValueError, KeyError):
        return False
    return True


needs_generator = pytest.mark.skipif(not _projective_available(), reason="projective generator not available")


def _portraits(folder):
    from portrait_helpers import astronaut, encode

    folder.mkdir()
    face = astronaut()
    (folder / "alice.png").write_bytes(encode(face, "PNG"))
    (folder / "bob.jpg").write_bytes(encode(face, "JPEG", quality=90))
    (folder / "carol.png").write_bytes(encode(np.ascontiguousarray(face[:, ::-1]), "PNG"))
    (folder / "broken.jpg").write_bytes(b"this is not an image at all")
    (folder / "truncated.png").write_bytes(encode(face, "PNG")[:200])
    (folder / ".DS_Store").write_bytes(b"\0hidden")


@pytest.fixture(scope="module")
def baked(tmp_path_factory):
    if not _projective_available():
        pytest.skip("projective generator not available")
    from grpc_server.cli import main

    root = tmp_path_factory.mktemp("bake")
    _portraits(root / "in")
    rc = main(["bake", str(root / "in"), "-o", str(root / "out"), "--workers", "2", "--formats", "tables"])
    return root, rc


@needs_generator
def test_three_outputs_two_errors_exit_zero(baked, capsys):
    root, rc = baked
    assert rc == 0
    report = json.loads((root / "out" / "report.json").read_text())
    assert report["summary"] == {"inputs": 5, "succeeded": 3, "failed": 2, "skipped": 0}
    by_input = {r["input"]: r for r in report["inputs"]}
    assert set(by_input) == {"alice.png", "bob.jpg", "carol.png", "broken.jpg", "truncated.png"}
    for name in ("alice.png", "bob.jpg", "carol.png"):
        r = by_input[name]
        assert r["status"] == "ok" and len(r["avatar_id"]) == 64 and r["seconds"] > 0
        assert (root / "out" / name.split(".")[0] / "blendshapes.json").is_file()
    assert len({by_input[n]["avatar_id"] for n in ("alice.png", "bob.jpg", "carol.png")}) == 3
    for name in ("broken.jpg", "truncated.png"):
        assert by_input[name]["status"] == "error" and by_input[name]["error"]


@needs_generator
def test_rerun_does_no_work(baked, capsys):
    from grpc_server.cli import main

    root, _ = baked
    before = {p: p.stat().st_mtime_ns for p in (root / "out").rglob("*") if p.name != "report.json"}
    rc = main(["bake", str(root / "in"), "-o", str(root / "out")] + ["--formats", "tables"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "5 portraits: 3 baked, 2 failed, 5 already done" in out
    after = {p: p.stat().st_mtime_ns for p in (root / "out").rglob("*") if p.name != "report.json"}
    assert after == before
    report = json.loads((root / "out" / "report.json").read_text())
    assert report["summary"]["skipped"] == 5


@needs_generator
def test_nothing_succeeding_exits_non_zero(tmp_path, capsys):
    from grpc_server.cli import main

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "junk.png").write_bytes(b"junk")
    rc = main(["bake", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--formats", "tables"])
    assert rc == 1
    assert "0 baked, 1 failed" in capsys.readouterr().out


def test_output_names_are_unique():
    from pathlib import Path

    names = output_names([Path("a.png"), Path("a.jpg"), Path("b.png")])
    assert names == {Path("a.png"): "a_png", Path("a.jpg"): "a_jpg", Path("b.png"): "b"}


def test_bad_arguments(tmp_path):
    with pytest.raises(ExportError, match="not a directory"):
        bake_folder(tmp_path / "missing", tmp_path / "out")
    with pytest.raises(ExportError, match="animation"):
        bake_folder(tmp_path, tmp_path / "out", formats=["glb", "anim"])
    with pytest.raises(ExportError, match="workers"):
        bake_folder(tmp_path, tmp_path / "out", workers=0)
    with pytest.raises(GeneratorError, match="unknown generator 'nope'"):
        bake_folder(tmp_path, tmp_path / "out", generator="nope")


def test_the_generator_is_chosen_and_recorded(tmp_path, monkeypatch):
    """avatarartist without its weights folder: the job fails with a sentence naming what is missing,
    and its record names the generator."""
    monkeypatch.setenv("AVATARFORGE_AVATARARTIST_WEIGHTS", str(tmp_path / "no-weights"))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "face.png").write_bytes(b"any bytes: the generator refuses before reading them")
    report = bake_folder(tmp_path / "in", tmp_path / "out", formats=["tables"], generator="avatarartist",
                         max_attempts=1)
    (result,) = report.results
    assert result.status == "error" and "avatarartist" in result.error
    record = json.loads((tmp_path / "out" / "face" / "bake.json").read_text())
    assert record["generator"] == "avatarartist"


@needs_generator
def test_a_rerun_with_nothing_left_never_calls_the_runner(baked):
    """What lets a finished Ray bake be rerun without a cluster: the runner is not called at all."""
    from exporter.bake import run_bake

    root, _ = baked

    def runner(*args):
        raise AssertionError("the runner was called with nothing to do")

    report = run_bake(root / "in", root / "out", runner, ["tables"])
    assert report.skipped == 5


def test_a_job_whose_worker_dies_is_tried_again_then_reported(tmp_path):
    """Any runner's crashed job (a dead pool process, a Ray task past its retries) gets the bake's
    bounded attempts, then is reported as a transient error."""
    from exporter.bake import crashed, run_bake

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "face.png").write_bytes(b"never read: the worker dies first")
    calls = []

    def runner(jobs, spec, attempt, finished):
        calls.append((attempt, [p.name for p, _ in jobs], spec.formats))
        for p, _ in jobs:
            finished(p, crashed(p, attempt, RuntimeError("worker died\nthree pages of scheduler log")))

    report = run_bake(tmp_path / "in", tmp_path / "out", runner, ["tables"], max_attempts=2)
    assert calls == [(1, ["face.png"], ["tables"]), (2, ["face.png"], ["tables"])]
    (result,) = report.results
    assert result.status == "error" and result.retryable and result.attempts == 2
    assert result.error == "RuntimeError: worker died"
    assert json.loads((tmp_path / "out" / "report.json").read_text())["summary"]["failed"] == 1
