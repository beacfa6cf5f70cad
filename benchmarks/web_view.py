"""Web view benchmark: one JSON line with the GLSL triplane render's frames per second in headless
Chromium's software GL (SwiftShader, on this machine's CPU cores), the Python renderer's for the same
frames, and the GLSL frames' PSNR against the Python renderer's with the planes as float32 textures (the
reference) and as float16.

Run: .venv/bin/python -m benchmarks.web_view  (synthetic avatar; needs `make tools`: chromium, three,
puppeteer-core)
"""
from __future__ import annotations

import json
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from avatar import camera
from avatar.asset import save_avatar
from avatar.render import Renderer
from avatar.synthetic import synthetic_avatar
from grpc_server.commands.view import WEB, build_site, node_modules, serve

CAMERAS = ((0.0, 0.0), (30.0, 10.0), (-40.0, -5.0))
EXPRESSIONS = ({}, {"jawOpen": 0.6, "mouthSmileLeft": 0.5, "mouthSmileRight": 0.5, "eyeBlinkLeft": 0.8})
PSNR_SIZE = 128
FPS_SIZES = (128, 256)
FPS_FRAMES = 5


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


def _frame(renderer: Renderer, yaw, pitch, expression, size, background) -> np.ndarray:
    result = renderer.render(camera.camera_vector(yaw_deg=yaw, pitch_deg=pitch), expression=expression or None,
                             size=size, neural_resolution=size)
    return (result.over(background) * 255 + 0.5).astype(np.uint8)


def main() -> None:
    avatar = synthetic_avatar(seed=1)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        save_avatar(avatar, tmp / "store")
        site = build_site(avatar.avatar_id, tmp / "store", tmp / "site", texture_size=512)
        server = serve(site, 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        plan, shots = [], {"float32": [], "float16": []}
        for precision, shot_list in shots.items():
            plan.append({"op": "open", "url": url, "size": PSNR_SIZE, "half": precision == "float16"})
            for e, expression in enumerate(EXPRESSIONS):
                plan.append({"op": "weights", "weights": {n: expression.get(n, 0.0) for n in EXPRESSIONS[1]}})
                for yaw, pitch in CAMERAS:
                    shot_list.append((tmp / f"{precision}_e{e}_{yaw:g}_{pitch:g}.png", yaw, pitch, expression))
                    plan += [{"op": "orbit", "orbit": {"yaw": yaw, "pitch": pitch, "roll": 0.0}},
                             {"op": "shot", "canvas": "triplane", "file": str(shot_list[-1][0])}]
        fps_steps = {}
        for size in FPS_SIZES:
            plan += [{"op": "open", "url": url, "size": size}, {"op": "fps", "frames": FPS_FRAMES}]
            fps_steps[size] = len(plan) - 1
        (tmp / "plan.json").write_text(json.dumps(plan))
        proc = subprocess.run(["node", str(WEB / "headless.mjs"), str(tmp / "plan.json"), str(node_modules())],
                              capture_output=True, text=True, timeout=1800, check=True)
        server.shutdown()
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        background = tuple(out["results"][0]["background"])

        renderer = Renderer(avatar)
        psnr = {precision: [_psnr(np.asarray(Image.open(path).convert("RGB")),
                                  _frame(renderer, yaw, pitch, expression, PSNR_SIZE, background))
                            for path, yaw, pitch, expression in shot_list] for precision, shot_list in shots.items()}
        python_fps = {}
        for size in FPS_SIZES:
            _frame(renderer, 0.0, 0.0, {}, size, background)
            start = time.perf_counter()
            for _ in range(FPS_FRAMES):
                _frame(renderer, 0.0, 0.0, {}, size, background)
            python_fps[size] = FPS_FRAMES / (time.perf_counter() - start)

    print(json.dumps({
        "glsl_fps_swiftshader": {str(s): round(out["results"][fps_steps[s]], 2) for s in FPS_SIZES},
        "python_kernel_fps": {str(s): round(python_fps[s], 2) for s in FPS_SIZES},
        "glsl_vs_python_psnr_db": {precision: {"min": round(min(v), 2), "mean": round(float(np.mean(v)), 2)}
                                   for precision, v in psnr.items()},
        "psnr_frames": {"cameras": len(CAMERAS), "expressions": len(EXPRESSIONS), "size": PSNR_SIZE},
        "march": renderer.march,
        "console_messages": len(out["console"]),
        "note": "fps: frames of one size rendered back to back, pose unchanged; software GL shares the CPU",
    }))


if __name__ == "__main__":
    main()
