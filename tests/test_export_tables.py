import csv
import io
import json

import numpy as np
import pytest
from export_helpers import small_avatar, small_head_model

from avatar.expressions import ARKIT_NAMES, LIVELINK_HEADER, UNREAL_NAMES, index_of
from exporter.tables import TARGET_COLUMNS, blendshapes_csv, npz_bytes, write_tables


@pytest.fixture(scope="module")
def tables():
    head = small_head_model()
    avatar = small_avatar(head)
    return head, avatar, write_tables(avatar, head)


def test_json_schema(tables):
    head, avatar, files = tables
    doc = json.loads(files["blendshapes.json"])
    assert set(doc) == {"schema_version", "avatar_id", "head_model_id", "units", "orders", "targets"}
    assert doc["schema_version"] == 1 and doc["units"] == "metres"
    assert doc["avatar_id"] == avatar.avatar_id and doc["head_model_id"] == head.model_id
    assert doc["orders"]["canonical"] == list(ARKIT_NAMES)
    assert doc["orders"]["unreal"] == list(UNREAL_NAMES)
    assert doc["orders"]["livelink"] == list(LIVELINK_HEADER[2:54])
    assert len(doc["targets"]) == 52
    for k, t in enumerate(doc["targets"]):
        assert list(t) == list(TARGET_COLUMNS)
        assert t["canonical_index"] == t["glb_morph_index"] == t["faceverse_exp52_index"] == k
        assert t["arkit_name"] == ARKIT_NAMES[k]
        assert UNREAL_NAMES[t["unreal_index"]] == t["unreal_name"]
        assert t["unreal_name"].lower() == t["arkit_name"].lower()
        # The Live Link column indexes a full CSV row, Timecode included.
        assert LIVELINK_HEADER[t["livelink_column"]].lower() == t["arkit_name"].lower()
        expected = np.linalg.norm(head.expression_basis[k], axis=1).max() * head.metres_per_unit
        assert t["max_displacement_m"] == pytest.approx(expected, rel=1e-6, abs=1e-9)
        area, side = t["region"].split(".")
        assert t["arkit_name"].startswith(area) and side in {"left", "right", "center", "none"}


def test_swapped_livelink_pairs(tables):
    doc = json.loads(tables[2]["blendshapes.json"])
    by_name = {t["arkit_name"]: t for t in doc["targets"]}
    # Live Link Face writes JawRight before JawLeft although Unreal's enum has JawLeft first.
    assert by_name["jawRight"]["livelink_column"] < by_name["jawLeft"]["livelink_column"]
    assert by_name["jawLeft"]["unreal_index"] < by_name["jawRight"]["unreal_index"]


def test_jaw_open_region_is_central_mouth_side(tables):
    doc = json.loads(tables[2]["blendshapes.json"])
    assert doc["targets"][index_of("jawOpen")]["region"] == "jaw.center"


def test_csv_matches_json(tables):
    files = tables[2]
    rows = list(csv.DictReader(io.StringIO(files["blendshapes.csv"].decode())))
    doc = json.loads(files["blendshapes.json"])
    assert len(rows) == 52
    assert list(rows[0]) == list(TARGET_COLUMNS)
    for row, target in zip(rows, doc["targets"]):
        for key, value in target.items():
            cell = row[key]
            assert (float(cell) == pytest.approx(value) if isinstance(value, float)
                    else type(value)(cell) == value), key


def test_npz_deltas_in_metres(tables):
    head, avatar, files = tables
    z = np.load(io.BytesIO(files["blendshapes.npz"]), allow_pickle=False)
    assert z["deltas"].shape == (52, head.num_vertices, 3) and z["deltas"].dtype == np.float32
    np.testing.assert_allclose(z["deltas"], head.expression_basis * head.metres_per_unit, rtol=1e-6)
    assert list(z["names"]) == list(ARKIT_NAMES)
    np.testing.assert_allclose(z["neutral_vertices"], head.posed(None, avatar.identity) * head.metres_per_unit,
                               rtol=1e-6)
    assert z["metres_per_unit"].shape == ()


def test_tables_are_deterministic(tables):
    head, avatar, files = tables
    again = write_tables(avatar, head)
    assert again == files
    assert blendshapes_csv(head) == files["blendshapes.csv"]


def test_npz_bytes_depend_only_on_arrays():
    a = {"x": np.arange(5, dtype=np.float32)}
    assert npz_bytes(a) == npz_bytes({"x": np.arange(5, dtype=np.float32)})
    assert npz_bytes(a) != npz_bytes({"x": np.arange(1, 6, dtype=np.float32)})
