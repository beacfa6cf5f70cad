"""The Unity package's engine-free C# (Runtime/Core), compiled with Mono's mcs and run with mono.

Python writes the inputs with the project's own exporter (a Live Link Face CSV; blendshapes.json for an
avatar on the embedded head model) and the expected values with avatar/expressions.py; the C# console
runner (Tests~/CoreTests) must agree exactly.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bindings_helpers import UNITY_DIR, require_tools, run

from avatar import expressions as ex

CORE_DIR = UNITY_DIR / "Runtime" / "Core"
RUNNER_DIR = UNITY_DIR / "Tests~" / "CoreTests"
FRAME_RATE = 30.0


@pytest.fixture(scope="module")
def core_tests_exe(tmp_path_factory) -> Path:
    require_tools("mcs", "mono")
    out = tmp_path_factory.mktemp("csharp") / "CoreTests.exe"
    sources = sorted(CORE_DIR.glob("*.cs")) + sorted(RUNNER_DIR.glob("*.cs"))
    proc = run(["mcs", "-langversion:7", "-warnaserror+", "-nologo", f"-out:{out}", *sources])
    assert proc.returncode == 0, f"mcs failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def _core_sources_reference_no_engine():
    for path in CORE_DIR.glob("*.cs"):
        text = path.read_text()
        assert "UnityEngine" not in text and "UnityEditor" not in text, f"{path.name} references the engine"
    asmdef = json.loads((CORE_DIR / "AvatarForge.Core.asmdef").read_text())
    assert asmdef["noEngineReferences"] is True


def test_core_has_no_engine_references():
    _core_sources_reference_no_engine()


def _expected_names_and_maps() -> dict:
    rng = np.random.default_rng(7)
    livelink_weights = rng.uniform(0, 1, ex.NUM_EXPRESSIONS).astype(np.float32)
    unreal_weights = rng.uniform(0, 1, ex.NUM_EXPRESSIONS).astype(np.float32)
    cases = [
        {"label": "smile", "map": {"mouthSmileLeft": 0.25, "MouthSmileRight": 0.75}},
        {"label": "pascal", "map": {"JawOpen": 1.0, "EYEBLINKLEFT": 0.5}},
        {"label": "tolerance", "map": {"tongueOut": 1.0000005}},
        {"label": "unknown", "map": {"jawOpenWide": 0.5}},
        {"label": "twice", "map": {"jawOpen": 0.5, "JawOpen": 0.4}},
        {"label": "above", "map": {"cheekPuff": 1.5}},
        {"label": "below", "map": {"cheekPuff": -0.01}},
    ]
    for case in cases:
        try:
            case["expected"] = ex.weights_from_map(case["map"]).tolist()
        except ex.ExpressionError:
            case["expected"] = None
    assert sum(c["expected"] is None for c in cases) == 4  # the C# side must refuse the same four
    return {
        "canonical": list(ex.ARKIT_NAMES),
        "unreal": list(ex.UNREAL_NAMES),
        "livelink_names": list(ex.LIVELINK_NAMES),
        "livelink_header": list(ex.LIVELINK_HEADER),
        "livelink_blendshape_count": ex.LIVELINK_BLENDSHAPE_COUNT,
        "unreal_to_canonical": ex.UNREAL_TO_CANONICAL.tolist(),
        "livelink_to_canonical": ex.LIVELINK_TO_CANONICAL.tolist(),
        "canonical_to_unreal": ex.CANONICAL_TO_UNREAL.tolist(),
        "canonical_to_livelink": ex.CANONICAL_TO_LIVELINK.tolist(),
        "reorder": {
            "livelink_weights": livelink_weights.tolist(),
            "canonical_from_livelink": ex.reorder(livelink_weights, ex.LIVELINK_TO_CANONICAL).tolist(),
            "unreal_weights": unreal_weights.tolist(),
            "canonical_from_unreal": ex.reorder(unreal_weights, ex.UNREAL_TO_CANONICAL).tolist(),
        },
        "index_of": {n: ex.index_of(n) for n in ex.UNREAL_NAMES + ("JAWOPEN", "mouthsmileleft")},
        "mirror": {n: ex.mirror_name(n) for n in ex.ARKIT_NAMES + ex.UNREAL_NAMES},
        "weights_from_map": cases,
    }


def _expected_frame() -> dict:
    rng = np.random.default_rng(3)
    w, h = 5, 3
    rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    depth = rng.uniform(0, 4, (h, w)).astype("<f4")
    alpha = rng.integers(0, 256, (h, w), dtype=np.uint8)
    return {
        "width": w, "height": h,
        "rgba_top_down": rgba.tobytes().hex(),
        "rgba_bottom_up": np.flipud(rgba).tobytes().hex(),
        "depth_top_down": depth.tobytes().hex(),
        "depth_bottom_up": np.flipud(depth).ravel().tolist(),
        "alpha_top_down": alpha.tobytes().hex(),
        "alpha_bottom_up": np.flipud(alpha).tobytes().hex(),
    }


def _livelink_expectation(data: bytes) -> dict:
    """What the exporter's own reader makes of a Live Link Face CSV."""
    from exporter.animation import eye_to_pose_columns
    from exporter.livelink import read_livelink_csv

    back = read_livelink_csv(data, FRAME_RATE)
    timecodes = [line.split(",", 1)[0] for line in data.decode().splitlines()[1:]]
    eye_columns = eye_to_pose_columns(back.eye)
    return {
        "frame_rate": FRAME_RATE,
        "frames": [
            {"timecode": timecodes[i], "time": float(back.times[i]), "weights": back.weights[i].tolist(),
             "head_rotation": back.head_rotation[i].tolist(), "eye_columns": eye_columns[i].tolist()}
            for i in range(back.num_frames)
        ],
    }


