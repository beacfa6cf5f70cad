"""Baked assets an engine animates on its own (ARCHITECTURE.md, "Create, render, export").

Entry points: `exporter.api.export` (one avatar, any formats: what the Export RPC and the CLI call)
and `exporter.bake.bake_folder` (a folder of portraits). Modules: glb (mesh, morph targets, textures,
animation), tables (blendshapes.json/.csv/.npz), sources (every animation input: FaceVerse .npy files
or directories, Live Link Face CSV, ARKit JSON, video clips) -> animation, livelink (the CSV format),
triplane (EXR planes + decoder weights), with head_mesh, texture_bake, static_mesh and avatar_surface
(the avatar's density and colour, through the renderer) as their building blocks. blender_render
renders a GLB in Blender from the renderer's own cameras (the check that the GLB shows what the stream
shows, and the lit contact sheet).
"""
