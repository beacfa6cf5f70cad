"""`avatarforge view AVATAR_ID`: a local web page with the GLB and the GLSL triplane render side by side.

The avatar is exported (GLB, triplane, and the animation when --anim is given) into a site directory
beside the page (engine_bindings/web) and the three.js modules it imports (from npm, installed by
`make tools`; no CDN), then served on 127.0.0.1. The site is static files only: any static server can
serve it, and a loaded page needs nothing more from the server.
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import webbrowser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "engine_bindings" / "web"
PAGE_FILES = ("index.html", "view.css", "app.js", "triplane.js", "shaders/triplane.glsl", "shaders/front_plane.glsl")
# The three.js files the page imports (and theirs), relative to the npm package.
THREE_FILES = ("LICENSE", "build/three.module.js", "build/three.core.js", "examples/jsm/loaders/GLTFLoader.js",
               "examples/jsm/loaders/EXRLoader.js", "examples/jsm/controls/OrbitControls.js",
               "examples/jsm/utils/BufferGeometryUtils.js", "examples/jsm/utils/SkeletonUtils.js",
               "examples/jsm/libs/fflate.module.js")


def register(subparsers) -> None:
    parser = subparsers.add_parser("view", help="show an avatar in a local web page (GLB + GLSL triplane render)",
                                   description=__doc__)
    parser.add_argument("avatar_id", help="the avatar's 64-hex id")
    parser.add_argument("--store", type=Path, default=None, help="avatar store directory (default: the local store)")
    parser.add_argument("--anim", type=Path, default=None, metavar="FILE",
                        help="animation to export with it (Live Link CSV, ARKit JSON, FaceVerse .npy, video clip)")
    parser.add_argument("-o", "--out", type=Path, default=None,
                        help="site directory to write (default: a temporary directory removed on exit)")
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0: any free port; default 8765)")
    parser.add_argument("--texture-size", type=int, default=1024, help="GLB texture size (power of two, 256..4096)")
    parser.add_argument("--no-static", action="store_true",
                        help="leave the static parts (hair, ears, neck) out of the GLB")
    parser.add_argument("--no-serve", action="store_true", help="write the site and exit")
    parser.add_argument("--open", action="store_true", help="open the page in the default browser")
    parser.set_defaults(func=run)


def node_modules() -> Path:
    """Where npm installed three (AVATARFORGE_NODE_MODULES, else the repository's .venv/node)."""
    return Path(os.environ.get("AVATARFORGE_NODE_MODULES", ROOT / ".venv" / "node" / "node_modules"))


def build_site(avatar_id: str, store: Path, out: Path, animation: Path | None = None, texture_size: int = 1024,
               include_static: bool = True) -> Path:
    """Write the page, three.js and the avatar's exports into `out`; returns `out`.

    Layout: index.html, view.css, app.js, triplane.js, shaders/*.glsl, vendor/three/..., and
    avatar/ (avatar.glb, triplane/, animation/ when given, view.json naming them)."""
    from avatar.asset import load_avatar
    from exporter.api import export
    from exporter.glb import root_name
    from exporter.options import ExportOptions

    three = node_modules() / "three"
    missing = [f for f in THREE_FILES if not (three / f).is_file()]
    if missing:
        raise ValueError(f"three.js is not installed in {three.parent} (missing {missing[0]}); run `make tools`")
    directory = store / avatar_id
    if not directory.is_dir():
        raise ValueError(f"avatar {avatar_id} is not in the store {store}")
    avatar = load_avatar(directory)
    formats = ["glb", "triplane"] + (["animation"] if animation else [])
    sources = [(animation.name, animation.read_bytes())] if animation else None
    options = ExportOptions(texture_size=texture_size, include_static=include_static)
    written = export(avatar, formats, options, sources, out / "avatar",
                     lambda stage, fraction, message: print(f"[{stage} {fraction * 100:3.0f}%] {message}",
                                                            file=sys.stderr, flush=True))
    for name in PAGE_FILES:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(WEB / name, out / name)
    for name in THREE_FILES:
        target = out / "vendor" / "three" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(three / name, target)
    config = {"name": root_name(avatar), "avatar_id": avatar.avatar_id, "glb": "avatar/avatar.glb",
              "triplane": "avatar/triplane/",
              "livelink": "avatar/animation/livelink.csv" if "animation/livelink.csv" in written else None}
    (out / "avatar" / "view.json").write_text(json.dumps(config, indent=1) + "\n")
    return out


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def serve(site: Path, port: int) -> ThreadingHTTPServer:
    """A static file server for `site` bound to 127.0.0.1 (port 0: any free port), not yet started."""
    return ThreadingHTTPServer(("127.0.0.1", port), functools.partial(_QuietHandler, directory=str(site)))


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run(args) -> int:
    from grpc_server.paths import default_store

    if not re.fullmatch(r"[0-9a-f]{64}", args.avatar_id):
        raise ValueError(f"{args.avatar_id!r} is not an avatar id (64 lowercase hex digits)")
    if args.no_serve and args.out is None:
        raise ValueError("--no-serve writes the site for another server: name its directory with -o DIR")
    temporary = None
    out = args.out
    if out is None:
        temporary = tempfile.TemporaryDirectory(prefix="avatarforge-view-")
        out = Path(temporary.name)
    try:
        build_site(args.avatar_id, args.store or default_store(), out, args.anim, args.texture_size,
                   not args.no_static)
        if args.no_serve:
            print(out)
            return 0
        server = serve(out, args.port)
    except BaseException:
        if temporary is not None:
            temporary.cleanup()
        raise
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    print(url, flush=True)
    print(f"serving {out} (Ctrl-C stops)", file=sys.stderr, flush=True)
    if args.open:
        webbrowser.open(url)
    signal.signal(signal.SIGTERM, _interrupt)  # a terminated server still removes its temporary site
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if temporary is not None:
            temporary.cleanup()
    return 0
