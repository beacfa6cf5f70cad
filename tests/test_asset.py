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
