"""Baked assets an engine animates on its own (see DESIGN.md, "Exports").

Entry points: `exporter.api.export` (one avatar, any formats: what the Export RPC and the CLI call)
and `exporter.bake.bake_folder` (a folder of portraits). Modules: glb (mesh, morph targets, textures,
animation), tables (blendshapes.json/.csv/.npz), animation + livelink (FaceVerse / ARKit sequences,
Live Link Face CSV), triplane (EXR planes + decoder weights), with head_mesh, texture_bake,
static_mesh and avatar_surface (the avatar's density and colour, through the renderer) as their
building blocks. blender_render renders a GLB in Blender from the renderer's own cameras (the check
that the GLB shows what the stream shows, and the lit contact sheet).
"""