def _write_livelink_csv(path: Path) -> dict:
    """A Live Link Face CSV written by the exporter's writer, and its expectation."""
    from exporter.animation import Animation
    from exporter.livelink import write_livelink_csv

    rng = np.random.default_rng(11)
    frames = 9
    animation = Animation(
        times=(np.arange(frames) / FRAME_RATE).astype(np.float32),
        weights=rng.uniform(0, 1, (frames, ex.NUM_EXPRESSIONS)).astype(np.float32),
        head_rotation=rng.uniform(-0.3, 0.3, (frames, 3)).astype(np.float32),
        eye=rng.uniform(-0.2, 0.2, (frames, 4)).astype(np.float32),
        frame_rate=FRAME_RATE,
    )
    data = write_livelink_csv(animation)
    path.write_bytes(data)
    return _livelink_expectation(data)


def _export_tables_and_animation(out_dir: Path, source_csv: Path) -> tuple[Path, Path, dict]:
    """The exporter's own files (exporter.api.export, formats tables + animation) for an avatar on the
    embedded head model: blendshapes.json and animation/livelink.csv, plus the table expectation."""
    try:
        from avatar.head_model import embedded_head_model
        from avatar.synthetic import synthetic_avatar
    except ImportError as exc:
        pytest.skip(f"the embedded head model is not in this checkout yet ({exc})")
    from exporter.api import export

    head = embedded_head_model()
    written = export(synthetic_avatar(0, head=head), ["tables", "animation"],
                     animation_sources=[(source_csv.name, source_csv.read_bytes())], out_dir=out_dir, head=head)
    assert "blendshapes.json" in written and "animation/livelink.csv" in written, written
    doc = json.loads((out_dir / "blendshapes.json").read_text())
    table = {"avatar_id": doc["avatar_id"], "head_model_id": doc["head_model_id"], "targets": doc["targets"]}
    return out_dir / "blendshapes.json", out_dir / "animation" / "livelink.csv", table


def _run_core_tests(exe: Path, expected: dict, workdir: Path, table: Path | None = None,
                    livelink: Path | None = None) -> list[str]:
    expected_path = workdir / "expected.json"
    expected_path.write_text(json.dumps(expected))
    cmd = ["mono", exe, "--expected", expected_path]
    if table is not None:
        cmd += ["--table", table]
    if livelink is not None:
        cmd += ["--livelink", livelink]
    proc = run(cmd)
    assert proc.returncode == 0, f"C# core tests failed:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.strip().endswith("ALL PASSED"), proc.stdout
    return [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("PASS ")]


def test_names_maps_frames_and_livelink_csv_match_python(core_tests_exe, tmp_path):
    expected = _expected_names_and_maps()
    expected["frame"] = _expected_frame()
    csv_path = tmp_path / "livelink.csv"
    expected["livelink"] = _write_livelink_csv(csv_path)
    passed = _run_core_tests(core_tests_exe, expected, tmp_path, livelink=csv_path)
    assert set(passed) == {"name_orders", "index_maps", "mirror_names", "weights_from_map", "raw_frame_decoding",
                           "json_reader", "livelink_csv", "livelink_csv_rejects_bad_input"}


def test_files_the_exporter_wrote(core_tests_exe, tmp_path):
    """blendshapes.json and animation/livelink.csv exactly as exporter.api.export writes them."""
    expected = _expected_names_and_maps()
    expected["frame"] = _expected_frame()
    source = tmp_path / "take.csv"
    _write_livelink_csv(source)
    table_path, csv_path, expected["table"] = _export_tables_and_animation(tmp_path / "export", source)
    expected["livelink"] = _livelink_expectation(csv_path.read_bytes())
    passed = _run_core_tests(core_tests_exe, expected, tmp_path, table=table_path, livelink=csv_path)
    assert {"blendshape_table", "blendshape_table_rejects_bad_input", "table_livelink_columns"} <= set(passed)


def test_runner_fails_when_python_disagrees(core_tests_exe, tmp_path):
    """The runner can fail: a wrong expectation (two Live Link names swapped back) is reported."""
    expected = _expected_names_and_maps()
    expected["frame"] = _expected_frame()
    names = expected["livelink_names"]
    i, j = names.index("JawLeft"), names.index("JawRight")
    names[i], names[j] = names[j], names[i]
    path = tmp_path / "expected.json"
    path.write_text(json.dumps(expected))
    proc = run(["mono", core_tests_exe, "--expected", path])
    assert proc.returncode == 1
    assert "FAIL name_orders: " in proc.stdout and "livelink[" in proc.stdout
