import json

import numpy as np
import pytest
import torch
from safetensors.torch import save as st_save

from avatar import asset, camera
from avatar.decoder import TriplaneDecoder
from avatar.surface_field import SEMANTICS


def make_avatar(seed=0) -> asset.Avatar:
    g = torch.Generator().manual_seed(seed)
    return asset.Avatar(
        avatar_id=asset.avatar_id_for(b"portrait-%d" % seed, "test", "1", {"k": seed}),
        planes=torch.randn(asset.PLANE_SHAPE, generator=g),
        decoder=TriplaneDecoder().state_for_asset(),
        identity=np.arange(5, dtype=np.float32),
        portrait_camera=camera.camera_vector(yaw_deg=3),
        head_model_id="embedded-v1",
        generator="test",
        generator_version="1",
        generator_settings={"k": seed},
        source_sha256="ab" * 32,
        channel_semantics=SEMANTICS,
        portrait=np.full((512, 512, 3), 7, np.uint8),
        thumbnail=np.full((64, 64, 4), 200, np.uint8),
        display_name="unit",
        created_unix=123.0,
    )


def test_id_is_content_hash():
    a = asset.avatar_id_for(b"x", "projective", "1", {"a": 1})
    assert a == asset.avatar_id_for(b"x", "projective", "1", {"a": 1})
    assert a != asset.avatar_id_for(b"y", "projective", "1", {"a": 1})
    assert a != asset.avatar_id_for(b"x", "projective", "2", {"a": 1})
    assert asset.is_valid_avatar_id(a)
    for bad in ("../etc", "A" * 64, a[:-1], "", None):
        assert not asset.is_valid_avatar_id(bad)


def test_round_trip(tmp_path):
    av = make_avatar()
    d = asset.save_avatar(av, tmp_path)
    assert d.name == av.avatar_id
    assert sorted(p.name for p in tmp_path.iterdir()) == [av.avatar_id]  # no temporary leftovers
    back = asset.load_avatar(d)
    assert torch.equal(back.planes, av.planes)
    assert back.decoder.keys() == av.decoder.keys()
    assert all(torch.equal(back.decoder[k], av.decoder[k]) for k in av.decoder)
    assert np.array_equal(back.identity, av.identity)
    assert np.allclose(back.portrait_camera, av.portrait_camera)
    assert np.array_equal(back.portrait, av.portrait) and np.array_equal(back.thumbnail, av.thumbnail)
    assert (back.generator, back.display_name, back.created_unix) == ("test", "unit", 123.0)
    TriplaneDecoder.from_asset(back.decoder)  # the weights load into the decoder


def test_round_trip_of_what_the_embedded_generators_add(tmp_path):
    """Plane axes, the portrait's expression and gaze and the shape correction survive a save and load; an avatar
    without them loads with the EG3D planes, no expression and no correction."""
    import dataclasses

    from avatar.decoder import EG3D_PLANES, SIDE_PLANES

    av = dataclasses.replace(make_avatar(), plane_names=SIDE_PLANES,
                             portrait_expression=np.linspace(0, 1, 52, dtype=np.float32),
                             shape_offsets=np.full((10, 3), 0.01, np.float32),
                             portrait_eye=np.array([0.1, -0.2, 0.1, -0.2], np.float32))
    back = asset.load_avatar(asset.save_avatar(av, tmp_path / "a"))
    assert back.plane_names == SIDE_PLANES
    assert np.array_equal(back.portrait_expression, av.portrait_expression)
    assert np.array_equal(back.shape_offsets, av.shape_offsets)
    assert np.array_equal(back.portrait_eye, av.portrait_eye)
    plain = asset.load_avatar(asset.save_avatar(make_avatar(), tmp_path / "b"))
    assert plain.plane_names == EG3D_PLANES and plain.portrait_expression is None and plain.shape_offsets is None
    assert plain.portrait_eye is None


def test_saving_twice_keeps_one(tmp_path):
    av = make_avatar()
    asset.save_avatar(av, tmp_path)
    asset.save_avatar(av, tmp_path)
    assert len(list(tmp_path.iterdir())) == 1


