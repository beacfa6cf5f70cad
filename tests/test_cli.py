"""The create/render/demo commands, run as a user runs them (the console entry point's main)."""
import io
import json

import numpy as np
import pytest
from PIL import Image
from portrait_helpers import png_with_header_size

from grpc_server.cli import main


def bad_inputs():
    rng = np.random.default_rng(0)
    png = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(png, format="PNG")
    jpg = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(jpg, format="JPEG")
    solid = io.BytesIO()
    Image.new("RGB", (300, 300), (120, 140, 160)).save(solid, format="PNG")
    tiny = io.BytesIO()
    Image.new("RGB", (1, 1)).save(tiny, format="PNG")
    from skimage import data
    coffee = io.BytesIO()
    Image.fromarray(data.coffee()).save(coffee, format="JPEG")
    return {
        "random.png": (rng.bytes(5000), "not an image"),
        "truncated.png": (png.getvalue()[: len(png.getvalue()) // 2], "truncated"),
        "truncated.jpg": (jpg.getvalue()[: len(jpg.getvalue()) // 2], "truncated"),
        "tiny.png": (tiny.getvalue(), "too small"),
        "solid.png": (solid.getvalue(), "no face"),
        "coffee.jpg": (coffee.getvalue(), "no face"),
        "bomb.png": (png_with_header_size(30000, 30000), "image too large (30000 x 30000"),
    }


def test_create_json_then_render(tmp_path, astronaut_png, capsys):
    portrait = tmp_path / "astronaut.png"
    portrait.write_bytes(astronaut_png)
    store = tmp_path / "store"
    assert main(["create", str(portrait), "--store", str(store), "--json"]) == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert set(line) == {"avatar_id", "seconds"} and line["seconds"] > 0
    avatar_id = line["avatar_id"]
    assert (store / avatar_id / "avatar.json").is_file()

    out = tmp_path / "frame.png"
    assert main(["render", avatar_id, "--store", str(store), "--yaw", "20", "--expr", "jawOpen=0.7",
                 "--size", "128", "-o", str(out)]) == 0
    img = np.asarray(Image.open(out))
    assert img.shape == (128, 128, 4) and img[..., 3].max() == 255

    assert main(["render", avatar_id, "--store", str(store), "--expr", "smile=1", "-o", str(out)]) == 1
    assert "unknown blendshape name 'smile'" in capsys.readouterr().err
    assert main(["render", "../../etc", "--store", str(store), "-o", str(out)]) == 1


@pytest.mark.parametrize("name", list(bad_inputs()))
def test_bad_portraits_leave_the_store_untouched(tmp_path, capsys, name):
    data, message = bad_inputs()[name]
    path = tmp_path / name
    path.write_bytes(data)
    store = tmp_path / "store"
    assert main(["create", str(path), "--store", str(store)]) == 1
    assert message in capsys.readouterr().err
    assert not store.exists() or list(store.iterdir()) == []


def test_demo_writes_gif_and_sheets(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--size", "96", "--no-blender"]) == 0
    printed = capsys.readouterr().out
    gif = Image.open(out / "turntable.gif")
    assert gif.n_frames >= 24
    sheet = Image.open(out / "expressions.png")
    assert sheet.width >= 4 * 96
    # Contact sheet: 4 expressions + the GLB row, portrait column + 6 views, each tile 96 pixels.
    contact = np.asarray(Image.open(out / "contact.png"))
    assert contact.shape[0] > 5 * 96 and contact.shape[1] > 7 * 96
    assert contact[:, -96:].std() > 10  # the last view column (from above) shows something
    assert "turntable" in printed and "expressions" in printed and "contact" in printed
    assert "--no-blender" in printed
    assert len(list((out / "store").iterdir())) == 1


def test_demo_on_a_folder_of_portraits_names_each_sheet(tmp_path, astronaut_png, capsys):
    folder = tmp_path / "portraits"
    folder.mkdir()
    (folder / "first.png").write_bytes(astronaut_png)
    (folder / "notes.txt").write_text("not a portrait")
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--size", "64", "--no-blender", "--portraits", str(folder)]) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == [
        "first_contact.png", "first_expressions.png", "first_turntable.gif"]
    assert main(["demo", "-o", str(out), "--portraits", str(tmp_path / "missing")]) == 1
    assert "no such directory" in capsys.readouterr().err


def test_create_and_render_through_a_server(tmp_path, astronaut_png, capsys):
    from server_helpers import ServerProcess

    store = tmp_path / "served"
    server = ServerProcess(store)
    try:
        portrait = tmp_path / "astronaut.png"
        portrait.write_bytes(astronaut_png)
        assert main(["create", str(portrait), "--server", server.address, "--json"]) == 0
        avatar_id = json.loads(capsys.readouterr().out.strip())["avatar_id"]
        assert (store / avatar_id / "avatar.json").is_file()  # it landed in the server's store
        out = tmp_path / "served.png"
        assert main(["render", avatar_id, "--server", server.address, "--yaw", "-20", "--size", "96",
                     "-o", str(out)]) == 0
        assert np.asarray(Image.open(out)).shape == (96, 96, 4)
        assert main(["render", "f" * 64, "--server", server.address, "-o", str(out)]) == 1
        assert "NOT_FOUND: avatar ffff" in capsys.readouterr().err
    finally:
        assert server.stop() == 0
