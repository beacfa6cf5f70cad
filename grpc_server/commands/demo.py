"""`avatarforge demo [-o DIR]`: the whole path on the public-domain astronaut portrait shipped with
scikit-image: an avatar, a turntable GIF (-35 to +35 degrees yaw) and a labelled expression sheet."""
from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from grpc_server.commands._common import fail, progress_bar

TURNTABLE_FRAMES = 24
TURNTABLE_YAW = 35.0
SHEET_TILE = 192
# Label -> ARKit weights; every entry is a named expression on the sheet.
EXPRESSIONS: dict[str, dict[str, float]] = {
    "neutral": {},
    "jawOpen": {"jawOpen": 1.0},
    "smile": {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0},
    "eyeBlinkLeft": {"eyeBlinkLeft": 1.0},
    "eyeBlinkRight": {"eyeBlinkRight": 1.0},
    "browInnerUp": {"browInnerUp": 1.0},
    "browDown": {"browDownLeft": 1.0, "browDownRight": 1.0},
    "eyeWide": {"eyeWideLeft": 1.0, "eyeWideRight": 1.0},
    "lookLeft": {"eyeLookOutLeft": 1.0, "eyeLookInRight": 1.0},
    "lookUp": {"eyeLookUpLeft": 1.0, "eyeLookUpRight": 1.0},
    "mouthPucker": {"mouthPucker": 1.0},
    "mouthFrown": {"mouthFrownLeft": 1.0, "mouthFrownRight": 1.0},
    "cheekPuff": {"cheekPuff": 1.0},
    "jawLeft": {"jawLeft": 1.0, "jawOpen": 0.3},
    "noseSneer": {"noseSneerLeft": 1.0, "noseSneerRight": 1.0},
    "tongueOut": {"tongueOut": 1.0, "jawOpen": 0.5},
}


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="astronaut portrait -> avatar, turntable GIF, expression sheet",
                                   description=__doc__)
    parser.add_argument("-o", "--out", type=Path, default=Path("demo_out"), help="output directory (default demo_out)")
    parser.add_argument("--size", type=int, default=256, help="frame size of the GIF and sheet tiles")
    parser.set_defaults(func=run)


def astronaut_png() -> bytes:
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, format="PNG")
    return buf.getvalue()


def run(args) -> int:
    from avatar import camera
    from avatar.generators import get_generator
    from avatar.render import Renderer
    from grpc_server.store import AvatarStore

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        portrait = astronaut_png()
        (out / "astronaut.png").write_bytes(portrait)
        with progress_bar("create") as update:
            avatar = get_generator("projective").create(portrait, progress=update, display_name="astronaut")
        record = AvatarStore(out / "store").create(avatar)
        renderer = Renderer(avatar)
        frames = []
        yaws = np.concatenate([np.linspace(-TURNTABLE_YAW, TURNTABLE_YAW, TURNTABLE_FRAMES),
                               np.linspace(TURNTABLE_YAW, -TURNTABLE_YAW, TURNTABLE_FRAMES)[1:-1]])
        for yaw in tqdm(yaws, desc="turntable", unit="frame"):
            result = renderer.render(camera.camera_vector(yaw_deg=float(yaw)), size=args.size)
            frames.append(Image.fromarray((result.over((1.0, 1.0, 1.0)) * 255 + 0.5).astype(np.uint8)))
        gif = out / "turntable.gif"
        frames[0].save(gif, save_all=True, append_images=frames[1:], duration=60, loop=0)
        sheet = out / "expressions.png"
        _expression_sheet(renderer, args.size).save(sheet)
    except Exception as e:  # every failure path already carries a sentence for the user
        return fail("demo", e)
    print(f"avatar      {record.avatar_id} (store {out / 'store'})")
    print(f"turntable   {gif}")
    print(f"expressions {sheet}")
    print(f"seconds     {time.perf_counter() - start:.1f}")
    return 0


def _expression_sheet(renderer, size: int) -> Image.Image:
    from avatar import camera

    cols = 4
    rows = -(-len(EXPRESSIONS) // cols)
    tile = SHEET_TILE
    sheet = Image.new("RGB", (cols * tile, rows * (tile + 18)), "white")
    draw = ImageDraw.Draw(sheet)
    # Closer than the default framing: expressions are about the face, not the hair.
    cam = camera.camera_vector(yaw_deg=-12.0, pitch_deg=-4.0, radius=2.1)
    for k, (label, weights) in enumerate(tqdm(EXPRESSIONS.items(), desc="expressions", unit="tile")):
        result = renderer.render(cam, weights or None, size=size)
        img = Image.fromarray((result.over((1.0, 1.0, 1.0)) * 255 + 0.5).astype(np.uint8)).resize((tile, tile))
        x, y = (k % cols) * tile, (k // cols) * (tile + 18)
        sheet.paste(img, (x, y + 18))
        draw.text((x + 4, y + 3), label, fill=(0, 0, 0))
    return sheet
