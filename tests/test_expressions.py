import numpy as np
import pytest

from avatar import expressions as ex


def test_canonical_order_is_alphabetical_and_complete():
    assert len(ex.ARKIT_NAMES) == 52
    assert list(ex.ARKIT_NAMES) == sorted(ex.ARKIT_NAMES)
    assert {n.lower() for n in ex.UNREAL_NAMES} == {n.lower() for n in ex.ARKIT_NAMES}


def test_reference_indices():
    assert ex.index_of("mouthSmileLeft") == 43
    assert ex.index_of("eyeLookUpRight") == 17
    assert ex.index_of("TONGUEOUT") == 51
    assert ex.index_of("JawOpen") == 24


def test_livelink_header_matches_reference():
    header = ex.LIVELINK_HEADER
    assert header[:2] == ("Timecode", "BlendShapeCount")
    assert len(header) == 2 + 52 + 9
    assert ex.LIVELINK_BLENDSHAPE_COUNT == 61
    names = list(header[2:54])
    # Unreal order but with the two swapped pairs, as the app records it.
    assert names[names.index("JawRight") + 1] == "JawLeft"
    assert names[names.index("MouthRight") + 1] == "MouthLeft"
    assert ex.UNREAL_NAMES.index("JawLeft") < ex.UNREAL_NAMES.index("JawRight")
    assert header[-9:] == ex.LIVELINK_HEAD_COLUMNS


@pytest.mark.parametrize("order, to_canonical", [(ex.UNREAL_NAMES, ex.UNREAL_TO_CANONICAL),
                                                  (ex.LIVELINK_NAMES, ex.LIVELINK_TO_CANONICAL)])
def test_order_tables_round_trip(order, to_canonical):
    values = np.arange(52, dtype=np.float32)
    canonical = ex.reorder(values, to_canonical)
    for k, name in enumerate(order):
        assert canonical[ex.index_of(name)] == values[k]
    to_order = ex.CANONICAL_TO_UNREAL if order is ex.UNREAL_NAMES else ex.CANONICAL_TO_LIVELINK
    assert np.array_equal(to_canonical[to_order], np.arange(52))


def test_weights_from_map_and_errors():
    w = ex.weights_from_map({"jawopen": 0.5, "EyeBlinkLeft": 1.0})
    assert w[24] == 0.5 and w[8] == 1.0 and w.sum() == 1.5
    with pytest.raises(ex.ExpressionError, match="unknown blendshape name 'smile'"):
        ex.weights_from_map({"smile": 1})
    with pytest.raises(ex.ExpressionError, match="outside"):
        ex.weights_from_map({"jawOpen": 1.5})
    with pytest.raises(ex.ExpressionError, match="not a finite"):
        ex.weights_from_map({"jawOpen": float("nan")})
    with pytest.raises(ex.ExpressionError, match="given twice"):
        ex.weights_from_map({"jawOpen": 0.1, "JAWOPEN": 0.2})
    with pytest.raises(ex.ExpressionError, match="52 weights"):
        ex.validate_weights(np.zeros(51))
    # Within the tolerance, values are clipped rather than refused.
    w = ex.validate_weights(np.full(52, 1 + 5e-7))
    assert w.max() == 1.0
    with pytest.raises(ex.ExpressionError):
        ex.validate_weights(np.full(52, -1e-5))
    assert ex.to_expression(None).shape == (52,)


def test_mirror_names():
    assert ex.mirror_name("eyeBlinkLeft") == "eyeBlinkRight"
    assert ex.mirror_name("jawRight") == "jawLeft"
    assert ex.mirror_name("jawOpen") == "jawOpen"
