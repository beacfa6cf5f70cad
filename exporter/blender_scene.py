"""Run by Blender's own Python (`blender -b --factory-startup --python blender_scene.py -- job.json`).

Imports one GLB and renders it from the cameras in the job file; exporter.blender_render writes the
job and reads the PNGs back. Only bpy and the standard library are available here.

Job file (JSON): {"glb": path, "size": [width, height], "mode": "emission" | "lit",
"cameras": [{"matrix_world": 4x4 rows (Blender axes, metres), "angle": horizontal FOV radians}],
"outputs": [png path per camera], "weights": {shape key name: value}}.

- "emission": Workbench, flat lighting, colour = the material's base-colour texture, Standard view
  transform, so a pixel is the texture's sRGB value; transparent film, so alpha is coverage.
- "lit": Eevee, one sun and a grey ambient world (Filmic), for people to look at.
Single-sided materials are culled from behind in both, as in the engines. Written for Blender 3.x
(Eevee's 3.x shadow settings).
"""
import json
import math
import sys
from typing import Any

import bpy
from mathutils import Matrix


def _import(path: str) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=path, import_shading="SMOOTH")


def _set_weights(weights: dict[str, float]) -> None:
    for obj in bpy.data.objects:
        keys = obj.data.shape_keys.key_blocks if obj.type == "MESH" and obj.data.shape_keys else {}
        for name, value in weights.items():
            if name in keys:
                keys[name].value = value


def _emission_settings(scene: Any) -> None:   # a bpy.types.Scene
    scene.render.engine = "BLENDER_WORKBENCH"
    shading = scene.display.shading
    shading.light = "FLAT"
    shading.color_type = "TEXTURE"
    shading.show_backface_culling = True
    scene.display.render_aa = "8"
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"


def _lit_settings(scene: Any) -> None:   # a bpy.types.Scene
    scene.render.engine = "BLENDER_EEVEE"
    scene.eevee.taa_render_samples = 16
    scene.view_settings.view_transform = "Filmic"
    world = bpy.data.worlds.new("ambient")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.25, 0.25, 0.25, 1.0)
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 1.0
    scene.world = world
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", type="SUN"))
    sun.data.energy = 3.0
    sun.data.angle = math.radians(3.0)
    # A life-size head: shadow maps spent on the first metres, not Blender's default 200 m.
    sun.data.shadow_cascade_max_distance = 3.0
    scene.eevee.shadow_cascade_size = "2048"
    scene.eevee.use_soft_shadows = True
    # Light from above the subject's front, on its left (the viewer's right): Blender's -y is the
    # subject's front, +x its left, +z up.
    sun.rotation_euler = (math.radians(50.0), 0.0, math.radians(30.0))
    scene.collection.objects.link(sun)


def main(job_path: str) -> None:
    with open(job_path) as f:
        job = json.load(f)
    _import(job["glb"])
    _set_weights(job.get("weights", {}))
    scene = bpy.context.scene
    (_emission_settings if job["mode"] == "emission" else _lit_settings)(scene)
    scene.render.resolution_x, scene.render.resolution_y = job["size"]
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = True
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    data = bpy.data.cameras.new("camera")
    data.sensor_fit = "HORIZONTAL"
    data.clip_start, data.clip_end = 0.01, 100.0
    camera = bpy.data.objects.new("camera", data)
    scene.collection.objects.link(camera)
    scene.camera = camera
    for cam, out in zip(job["cameras"], job["outputs"]):
        data.angle = cam["angle"]
        camera.matrix_world = Matrix(cam["matrix_world"])  # rows
        scene.render.filepath = out
        bpy.ops.render.render(write_still=True)


if __name__ == "__main__":
    main(sys.argv[sys.argv.index("--") + 1])
