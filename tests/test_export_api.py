"""exporter.api.export and the `avatarforge export` command on a local store."""
import csv
import io
import json
from pathlib import Path

import pytest
from export_helpers import glb_inputs

from avatar.expressions import LIVELINK_HEADER, index_of
from exporter.api import export, normalise_formats
from exporter.options import ExportError, ExportOptions

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "faceverse"
OPTIONS = ExportOptions(texture_size=256, include_static=False)


def _sources():
    if REFERENCE.is_dir():
        return [(p.name, p.read_bytes()) for p in sorted(REFERENCE.glob("coeffs_v3_*.npy"))]
    return [("take.json", json.dumps([{"mouthSmileLeft": 0.8, "mouthSmileRight": 0.9}] * 4).encode())]


@pytest.fixture(scope="module")
def inputs():
    avatar, head, colour, density = glb_inputs()
    return avatar, dict(head=head, colour=colour, density_grid=density)


@pytest.fixture(scope="module")
def full_export(inputs, tmp_path_factory):
    avatar, kwargs = inputs
    out = tmp_path_factory.mktemp("export")
    stages = []
    written = export(avatar, {"triplane", "animation", "tables", "glb"}, OPTIONS, _sources(), out,
                     progress=lambda stage, fraction, message: stages.append((stage, fraction)), **kwargs)
    return avatar, kwargs, out, written, stages


def test_paths_in_a_fixed_order(full_export):
    _, _, out, written, _ = full_export
    assert written[:6] == ["avatar.glb", "blendshapes.json", "blendshapes.csv", "blendshapes.npz",
                           "animation/livelink.csv", "animation/frames.json"]
    assert written[6:] == sorted(written[6:]) and written[-1] == "triplane/triplane.json"
    assert all((out / rel).is_file() for rel in written)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(written)


def test_progress_is_reported(full_export):
    stages = full_export[4]
    assert {s for s, _ in stages} >= {"glb", "tables", "animation", "triplane", "done"}
    assert all(0.0 <= f <= 1.0 for _, f in stages)


def test_animation_outputs(full_export):
    _, _, out, _, _ = full_export
    rows = list(csv.reader(io.StringIO((out / "animation/livelink.csv").read_text())))
    assert tuple(rows[0]) == LIVELINK_HEADER and len(rows) == 5
    frames = json.loads((out / "animation/frames.json").read_text())
    assert len(frames) == 4
    smile = {"mouthSmileLeft", "mouthSmileRight"}
    for i in (0, 2) if REFERENCE.is_dir() else (0,):
        weights = {k: v for k, v in frames[i].items() if k[0].islower()}
        assert set(sorted(weights, key=weights.get)[-2:]) == smile


def test_glb_carries_the_animation(full_export):
    from export_helpers import load_glb

    gltf, _ = load_glb((full_export[2] / "avatar.glb").read_bytes())
    assert len(gltf.animations) == 1


def test_export_is_deterministic(full_export, tmp_path):
    avatar, kwargs, out, written, _ = full_export
    again = export(avatar, ["glb", "tables", "anim", "triplane"], OPTIONS, _sources(), tmp_path, **kwargs)
    assert again == written
    for rel in written:
        assert (tmp_path / rel).read_bytes() == (out / rel).read_bytes(), rel


@pytest.mark.parametrize("formats, sources, match", [
    (["obj"], None, "unknown export format 'obj'"),
    ([], None, "no export format"),
    (["animation"], None, "needs an animation source"),
    (["tables", "animation"], [("a.txt", b"x")], "unknown animation format"),
    (["tables", "animation"], [("a.npy", b"\x93NUMPY garbage")], "a.npy"),
])
def test_bad_requests_write_nothing(inputs, tmp_path, formats, sources, match):
    avatar, kwargs = inputs
    with pytest.raises(ExportError, match=match):
        export(avatar, formats, OPTIONS, sources, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_format_aliases():
    assert normalise_formats(["ANIM", "triplane", "glb", "glb"]) == ["glb", "animation", "triplane"]


@pytest.mark.parametrize("kwargs, match", [
    ({"texture_size": 300}, "power of two"),
    ({"texture_size": 8192}, "power of two"),
    ({"frame_rate": float("nan")}, "frame_rate"),
    ({"frame_rate": 0}, "frame_rate"),
    ({"static_triangle_budget": 5}, "static_triangle_budget"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ExportError, match=match):
        ExportOptions(**kwargs)


def test_cli_export_from_a_local_store(inputs, tmp_path, capsys):
    from avatar.asset import save_avatar
    from grpc_server.cli import main

    avatar, kwargs = inputs
    try:
        from avatar.head_registry import register_head_model
    except ImportError as exc:
        pytest.skip(f"the head model registry is not available yet ({exc})")
    if kwargs["head"] is not None:
        register_head_model(kwargs["head"])
    store = tmp_path / "store"
    save_avatar(avatar, store)
    anim = tmp_path / "take.json"
    anim.write_text(json.dumps([{"jawOpen": 0.1}, {"jawOpen": 0.6}]))
    out = tmp_path / "out"
    rc = main(["export", avatar.avatar_id, "--store", str(store), "-o", str(out), "--formats", "tables,triplane",
               "--anim", str(anim), "--frame-rate", "24"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert (out / "blendshapes.json").is_file() and (out / "triplane" / "triplane.json").is_file()
    frames = json.loads((out / "animation" / "frames.json").read_text())
    assert frames[1]["jawOpen"] == pytest.approx(0.6)
    assert "livelink.csv" in captured.out
    rows = list(csv.reader(io.StringIO((out / "animation" / "livelink.csv").read_text())))
    assert float(rows[2][LIVELINK_HEADER.index("JawOpen")]) == pytest.approx(0.6)
    assert index_of("JawOpen") == index_of("jawOpen")


def test_cli_export_unknown_avatar_is_a_clear_error(tmp_path, capsys):
    from grpc_server.cli import main

    rc = main(["export", "a" * 64, "--store", str(tmp_path), "-o", str(tmp_path / "out")])
    assert rc == 1
    assert "is not in the store" in capsys.readouterr().err
