"""`avatarforge view` in a real browser: Debian's headless Chromium (software GL) drives the page.

The GLSL triplane render is compared with the Python renderer's frames (three cameras, two
expressions, PSNR on the whole frame), and so is the Unity HLSL port's march, run in the same page
through SPIR-V and spirv-cross; a morph slider moves the GLB where the face is and nowhere
else; the page logs no warning or error; with the server stopped the page still renders (static
files only, nothing fetched after load).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avatar.expressions import LIVELINK_HEADER, LIVELINK_NAMES
from grpc_server.commands.view import WEB, node_modules

SIZE = 96  # small frames: software GL marches every pixel on the CPU
CAMERAS = ({"yaw": 0.0, "pitch": 0.0}, {"yaw": 30.0, "pitch": 10.0}, {"yaw": -40.0, "pitch": -5.0})
EXPRESSIONS = ({}, {"jawOpen": 0.6, "mouthSmileLeft": 0.5, "mouthSmileRight": 0.5, "eyeBlinkLeft": 0.8})
SLIDER = "jawOpen"


def _require_browser() -> None:
    missing = [what for what, ok in (("chromium", shutil.which("chromium")), ("node", shutil.which("node")),
                                     ("puppeteer-core", (node_modules() / "puppeteer-core").is_dir()),
                                     ("three", (node_modules() / "three").is_dir()),
                                     ("glslangValidator", shutil.which("glslangValidator")),
                                     ("spirv-cross", shutil.which("spirv-cross"))) if not ok]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (make tools installs them)")


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


def _png(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


# The HLSL port runs in the browser too: glslang compiles its passes to SPIR-V, spirv-cross writes them
# back as GLSL ES, and a prologue fills the port's globals from the reference shader's uniforms, so the
# page's host drives it unchanged (see triplane.js `port`).
PORT_UNIFORMS = """uniform ivec2 uPlaneSize;
uniform ivec2 uAxes[3];
uniform int uDensityGroups[8];
uniform int uDensityGroupCount;
uniform int uDensityHidden;
uniform float uDensityBias;
uniform int uColourGroups[8];
uniform int uColourGroupCount;
uniform int uColourHidden;
uniform vec3 uColourBias;
uniform mat3 uCamRot;
uniform vec3 uCamPos;
uniform vec4 uIntrinsics;
uniform vec2 uNearFar;
uniform ivec2 uImageSize;
uniform vec3 uBackground;
"""
PORT_FILL = {
    "_Axes": "for (int i = 0; i < 3; ++i) {g}._Axes[i] = ivec4(uAxes[i], 0, 0);",
    "_DensityGroups": "for (int i = 0; i < 8; ++i) {g}._DensityGroups[i] = float(uDensityGroups[i]);",
    "_ColourGroups": "for (int i = 0; i < 8; ++i) {g}._ColourGroups[i] = float(uColourGroups[i]);",
    # the HLSL's cam2world rows are the GLSL matrix's columns
    "_CamToWorld": ("{g}._CamToWorld = mat4(vec4(uCamRot[0][0], uCamRot[1][0], uCamRot[2][0], uCamPos.x), "
                    "vec4(uCamRot[0][1], uCamRot[1][1], uCamRot[2][1], uCamPos.y), "
                    "vec4(uCamRot[0][2], uCamRot[1][2], uCamRot[2][2], uCamPos.z), vec4(0.0, 0.0, 0.0, 1.0));"),
}
PORT_SAMPLERS = {"Planes": "uPlanes", "Front": "uFront", "Fine": "uFine", "Coarse": "uCoarse",
                 "DensityField": "uDensityField", "ColourField": "uColourField", "Spans": "uSpans"}


def _hlsl_pass_as_webgl(tmp, define: str, entry: str) -> str:
    """One pass of the Unity HLSL port as a WebGL2 fragment shader reading the reference uniforms."""
    source = tmp / f"{entry}.hlsl"
    source.write_text(f'#include "AvatarForgeTriplaneConfig.hlsl"\n#define {define}\n'
                      '#include "AvatarForgeTriplane.hlsl"\n')
    spirv = tmp / f"{entry}.spv"
    subprocess.run(["glslangValidator", "-S", "frag", "-D", "-V", "-e", entry, f"-I{UNITY_SHADERS}", str(source),
                    "-o", str(spirv)], check=True, capture_output=True)
    glsl = subprocess.run(["spirv-cross", "--es", "--version", "300", "--glsl-emit-ubo-as-plain-uniforms", str(spirv)],
                          check=True, capture_output=True, text=True).stdout
    fields = re.findall(r"\b(_\w+)(?:\[\d+\])?;", re.search(r"struct _Global\s*\{(.*?)\};", glsl, re.S).group(1))
    instance = re.search(r"uniform _Global (\w+);", glsl).group(1)
    fill = "\n    ".join(PORT_FILL.get(f, f"{{g}}.{f} = u{f[1:]};").format(g=instance) for f in fields)
    glsl = glsl.replace("#version 300 es\n", "").replace("precision mediump float;", "precision highp float;")
    glsl = glsl.replace(f"uniform _Global {instance};",
                        f"_Global {instance};\n{PORT_UNIFORMS}\nvoid fillGlobals() {{\n    {fill}\n}}\n")
    glsl = re.sub(r"SPIRV_Cross_Combined_(\w+?)SPIRV_Cross_DummySampler", lambda m: PORT_SAMPLERS[m.group(1)], glsl)
    return glsl.replace("void main()\n{\n", "void main()\n{\n    fillGlobals();\n", 1)


@pytest.fixture(scope="module")
def avatar():
    from avatar.synthetic import synthetic_avatar

    return synthetic_avatar(seed=1)


@pytest.fixture(scope="module")
def session(tmp_path_factory, avatar):
    """Runs the whole browser session once: the view server, then the plan below. Returns what the
    tests check: the driver's output, the screenshots and the avatar."""
    _require_browser()
    from avatar.asset import save_avatar

    tmp = tmp_path_factory.mktemp("view")
    save_avatar(avatar, tmp / "store")
    # A Live Link recording with the jaw open in every frame: exported into the GLB and beside it.
    rows = [",".join(LIVELINK_HEADER)]
    for frame in range(12):
        values = [0.5 + 0.04 * frame if name == "JawOpen" else 0.0 for name in LIVELINK_NAMES]
        rows.append(",".join([f"00:00:00:{frame:02d}.000", "61"] + [f"{v:g}" for v in values] + ["0"] * 9))
    (tmp / "jaw.csv").write_text("\n".join(rows) + "\n")
    server = subprocess.Popen(
        [sys.executable, "-m", "grpc_server.cli", "view", avatar.avatar_id, "--store", str(tmp / "store"),
         "-o", str(tmp / "site"), "--port", "0", "--texture-size", "256", "--no-static",
         "--anim", str(tmp / "jaw.csv")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), server.stderr.read()
        plan = [{"op": "open", "url": url, "size": SIZE}]
        shots = {}
        for e, expression in enumerate(EXPRESSIONS):
            plan.append({"op": "weights", "weights": {name: expression.get(name, 0.0) for name in EXPRESSIONS[1]}})
            for c, orbit in enumerate(CAMERAS):
                shots[("triplane", e, c)] = str(tmp / f"triplane_e{e}_c{c}.png")
                plan += [{"op": "orbit", "orbit": {**orbit, "roll": 0.0}},
                         {"op": "shot", "canvas": "triplane", "file": shots[("triplane", e, c)]}]
        (tmp / "site" / "port").mkdir()
        for define, entry, name in (("PASS_SPAN", "SpanFrag", "span"), ("PASS_MARCH", "MarchFrag", "march")):
            (tmp / "site" / "port" / f"hlsl_{name}.glsl").write_text(_hlsl_pass_as_webgl(tmp, define, entry))
        plan.append({"op": "open", "url": url, "size": SIZE, "port": "port/hlsl_"})
        for e, expression in enumerate(EXPRESSIONS):
            plan.append({"op": "weights", "weights": {name: expression.get(name, 0.0) for name in EXPRESSIONS[1]}})
            for c in (0, 1):
                shots[("hlsl", e, c)] = str(tmp / f"hlsl_e{e}_c{c}.png")
                plan += [{"op": "orbit", "orbit": {**CAMERAS[c], "roll": 0.0}},
                         {"op": "shot", "canvas": "triplane", "file": shots[("hlsl", e, c)]}]
        plan.append({"op": "open", "url": url, "size": SIZE})
        plan.append({"op": "orbit", "orbit": {"yaw": 20.0, "pitch": 0.0, "roll": 0.0}})
        for name, value in (("glb_before", 0.0), ("glb_after", 1.0)):
            shots[name] = str(tmp / f"{name}.png")
            plan += [{"op": "slider", "name": SLIDER, "value": value},
                     {"op": "shot", "canvas": "glb", "file": shots[name]}]
        shots["triplane_jaw"] = str(tmp / "triplane_jaw.png")
        plan += [{"op": "shot", "canvas": "triplane", "file": shots["triplane_jaw"]},
                 {"op": "click", "selector": "#reset"}]
        # Playback: the exported CSV, then the GLB's own animation clip (the same recording).
        for source in ("csv", "glb"):
            for canvas in ("glb", "triplane"):
                shots[f"{canvas}_{source}"] = str(tmp / f"{canvas}_{source}.png")
            plan += [{"op": "click", "selector": f"#play-{source}"}, {"op": "ticks", "count": 2},
                     {"op": "click", "selector": "#stop"},
                     {"op": "shot", "canvas": "glb", "file": shots[f"glb_{source}"]},
                     {"op": "shot", "canvas": "triplane", "file": shots[f"triplane_{source}"]},
                     {"op": "click", "selector": "#reset"}]
        # The server goes away; the loaded page keeps working from what it has.
        plan += [{"op": "mark"}, {"op": "pause", "message": "stop the server"},
                 {"op": "slider", "name": SLIDER, "value": 0.0},
                 {"op": "orbit", "orbit": {"yaw": -20.0, "pitch": 5.0, "roll": 0.0}}]
        for canvas in ("glb", "triplane"):
            shots[f"{canvas}_offline"] = str(tmp / f"{canvas}_offline.png")
            plan.append({"op": "shot", "canvas": canvas, "file": shots[f"{canvas}_offline"]})
        (tmp / "plan.json").write_text(json.dumps(plan))
        driver = subprocess.Popen(["node", str(WEB / "headless.mjs"), str(tmp / "plan.json"), str(node_modules())],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        paused = driver.stdout.readline()
        assert json.loads(paused or "{}").get("paused") == "stop the server", driver.stderr.read()
        server.terminate()
        server.wait(timeout=30)
        driver.stdin.write("\n")
        driver.stdin.flush()
        output, errors = driver.communicate(timeout=300)
        assert driver.returncode == 0, errors
        result = json.loads(output.strip().splitlines()[-1])
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    return {"result": result, "shots": shots, "avatar": avatar, "server_code": server.returncode,
            "site": tmp / "site"}


def test_glsl_render_matches_the_python_renderer(session):
    from avatar import camera
    from avatar.render import Renderer

    renderer = Renderer(session["avatar"])
    background = tuple(session["result"]["results"][0]["background"])
    worst = []
    for e, expression in enumerate(EXPRESSIONS):
        for c, orbit in enumerate(CAMERAS):
            cam = camera.camera_vector(yaw_deg=orbit["yaw"], pitch_deg=orbit["pitch"])
            frame = renderer.render(cam, expression=expression or None, size=SIZE, neural_resolution=SIZE)
            python = (frame.over(background) * 255 + 0.5).astype(np.uint8)
            glsl = _png(session["shots"][("triplane", e, c)])
            assert glsl.shape == python.shape
            # The head covers a good part of the frame, so the figure is not carried by the background.
            assert frame.alpha.numpy().mean() > 0.2
            worst.append((_psnr(glsl, python), e, c))
    assert min(worst)[0] >= 30.0, sorted(worst)[:3]
    # The expression reaches the triplane render through the front plane: the frames differ.
    for c in range(len(CAMERAS)):
        neutral, posed = (_png(session["shots"][("triplane", e, c)]) for e in range(2))
        assert _psnr(neutral, posed) < 40.0


def test_hlsl_port_run_in_the_browser_matches_the_python_renderer(session):
    from avatar import camera
    from avatar.render import Renderer

    renderer = Renderer(session["avatar"])
    background = tuple(session["result"]["results"][0]["background"])
    figures = []
    for key, path in session["shots"].items():
        if not (isinstance(key, tuple) and key[0] == "hlsl"):
            continue
        _, e, c = key
        cam = camera.camera_vector(yaw_deg=CAMERAS[c]["yaw"], pitch_deg=CAMERAS[c]["pitch"])
        frame = renderer.render(cam, expression=EXPRESSIONS[e] or None, size=SIZE, neural_resolution=SIZE)
        python = (frame.over(background) * 255 + 0.5).astype(np.uint8)
        # The port counts rows from the top as D3D does; GL's gl_FragCoord counts from the bottom, so in
        # WebGL its image arrives upside down.
        figures.append(_psnr(_png(path)[::-1], python))
    assert len(figures) == 4 and min(figures) >= 30.0, figures


def test_morph_slider_moves_the_glb_where_the_face_is_and_only_there(session):
    from avatar import camera
    from avatar.expressions import index_of
    from avatar.head_registry import head_for_avatar

    before, after = _png(session["shots"]["glb_before"]), _png(session["shots"]["glb_after"])
    changed = np.abs(before.astype(int) - after.astype(int)).max(axis=-1) > 2
    assert changed.sum() >= 30, "the slider did not move the GLB"
    head = head_for_avatar(session["avatar"])
    k = index_of(SLIDER)
    moving = np.flatnonzero(np.abs(head.expression_basis[k]).sum(axis=1) > 0)
    weights = np.zeros(len(head.expression_basis), np.float32)
    weights[k] = 1.0
    points = np.concatenate([head.posed(None, session["avatar"].identity)[moving],
                             head.posed(weights, session["avatar"].identity)[moving]])
    uv, _ = camera.project(points, camera.camera_vector(yaw_deg=20.0))
    cols, rows = uv[:, 0] * SIZE, uv[:, 1] * SIZE
    margin = 2
    rr, cc = np.nonzero(changed)
    inside = (cc >= cols.min() - margin) & (cc <= cols.max() + margin) & (rr >= rows.min() - margin) & \
        (rr <= rows.max() + margin)
    assert inside.all(), f"{(~inside).sum()} changed pixels lie outside the moving part of the face"
    # and the moving part is the lower face, not the whole head
    assert rows.min() > SIZE * 0.3


def test_animation_playback_moves_both_views(session):
    shots = session["shots"]
    neutral_glb = _png(shots["glb_before"])
    for source in ("csv", "glb"):
        # The recording opens the jaw in every frame; the views show it (same camera as glb_before).
        glb = _png(shots[f"glb_{source}"])
        assert _psnr(glb, neutral_glb) < 40.0, source
        assert _psnr(glb, _png(shots["glb_after"])) > _psnr(glb, neutral_glb) - 1.0, source
        assert _psnr(_png(shots[f"triplane_{source}"]), _png(shots["triplane_jaw"])) > 25.0, source


def test_page_is_clean_and_works_without_the_server(session):
    result = session["result"]
    assert result["console"] == [], result["console"]
    assert result["failed"] == [], result["failed"]
    assert session["server_code"] is not None
    assert result["requestsAfterMark"] == [], "the page fetched files after the server stopped"
    # Renders made with the server gone show the new state: slider back at 0 from another camera.
    assert _psnr(_png(session["shots"]["glb_offline"]), _png(session["shots"]["glb_before"])) < 40.0
    offline = _png(session["shots"]["triplane_offline"])
    assert offline.std() > 5 and _psnr(offline, _png(session["shots"]["triplane_jaw"])) < 40.0
    # The site is static files only: the page, three.js from npm, the exports; no CDN reference.
    for name in ("index.html", "app.js", "triplane.js"):
        assert "https://" not in (session["site"] / name).read_text()
    assert (session["site"] / "vendor" / "three" / "build" / "three.module.js").is_file()


# --- the shader ports: every entry point compiles (glslang: GLSL ES 3.00, and its HLSL front end) -------

MARCH_DEFINES = {"GROUPS": "8", "MAX_GROUPS": "8", "FINE_RES": "128", "COARSE_RES": "64", "SAMPLES_PER_ROUND": "8",
                 "TRANSMITTANCE_EPS": "0.001", "WEIGHT_EPS": "0.001", "REFINE_OPTICAL": "0.25",
                 "REFINE_BISECTIONS": "3", "DENSITY_SHIFT": "1.0", "SIGMOID_WIDEN": "0.001"}
UNITY_SHADERS = WEB.parent / "unity" / "com.avatarforge.client" / "Shaders"
UNREAL_SHADERS = WEB.parent / "unreal" / "AvatarForge" / "Shaders" / "Private"


def _glslang(tmp_path, name: str, source: str, stage: str, *args: str) -> None:
    path = tmp_path / name
    path.write_text(source)
    spirv = tmp_path / "out.spv"
    spirv.unlink(missing_ok=True)
    output = ["-o", str(spirv)] if "-V" in args else []
    proc = subprocess.run(["glslangValidator", "-S", stage, *args, str(path), *output], capture_output=True, text=True)
    # A missing entry point is only a warning for glslang: the SPIR-V must exist too.
    assert proc.returncode == 0 and (not output or spirv.is_file()), \
        f"{name} ({stage} {' '.join(args)}): status {proc.returncode}\n{proc.stdout}{proc.stderr}"


def test_shader_ports_compile(tmp_path):
    if shutil.which("glslangValidator") is None:
        pytest.skip("glslangValidator not installed (make tools installs glslang-tools)")
    defines = "".join(f"#define {k} {v}\n" for k, v in MARCH_DEFINES.items())
    march = (WEB / "shaders" / "triplane.glsl").read_text()
    front = (WEB / "shaders" / "front_plane.glsl").read_text()
    for stage_pass in ("PASS_SPAN", "PASS_MARCH"):
        _glslang(tmp_path, f"{stage_pass}.frag", f"#version 300 es\n{defines}#define {stage_pass}\n{march}", "frag")
    for part in ("COPY", "MESH"):
        for stage, define in (("vert", "VERTEX"), ("frag", "FRAGMENT")):
            source = f"#version 300 es\n{defines}#define {define}\n#define {part}\n{front}"
            _glslang(tmp_path, f"{part}.{stage}", source, stage)
    unity = f"{defines}#define FRONT_ROW0_AT_TOP 1\n#define FRONT_REVERSED_Z 1\n"
    for define, header, entries in (
            ("PASS_SPAN", "AvatarForgeTriplane.hlsl", (("frag", "SpanFrag"), ("vert", "FullscreenVert"))),
            ("PASS_MARCH", "AvatarForgeTriplane.hlsl", (("frag", "MarchFrag"),)),
            ("COPY", "AvatarForgeFrontPlane.hlsl", (("frag", "CopyFrag"),)),
            ("MESH", "AvatarForgeFrontPlane.hlsl", (("vert", "MeshVert"), ("frag", "MeshFrag")))):
        for stage, entry in entries:
            _glslang(tmp_path, f"unity_{entry}.hlsl", f'{unity}#define {define}\n#include "{header}"\n', stage,
                     "-D", "-V", "-e", entry, f"-I{UNITY_SHADERS}")
    # Unreal's Platform.ush is not here: a stand-in, since the ports use plain HLSL only.
    (tmp_path / "Engine" / "Public").mkdir(parents=True)
    (tmp_path / "Engine" / "Public" / "Platform.ush").write_text("\n")
    usf = (UNREAL_SHADERS / "AvatarForgeTriplane.usf").read_text().replace('"/Engine/', '"Engine/')
    for permutation, stage, entry in ((0, "frag", "MainSpanPS"), (1, "frag", "MainMarchPS"), (2, "frag", "MainCopyPS"),
                                      (3, "vert", "MainMeshVS"), (3, "frag", "MainMeshPS")):
        _glslang(tmp_path, f"unreal_{entry}.hlsl", usf, stage, "-D", "-V", "-e", entry,
                 f"-DPERMUTATION_PASS={permutation}", f"-I{UNREAL_SHADERS}", f"-I{tmp_path}")


def test_exported_occupancy_plus_the_morphed_mesh_is_the_renderers_grid(avatar):
    """The contract triplane.js implements: the exported grids plus, per expression, the cells of every
    vertex and centre of the triangles a morph target moves give the renderer's grids for that frame."""
    import torch

    from avatar.expressions import to_expression
    from avatar.occupancy import OccupancyGrid
    from avatar.render import Renderer
    from exporter.triplane import export_triplane

    files = export_triplane(avatar)
    entry = json.loads(files["triplane/triplane.json"])["occupancy"]
    bits = np.frombuffer(files[entry["file"]], np.uint8)
    exported = {}
    for grid in entry["grids"]:
        r = grid["resolution"]
        cells = np.unpackbits(bits[grid["offset"]:grid["offset"] + grid["bytes"]], bitorder="little")[:r ** 3]
        exported[grid["name"]] = OccupancyGrid(torch.from_numpy(cells.astype(bool).reshape(r, r, r)))
    renderer = Renderer(avatar)
    fine, coarse = renderer.occupancy
    head = renderer.head
    morphed = np.abs(head.expression_basis).sum(axis=(0, 2)) > 0
    faces = head.faces[morphed[head.faces].any(axis=1)]
    for expression in EXPRESSIONS:
        weights = to_expression(expression or None)
        posed = torch.from_numpy(head.posed(weights, avatar.identity))
        points = torch.cat([posed[np.unique(faces)], posed[faces].mean(dim=1)])
        moving = renderer._moving_points(weights, None)
        for name, grid in (("fine", fine), ("coarse", coarse)):
            assert torch.equal(exported[name].with_points(points), grid.with_points(moving)), (name, expression)


def test_view_of_an_unknown_avatar_is_a_sentence(tmp_path, capsys):
    from grpc_server.cli import main

    for argv, sentence in (
            (["ab" * 32, "--store", str(tmp_path), "-o", str(tmp_path / "site"), "--no-serve"],
             f"avatar {'ab' * 32} is not in the store {tmp_path}"),
            (["../etc", "--store", str(tmp_path), "-o", str(tmp_path / "site")],
             "'../etc' is not an avatar id (64 lowercase hex digits)")):
        assert main(["view", *argv]) == 1
        assert capsys.readouterr().err.strip().splitlines()[-1] == f"avatarforge view: {sentence}"


def _code(path: Path) -> list[str]:
    """A shader's code lines without comments and with its include guard's suffix neutral."""
    lines = (re.sub(r"\s*//.*$", "", line).replace("_HLSL", "_GUARD").replace("_USH", "_GUARD")
             for line in path.read_text().splitlines())
    return [line for line in lines if line.strip()]


def test_unreal_port_is_the_unity_port():
    """The browser runs the Unity HLSL; the Unreal .ush files must be the same code."""
    for unity, unreal in (("AvatarForgeTriplane.hlsl", "AvatarForgeTriplane.ush"),
                          ("AvatarForgeFrontPlane.hlsl", "AvatarForgeFrontPlane.ush")):
        assert _code(UNITY_SHADERS / unity) == _code(UNREAL_SHADERS / unreal), unreal
