"""`avatarforge demo [-o DIR] [--portraits DIR]`: the whole path on portraits, with pictures to look at.

Without --portraits it runs on the public-domain astronaut shipped with scikit-image and writes
astronaut.png, turntable.gif (-35 to +35 degrees yaw), expressions.png (a labelled expression sheet)
and contact.png. With --portraits DIR it does the same for every image in DIR, each file prefixed
with the image's name. The contact sheet shows the avatar from the front, +-45 degrees, 90 degrees,
the back and above, with a neutral face, jawOpen, a smile and a blink, next to the aligned portrait
and the avatar re-rendered from the portrait's camera with the portrait's expression; when Blender is
installed, a last row shows the exported GLB as Blender renders it, lit.
"""
from __future__ import annotations

import argparse
import io
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from grpc_server.commands._common import UsageError, progress_bar

TURNTABLE_FRAMES = 24
TURNTABLE_YAW = 35.0
SHEET_TILE = 192
PORTRAIT_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
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
# Contact sheet: rows of expressions, columns of views (label -> yaw, pitch in degrees; pitch > 0 looks down).
CONTACT_EXPRESSIONS: dict[str, dict[str, float]] = {
    "neutral": {},
    "jawOpen": {"jawOpen": 1.0},
    "smile": {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0},
    "blink": {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0},
}
CONTACT_VIEWS: dict[str, tuple[float, float]] = {
    "front": (0.0, 0.0), "+45": (45.0, 0.0), "-45": (-45.0, 0.0), "90": (90.0, 0.0), "back": (180.0, 0.0),
    "top": (0.0, 70.0),
}
CONTACT_BACKGROUND = (0.42, 0.47, 0.53)  # slate: neither skin, hair nor black, so holes and caps show
LABEL_BAND = 22
ROW_LABEL_WIDTH = 84


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="portraits -> avatars, turntable GIF, expression and contact sheets",
                                   description=__doc__)
    parser.add_argument("-o", "--out", type=Path, default=Path("demo_out"), help="output directory (default demo_out)")
    parser.add_argument("--size", type=int, default=256, help="frame size of the GIF and the sheets' tiles")
    parser.add_argument("--portraits", type=Path, default=None, metavar="DIR",
                        help="a folder of portraits (default: the scikit-image astronaut only)")
    parser.add_argument("--blender", action=argparse.BooleanOptionalAction, default=True,
                        help="add the GLB rendered in Blender to the contact sheet when Blender is installed "
                             "(default on; --no-blender skips it)")
    parser.set_defaults(func=run)


def astronaut_png() -> bytes:
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, format="PNG")
    return buf.getvalue()


def _portraits(folder: Path | None) -> list[tuple[str, bytes]]:
    """(output prefix, file bytes) per portrait: the astronaut with no prefix, or the folder's images."""
    if folder is None:
        return [("", astronaut_png())]
    if not folder.is_dir():
        raise UsageError(f"--portraits {folder}: no such directory")
    found = [p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in PORTRAIT_SUFFIXES]
    if not found:
        raise UsageError(f"--portraits {folder}: no images ({', '.join(PORTRAIT_SUFFIXES)}) in it")
    return [(f"{p.stem}_", p.read_bytes()) for p in found]


def run(args) -> int:
    from avatar.generators import get_generator
    from grpc_server.store import AvatarStore

    out: Path = args.out
    start = time.perf_counter()
    portraits = _portraits(args.portraits)
    out.mkdir(parents=True, exist_ok=True)
    generator = get_generator("projective")
    store = AvatarStore(out / "store")
    blender_note = _blender_note(args.blender)
    written = []
    for prefix, data in portraits:
        name = prefix.rstrip("_") or "astronaut"
        if not prefix:
            (out / "astronaut.png").write_bytes(data)
        try:
            with progress_bar(f"create {name}") as update:
                avatar = generator.create(data, progress=update, display_name=name)
        except ValueError as e:  # a portrait the generator refuses: say why, go on with the others
            print(f"avatarforge demo: {name} skipped: {e}", file=sys.stderr)
            continue
        store.create(avatar)
        written.append((name, avatar.avatar_id, *_pictures(avatar, out, prefix, args.size, blender_note)))
    if not written:
        raise UsageError("no avatar could be made from the portraits")
    for name, avatar_id, gif, sheet, contact in written:
        print(f"{name}: avatar {avatar_id} (store {out / 'store'})")
        print(f"  turntable   {gif}")
        print(f"  expressions {sheet}")
        print(f"  contact     {contact}")
    if blender_note:
        print(f"blender     {blender_note}")
    print(f"seconds     {time.perf_counter() - start:.1f}")
    return 0