def corrupt_cases():
    def truncate(d):
        p = d / asset.TENSORS_FILE
        p.write_bytes(p.read_bytes()[:1000])

    def flip_byte(d):
        p = d / asset.TENSORS_FILE
        b = bytearray(p.read_bytes())
        b[-10] ^= 0xFF
        p.write_bytes(bytes(b))

    def rewrite_tensors(tensors):
        def apply(d):
            data = st_save(tensors)
            (d / asset.TENSORS_FILE).write_bytes(data)
            meta = json.loads((d / asset.META_FILE).read_text())
            import hashlib
            meta["files"][asset.TENSORS_FILE] = hashlib.sha256(data).hexdigest()
            (d / asset.META_FILE).write_text(json.dumps(meta))
        return apply

    def edit_meta(**changes):
        def apply(d):
            meta = json.loads((d / asset.META_FILE).read_text())
            meta.update(changes)
            (d / asset.META_FILE).write_text(json.dumps(meta))
        return apply

    def drop_meta_key(key):
        def apply(d):
            meta = json.loads((d / asset.META_FILE).read_text())
            del meta[key]
            (d / asset.META_FILE).write_text(json.dumps(meta))
        return apply

    return [
        ("truncated safetensors", truncate, "sha256 mismatch"),
        ("flipped byte", flip_byte, "sha256 mismatch"),
        ("missing tensors file", lambda d: (d / asset.TENSORS_FILE).unlink(), "file is missing"),
        ("missing json", lambda d: (d / asset.META_FILE).unlink(), "file is missing"),
        ("garbage json", lambda d: (d / asset.META_FILE).write_text("{nope"), "not valid JSON"),
        ("future schema", edit_meta(schema_version=99), "schema version 99"),
        ("missing key", drop_meta_key("head_model_id"), "missing keys head_model_id"),
        ("short camera", edit_meta(portrait_camera=[0.0] * 3), "25 values"),
        ("unknown plane axes", edit_meta(plane_names=["xy", "xz", "yy"]), "plane_names must be three of"),
        ("bad expression", rewrite_tensors({"planes": torch.zeros(asset.PLANE_SHAPE), "identity": torch.zeros(5),
                                            "decoder.x": torch.zeros(1), "portrait_expression": torch.zeros(7)}),
         "portrait_expression must be 52"),
        ("bad gaze", rewrite_tensors({"planes": torch.zeros(asset.PLANE_SHAPE), "identity": torch.zeros(5),
                                      "decoder.x": torch.zeros(1), "portrait_eye": torch.zeros(3)}),
         "portrait_eye must be 4"),
        ("bad shape correction", rewrite_tensors({"planes": torch.zeros(asset.PLANE_SHAPE),
                                                  "identity": torch.zeros(5), "decoder.x": torch.zeros(1),
                                                  "shape_offsets": torch.zeros(10, 2)}), "shape_offsets must be"),
        ("wrong plane shape", rewrite_tensors({"planes": torch.zeros(4, 32, 8, 8), "identity": torch.zeros(5),
                                               "decoder.net.0.weight": torch.zeros(64, 32)}), "planes have shape"),
        ("nan planes", rewrite_tensors({"planes": torch.full(asset.PLANE_SHAPE, float("nan")),
                                        "identity": torch.zeros(5), "decoder.x": torch.zeros(1)}), "NaN"),
        ("no decoder", rewrite_tensors({"planes": torch.zeros(asset.PLANE_SHAPE), "identity": torch.zeros(5)}),
         "decoder weights are missing"),
        ("bad png", lambda d: (d / asset.THUMBNAIL_FILE).write_bytes(b"\x89PNG junk"), "sha256 mismatch"),
    ]


@pytest.mark.parametrize("name, damage, message", corrupt_cases(), ids=[c[0] for c in corrupt_cases()])
def test_corruption_is_one_clear_error(tmp_path, name, damage, message):
    d = asset.save_avatar(make_avatar(), tmp_path)
    damage(d)
    with pytest.raises(asset.AssetError, match=message) as err:
        asset.load_avatar(d)
    assert str(d) in str(err.value)  # the message names the file


def test_refuses_bad_id_and_shape(tmp_path):
    av = make_avatar()
    av.avatar_id = "../../evil"
    with pytest.raises(asset.AssetError, match="64 lowercase hex"):
        asset.save_avatar(av, tmp_path)
    av = make_avatar()
    av.planes = torch.zeros(3, 32, 256, 256)
    with pytest.raises(asset.AssetError, match="planes must have shape"):
        asset.save_avatar(av, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_avatar_wears_its_shape_correction_once(synthetic):
    """The head an avatar wears is its model plus its shape correction, however the model is handed in
    (the registered one, the base model, or an already corrected head)."""
    import dataclasses

    from avatar.head_registry import head_for_avatar, head_model_for

    base = head_model_for(synthetic.head_model_id)
    offsets = np.zeros_like(base.vertices)
    offsets[:, 1] = 0.01
    avatar = dataclasses.replace(synthetic, shape_offsets=offsets)
    worn = head_for_avatar(avatar)
    assert np.allclose(worn.vertices, base.vertices + offsets)
    assert np.allclose(worn.eye_centers[:, 1], base.eye_centers[:, 1] + 0.01)
    assert np.allclose(head_for_avatar(avatar, worn).vertices, worn.vertices)
    assert head_for_avatar(synthetic) is base
