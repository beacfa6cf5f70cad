"""The avatar store on its own: ids, listing pages, atomic create/delete, leftovers, verified loads."""
from __future__ import annotations

import hashlib
import os
import threading

import numpy as np
import pytest
import torch

from avatar.asset import META_FILE, Avatar, save_avatar
from grpc_server.store import AvatarNotFound, AvatarStore, DamagedAvatar, InvalidPageToken


def tiny_avatar(n: int) -> Avatar:
    """A structurally valid avatar (zero planes); the store never renders, so content does not matter."""
    return Avatar(
        avatar_id=hashlib.sha256(f"avatar-{n}".encode()).hexdigest(),
        planes=torch.zeros(4, 32, 256, 256),
        decoder={"layer.weight": torch.ones(4, 4)},
        identity=np.zeros(3, dtype=np.float32),
        portrait_camera=np.arange(25, dtype=np.float32),
        head_model_id="test-head",
        generator="test",
        generator_version="1",
        generator_settings={},
        source_sha256="0" * 64,
        channel_semantics={"rgb": [0, 1, 2]},
        display_name=f"avatar {n}",
        thumbnail=np.full((8, 8, 4), 200, dtype=np.uint8),
    )


@pytest.fixture
def store(tmp_path):
    return AvatarStore(tmp_path / "store")


def test_create_get_and_idempotent(store):
    a = tiny_avatar(1)
    record = store.create(a)
    assert record.avatar_id == a.avatar_id and record.display_name == "avatar 1"
    assert record.portrait_camera == tuple(float(x) for x in range(25))
    again = store.create(a)
    assert again == record
    assert store.ids() == [a.avatar_id]
    with_thumb = store.info(a.avatar_id, include_thumbnail=True)
    assert with_thumb.thumbnail_png.startswith(b"\x89PNG")


@pytest.mark.parametrize("bad", ["../etc/passwd", "..", "", "A" * 64, "g" * 64, "/tmp", "0" * 63,
                                 "0" * 64 + "/..", "0" * 32 + "/" + "0" * 31])
def test_malformed_ids_are_not_found(store, bad):
    for call in (store.info, store.load, store.delete):
        with pytest.raises(AvatarNotFound, match="not a valid avatar id"):
            call(bad)


def test_unknown_id_not_found(store):
    with pytest.raises(AvatarNotFound, match="does not exist"):
        store.info("ab" * 32)
    assert store.delete("ab" * 32) is False


def test_list_pages_in_id_order(store):
    ids = sorted(store.create(tiny_avatar(n)).avatar_id for n in range(5))
    seen, token, pages = [], "", 0
    while True:
        records, token = store.list(page_size=2, page_token=token)
        seen += [r.avatar_id for r in records]
        pages += 1
        if not token:
            break
    assert seen == ids and pages == 3
    records, token = store.list()
    assert [r.avatar_id for r in records] == ids and token == ""


def test_page_token_survives_deletes_and_rejects_garbage(store):
    ids = sorted(store.create(tiny_avatar(n)).avatar_id for n in range(4))
    first, token = store.list(page_size=2)
    store.delete(first[1].avatar_id)
    rest, _ = store.list(page_size=10, page_token=token)
    assert [r.avatar_id for r in rest] == ids[2:]
    for garbage in ("nonsense", "YWZ0ZXI6Li4vZXRj", "x" * 500):
        with pytest.raises(InvalidPageToken):
            store.list(page_token=garbage)


def test_delete_is_atomic_and_leaves_nothing(store):
    a = tiny_avatar(2)
    store.create(a)
    assert store.delete(a.avatar_id) is True
    assert store.delete(a.avatar_id) is False
    assert os.listdir(store.root) == []
    with pytest.raises(AvatarNotFound):
        store.info(a.avatar_id)


def test_concurrent_creates_of_the_same_id(store):
    a = tiny_avatar(3)
    errors = []

    def create():
        try:
            store.create(a)
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert os.listdir(store.root) == [a.avatar_id]
    assert store.load(a.avatar_id).avatar_id == a.avatar_id


def test_leftovers_are_invisible_and_swept(tmp_path):
    root = tmp_path / "store"
    a = tiny_avatar(4)
    save_avatar(a, root)
    # What a killed create and a killed delete leave behind.
    partial = root / f".tmp-{a.avatar_id[:12]}-abc"
    partial.mkdir()
    (partial / "avatar.safetensors").write_bytes(b"half")
    trash = root / f".trash-{a.avatar_id[:12]}-def"
    trash.mkdir()
    (trash / META_FILE).write_text("{}")
    store = AvatarStore(root)
    assert store.ids() == [a.avatar_id]
    assert store.sweep(min_age_s=3600) == 0  # young leftovers may belong to another replica's create
    assert store.sweep(min_age_s=0) == 2
    assert os.listdir(root) == [a.avatar_id]


def test_directory_without_metadata_is_invisible(store):
    (store.root / ("cd" * 32)).mkdir()
    assert store.ids() == []
    with pytest.raises(AvatarNotFound):
        store.info("cd" * 32)


def test_damaged_avatar_is_reported_and_skipped_in_listing(store):
    good, bad = tiny_avatar(5), tiny_avatar(6)
    store.create(good)
    store.create(bad)
    (store.root / bad.avatar_id / META_FILE).write_text("{not json")
    with pytest.raises(DamagedAvatar, match="damaged"):
        store.info(bad.avatar_id)
    records, _ = store.list()
    assert [r.avatar_id for r in records] == [good.avatar_id]
    # Tensor corruption is caught by the asset's hashes when loading.
    tensors = store.root / good.avatar_id / "avatar.safetensors"
    data = bytearray(tensors.read_bytes())
    data[-1] ^= 0xFF
    tensors.write_bytes(bytes(data))
    with pytest.raises(DamagedAvatar, match="sha256"):
        store.load(good.avatar_id)