def _pictures(avatar, out: Path, prefix: str, size: int, blender_note: str) -> tuple[Path, Path, Path]:
    """Write one avatar's turntable GIF, expression sheet and contact sheet; their paths."""
    from avatar.render import Renderer

    name = avatar.display_name
    renderer = Renderer(avatar)
    gif = out / f"{prefix}turntable.gif"
    frames = _turntable(renderer, size, name)
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=60, loop=0)
    sheet = out / f"{prefix}expressions.png"
    _expression_sheet(renderer, size, name).save(sheet)
    contact = out / f"{prefix}contact.png"
    glb = blender_note or _blender_views(avatar, size, name)
    _contact_sheet(avatar, renderer, size, name, glb).save(contact)
    return gif, sheet, contact


def _image(result, background=(1.0, 1.0, 1.0)) -> np.ndarray:
    return (result.over(background) * 255 + 0.5).astype(np.uint8)


def _turntable(renderer, size: int, name: str) -> list[Image.Image]:
    from avatar import camera

    yaws = np.concatenate([np.linspace(-TURNTABLE_YAW, TURNTABLE_YAW, TURNTABLE_FRAMES),
                           np.linspace(TURNTABLE_YAW, -TURNTABLE_YAW, TURNTABLE_FRAMES)[1:-1]])
    return [Image.fromarray(_image(renderer.render(camera.camera_vector(yaw_deg=float(yaw)), size=size)))
            for yaw in tqdm(yaws, desc=f"turntable {name}", unit="frame")]


