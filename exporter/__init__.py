"""Baked assets an engine animates on its own (see DESIGN.md, "Exports").

Entry points: `exporter.api.export` (one avatar, any formats: what the Export RPC and the CLI call)
and `exporter.bake.bake_folder` (a folder of portraits). Modules: glb (mesh, morph targets, textures,
animation), tables (blendshapes.json/.csv/.npz), animation + livelink (FaceVerse / ARKit sequences,
Live Link Face CSV), triplane (EXR planes + decoder weights), with head_mesh, texture_bake and
static_mesh as their building blocks.
"""