def _expression_sheet(renderer, size: int, name: str) -> Image.Image:
    from avatar import camera

    cols = 4
    rows = -(-len(EXPRESSIONS) // cols)
    tile = SHEET_TILE
    sheet = Image.new("RGB", (cols * tile, rows * (tile + 18)), "white")
    draw = ImageDraw.Draw(sheet)
    # Closer than the default framing: expressions are about the face, not the hair.
    cam = camera.camera_vector(yaw_deg=-12.0, pitch_deg=-4.0, radius=2.1)
    for k, (label, weights) in enumerate(tqdm(EXPRESSIONS.items(), desc=f"expressions {name}", unit="tile")):
        result = renderer.render(cam, weights or None, size=size)
        img = Image.fromarray(_image(result)).resize((tile, tile))
        x, y = (k % cols) * tile, (k // cols) * (tile + 18)
        sheet.paste(img, (x, y + 18))
        draw.text((x + 4, y + 3), label, fill=(0, 0, 0))
    return sheet


def _views():
    from avatar import camera

    return {label: camera.camera_vector(yaw_deg=yaw, pitch_deg=pitch) for label, (yaw, pitch) in CONTACT_VIEWS.items()}


def _blender_note(wanted: bool) -> str:
    """Why the contact sheets have no Blender row ("" when they will have one)."""
    if not wanted:
        return "GLB row skipped (--no-blender)"
    try:
        from exporter.blender_render import find_blender
    except ImportError as e:
        return f"GLB row skipped: the Blender renderer is unavailable ({e})"
    if find_blender() is None:
        return "GLB row skipped: Blender is not installed (make tools installs it)"
    return ""


def _blender_views(avatar, size: int, name: str) -> list[np.ndarray] | str:
    """The exported GLB rendered lit by Blender at the contact sheet's views (RGB uint8), or why not."""
    from exporter.blender_render import render_glb
    from exporter.glb import build_glb

    try:
        with progress_bar(f"glb {name}") as update, tempfile.TemporaryDirectory(prefix="avatarforge-demo-") as tmp:
            path = Path(tmp) / "avatar.glb"
            path.write_bytes(build_glb(avatar, progress=update))
            update("blender", 0.95, "rendering in Blender")
            images = render_glb(path, list(_views().values()), mode="lit", size=size)
    except Exception as e:  # noqa: BLE001 - the sheet is still worth having without this row
        return f"GLB row failed: {type(e).__name__}: {e}"
    bg = np.asarray(CONTACT_BACKGROUND, np.float32) * 255
    return [np.clip(img[..., :3] * (img[..., 3:] / 255.0) + bg * (1 - img[..., 3:] / 255.0), 0, 255).astype(np.uint8)
            for img in images]


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    """`tile` with `text` in a black band above it."""
    band = np.zeros((LABEL_BAND, tile.shape[1], 3), np.uint8)
    cv2.putText(band, text, (4, LABEL_BAND - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([band, tile])


def _text_tile(size: int, lines: list[str]) -> np.ndarray:
    tile = np.full((size, size, 3), 40, np.uint8)
    for k, line in enumerate(lines):
        cv2.putText(tile, line, (6, 20 + 18 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (230, 230, 230), 1, cv2.LINE_AA)
    return tile


def _wrap(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width` characters (long words, e.g. paths, are cut)."""
    return textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=False)


def _row(label: str, tiles: list[np.ndarray]) -> np.ndarray:
    size = tiles[0].shape[0]
    side = np.zeros((size, ROW_LABEL_WIDTH, 3), np.uint8)
    cv2.putText(side, label, (6, size // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([side, *tiles], axis=1)


def _contact_sheet(avatar, renderer, size: int, name: str, glb: list[np.ndarray] | str) -> Image.Image:
    """Rows: the CONTACT_EXPRESSIONS, then the GLB in Blender (`glb`: its views, or why there are none);
    columns: the aligned portrait (below it, the avatar from the portrait's camera with the portrait's
    expression, which should reproduce it), then the CONTACT_VIEWS."""
    bg = CONTACT_BACKGROUND
    views = _views()
    first_column = [cv2.resize(avatar.portrait, (size, size), interpolation=cv2.INTER_AREA),
                    _image(renderer.render(avatar.portrait_camera, avatar.portrait_expression,
                                           eye=avatar.portrait_eye, size=size), bg)]
    first_labels = ["aligned portrait", "its camera + expression"]
    rows = []
    jobs = [(e, v) for e in CONTACT_EXPRESSIONS for v in views]
    bar = tqdm(total=len(jobs), desc=f"contact {name}", unit="tile")
    for r, (expr, weights) in enumerate(CONTACT_EXPRESSIONS.items()):
        tiles = [first_column[r] if r < len(first_column) else np.zeros((size, size, 3), np.uint8)]
        for cam in views.values():
            tiles.append(_image(renderer.render(cam, weights or None, size=size), bg))
            bar.update()
        rows.append(_row(expr, tiles))
    bar.close()
    if isinstance(glb, str):
        rows.append(_row("GLB lit", [_text_tile(size, _wrap(glb, max(10, size // 8)))] +
                         [np.zeros((size, size, 3), np.uint8)] * len(views)))
    else:
        rows.append(_row("GLB lit", [_text_tile(size, ["the exported GLB", "in Blender: Eevee,", "one sun"]), *glb]))
    labels = ["portrait / re-render", *views]
    header = np.concatenate([np.zeros((LABEL_BAND, ROW_LABEL_WIDTH, 3), np.uint8),
                             *[_label(np.zeros((0, size, 3), np.uint8), text) for text in labels]], axis=1)
    title = np.zeros((LABEL_BAND, header.shape[1], 3), np.uint8)
    cv2.putText(title, f"{name}: {avatar.generator} generator v{avatar.generator_version}", (4, LABEL_BAND - 7),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1, cv2.LINE_AA)
    sheet = np.concatenate([title, header, *rows])
    # The first column holds two different pictures: name each in its own tile.
    for r, text in enumerate(first_labels):
        y = 2 * LABEL_BAND + (r + 1) * size - 8
        cv2.putText(sheet, text, (ROW_LABEL_WIDTH + 4, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1,
                    cv2.LINE_AA)
    return Image.fromarray(sheet)
