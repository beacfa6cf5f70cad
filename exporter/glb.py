"""GLB export: the head mesh with 52 ARKit morph targets and a baked texture, the static parts, animation.

Scene: one root node named after the avatar (it carries the head rotation of an animation) with the
head node (mesh "head": skin, eyes, mouth; morph targets in canonical ARKit order, names in
`mesh.extras.targetNames`) and, when the avatar has some, the static node (mesh "static": hair, ears,
neck). Units are metres on glTF axes, which are the project's world axes (+y up, +z out of the face).
Bytes depend only on the avatar, the head model and the options: no timestamps, fixed ordering.

Textures hold what the stream shows (exporter.avatar_surface): the head texture is the avatar's colour
seen from outside each head-model texel at the neutral pose (from the front where the front view sees
the texel, else along its normal), and for the mouth interior (cavity, teeth, tongue) with the jaw open,
when the stream shows it; the static texture likewise over the static mesh (along the normal).
exporter.blender_render checks the result in Blender against the renderer.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pygltflib as gl

from avatar.asset import Avatar
from avatar.camera import BOX_HALF
from avatar.expressions import ARKIT_NAMES, index_of
from avatar.head_model.base import PART_ID, HeadModel
from avatar.surface_field import mesh_wall, texel_index
from exporter.animation import Animation
from exporter.avatar_surface import AvatarSurface
from exporter.head_mesh import GltfMesh, head_gltf_mesh, motion_bound, resolve_head_model, vertex_normals
from exporter.options import ExportOptions
from exporter.static_mesh import StaticMesh, extract_static_mesh, half_opaque_level
from exporter.texture_bake import BakeLayer, ColourFn, bake_layers, bake_texture, png_bytes

GENERATOR = "AvatarForge exporter"
MOUTH_INTERIOR_PARTS = ("mouth_cavity", "teeth", "tongue")
# The front view's depth is taken at this many cells across the box (about 0.4 mm for a life-size head).
FRONT_DEPTH_RESOLUTION = 1024
FRONT = np.array([0.0, 0.0, 1.0], np.float32)
MOUTH_OPEN = np.eye(len(ARKIT_NAMES), dtype=np.float32)[index_of("jawOpen")]
Progress = Callable[[str, float, str], None]


@dataclass
class _Blob:
    gltf: gl.GLTF2
    data: bytearray

    def view(self, payload: bytes, target: int | None = None) -> int:
        self.data.extend(b"\0" * (-len(self.data) % 4))
        self.gltf.bufferViews.append(gl.BufferView(buffer=0, byteOffset=len(self.data), byteLength=len(payload),
                                                   target=target))
        self.data.extend(payload)
        return len(self.gltf.bufferViews) - 1

    def accessor(self, array: np.ndarray, kind: str, target: int | None = None, bounds: bool = False) -> int:
        array = np.ascontiguousarray(array)
        component = {np.dtype(np.float32): gl.FLOAT, np.dtype(np.uint32): gl.UNSIGNED_INT,
                     np.dtype(np.uint16): gl.UNSIGNED_SHORT}[array.dtype]
        flat = array.reshape(len(array), -1)
        acc = gl.Accessor(bufferView=self.view(array.tobytes(), target), componentType=component,
                          count=len(array), type=kind)
        if bounds:
            acc.min = [_num(x) for x in flat.min(axis=0)]
            acc.max = [_num(x) for x in flat.max(axis=0)]
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1

    def delta_accessor(self, deltas: np.ndarray) -> int:
        """A VEC3 morph-target accessor: sparse when that is smaller, no data at all when all zero."""
        deltas = np.ascontiguousarray(deltas, dtype=np.float32)
        count = len(deltas)
        rows = np.flatnonzero(np.any(deltas != 0, axis=1))
        acc = gl.Accessor(componentType=gl.FLOAT, count=count, type=gl.VEC3, byteOffset=None,
                          min=[_num(x) for x in deltas.min(axis=0)], max=[_num(x) for x in deltas.max(axis=0)])
        index_type = np.uint16 if count <= 0xFFFF else np.uint32
        sparse_bytes = len(rows) * (np.dtype(index_type).itemsize + 12)
        if len(rows) == 0:
            pass  # an accessor without bufferView reads as zeros
        elif sparse_bytes < deltas.nbytes:
            acc.sparse = gl.Sparse(
                count=len(rows),
                indices=gl.AccessorSparseIndices(bufferView=self.view(rows.astype(index_type).tobytes()),
                                                  componentType=gl.UNSIGNED_SHORT if index_type == np.uint16
                                                  else gl.UNSIGNED_INT),
                values=gl.AccessorSparseValues(bufferView=self.view(deltas[rows].tobytes())))
        else:
            acc.bufferView = self.view(deltas.tobytes(), gl.ARRAY_BUFFER)
            acc.byteOffset = 0
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1


def _num(x: float) -> float:
    # float32 bounds written as the exact float32 value, so validators comparing with the data agree.
    return float(np.float32(x))


def _material(blob: _Blob, name: str, image_png: bytes) -> int:
    g = blob.gltf
    if not g.samplers:
        g.samplers.append(gl.Sampler(magFilter=gl.LINEAR, minFilter=gl.LINEAR_MIPMAP_LINEAR,
                                     wrapS=gl.CLAMP_TO_EDGE, wrapT=gl.CLAMP_TO_EDGE))
    g.images.append(gl.Image(name=f"{name}_basecolor", mimeType="image/png", bufferView=blob.view(image_png)))
    g.textures.append(gl.Texture(sampler=0, source=len(g.images) - 1))
    g.materials.append(gl.Material(
        name=name,
        pbrMetallicRoughness=gl.PbrMetallicRoughness(baseColorTexture=gl.TextureInfo(index=len(g.textures) - 1),
                                                     metallicFactor=0.0, roughnessFactor=0.7),
        doubleSided=False))
    return len(g.materials) - 1


def _primitive_attributes(blob: _Blob, positions: np.ndarray, normals: np.ndarray | None,
                          uv: np.ndarray) -> gl.Attributes:
    attrs = gl.Attributes(POSITION=blob.accessor(positions.astype(np.float32), gl.VEC3, gl.ARRAY_BUFFER, bounds=True),
                          TEXCOORD_0=blob.accessor(uv.astype(np.float32), gl.VEC2, gl.ARRAY_BUFFER))
    if normals is not None:
        attrs.NORMAL = blob.accessor(normals.astype(np.float32), gl.VEC3, gl.ARRAY_BUFFER)
    return attrs


def _indices(blob: _Blob, faces: np.ndarray, vertex_count: int) -> int:
    dtype = np.uint16 if vertex_count <= 0xFFFF else np.uint32
    return blob.accessor(faces.reshape(-1).astype(dtype), gl.SCALAR, gl.ELEMENT_ARRAY_BUFFER)


def _head_mesh(blob: _Blob, mesh: GltfMesh, material: int, with_normal_deltas: bool) -> int:
    attrs = _primitive_attributes(blob, mesh.positions, mesh.normals, mesh.uv)
    targets = []
    for k in range(len(ARKIT_NAMES)):
        target = {"POSITION": blob.delta_accessor(mesh.position_deltas[k])}
        if with_normal_deltas and mesh.normal_deltas is not None:
            target["NORMAL"] = blob.delta_accessor(mesh.normal_deltas[k])
        targets.append(target)
    prim = gl.Primitive(attributes=attrs, indices=_indices(blob, mesh.indices, len(mesh.positions)),
                        material=material, mode=gl.TRIANGLES, targets=targets)
    blob.gltf.meshes.append(gl.Mesh(name="head", primitives=[prim], weights=[0.0] * len(ARKIT_NAMES),
                                    extras={"targetNames": list(ARKIT_NAMES)}))
    return len(blob.gltf.meshes) - 1


def _static_mesh(blob: _Blob, mesh: StaticMesh, metres_per_unit: float, material: int) -> int:
    uv = mesh.uv.copy()
    uv[:, 1] = 1.0 - uv[:, 1]
    attrs = _primitive_attributes(blob, mesh.vertices * np.float32(metres_per_unit), mesh.normals, uv)
    prim = gl.Primitive(attributes=attrs, indices=_indices(blob, mesh.faces, len(mesh.vertices)),
                        material=material, mode=gl.TRIANGLES)
    blob.gltf.meshes.append(gl.Mesh(name="static", primitives=[prim]))
    return len(blob.gltf.meshes) - 1


def _animation(blob: _Blob, animation: Animation, root: int, head_node: int) -> None:
    times = blob.accessor(animation.times.astype(np.float32), gl.SCALAR, bounds=True)
    weights = blob.accessor(animation.weights.astype(np.float32).reshape(-1), gl.SCALAR)
    samplers = [gl.AnimationSampler(input=times, output=weights, interpolation="LINEAR")]
    channels = [gl.AnimationChannel(sampler=0, target=gl.AnimationChannelTarget(node=head_node, path=gl.WEIGHTS))]
    quats = animation.head_quaternions()
    if quats is not None:
        samplers.append(gl.AnimationSampler(input=times, output=blob.accessor(quats, gl.VEC4),
                                            interpolation="LINEAR"))
        channels.append(gl.AnimationChannel(sampler=1, target=gl.AnimationChannelTarget(node=root, path=gl.ROTATION)))
    blob.gltf.animations.append(gl.Animation(name="performance", samplers=samplers, channels=channels))


def _seen_from_the_front(colour: ColourFn, positions: np.ndarray, faces: np.ndarray) -> ColourFn:
    """`colour` seen from outside, along the normal, except that points the front view sees are seen
    from the front (their "normal" given as +z): there the ray meets what the stream shows from the
    front. Along the normal, a face turned away from the front view but still seen in it (an eyelid's
    margin, a nostril's rim) is reached through the neighbouring surface first (the eyeball, the lip):
    baked that way the lid margins were thin dark or white rims round each eye."""
    wall, _ = mesh_wall(positions, faces, "front", FRONT_DEPTH_RESOLUTION)
    depth = np.nan_to_num(wall, nan=-np.inf)
    cell = 2 * BOX_HALF / FRONT_DEPTH_RESOLUTION

    def colour_seen(points: np.ndarray, normals: np.ndarray | None = None) -> np.ndarray:
        ij = texel_index(points[:, :2], FRONT_DEPTH_RESOLUTION)
        # Within a cell of depth of the nearest surface: the point's own face, or one next to it.
        front = points[:, 2] >= depth[ij[:, 1], ij[:, 0]] - cell
        toward = np.where(front[:, None], FRONT, normals if normals is not None else FRONT).astype(np.float32)
        return colour(points, toward)

    return colour_seen


def _head_texture(head: HeadModel, identity: np.ndarray, colour_in_pose: Callable[[np.ndarray | None], ColourFn],
                  size: int) -> np.ndarray:
    """The head texture as the stream shows each part: everything seen at the neutral pose, then the
    mouth interior (cavity, teeth, tongue) seen with the jaw open, which is when the stream shows it."""
    interior = np.isin(head.face_part, [PART_ID[p] for p in MOUTH_INTERIOR_PARTS])
    layers = []
    for expression, faces in ((None, np.ones(len(head.faces), bool)), (MOUTH_OPEN, interior)):
        if not faces.any():
            continue
        posed = head.posed(expression, identity)
        layers.append(BakeLayer(_seen_from_the_front(colour_in_pose(expression), posed, head.faces), posed,
                                head.faces[faces], head.faces_uv[faces], normals=vertex_normals(posed, head.faces)))
    return bake_layers(layers, head.uv, size)


def _in_every_pose(colour: ColourFn) -> Callable[[np.ndarray | None], ColourFn]:
    """A colour field that does not depend on the pose."""
    def colour_in_pose(expression: np.ndarray | None) -> ColourFn:
        return colour

    return colour_in_pose


def root_name(avatar: Avatar) -> str:
    return avatar.display_name.strip() or f"avatar_{avatar.avatar_id[:12]}"


def build_glb(avatar: Avatar, options: ExportOptions = ExportOptions(), head: HeadModel | None = None,
              animation: Animation | None = None, colour: ColourFn | None = None,
              density_grid: Callable[[int], np.ndarray] | None = None,
              progress: Progress | None = None) -> bytes:
    """The GLB bytes. `colour`/`density_grid` default to the avatar's renderer; a `colour` given is
    used for every pose the textures are baked in."""
    report = progress or (lambda stage, fraction, message: None)
    model, head = head, resolve_head_model(avatar, head)  # the model as given; the head the avatar wears
    surface = None
    if colour is None or (density_grid is None and options.include_static):
        surface = AvatarSurface(avatar, model)
        density_grid = density_grid or surface.density_grid
    colour_in_pose: Callable[[np.ndarray | None], ColourFn]
    if colour is None:
        assert surface is not None   # made above whenever no colour is given
        colour_in_pose = surface.colour_in_pose
    else:
        colour_in_pose = _in_every_pose(colour)
    colour = colour_in_pose(None)

    report("glb", 0.0, "head mesh and morph targets")
    mesh = head_gltf_mesh(head, avatar.identity, with_normals=True, with_normal_deltas=options.target_normals)
    world_positions = head.posed(None, avatar.identity)
    report("glb", 0.2, "baking the head texture")
    head_texture = _head_texture(head, avatar.identity, colour_in_pose, options.texture_size)

    static = None
    if options.include_static:
        report("glb", 0.5, "extracting the static parts")
        assert density_grid is not None   # the avatar's own when none is given
        grid = density_grid(options.density_resolution)
        static = extract_static_mesh(grid, half_opaque_level(options.density_resolution), world_positions,
                                     head.faces, options.static_triangle_budget,
                                     atlas_resolution=options.static_texture_size, head_motion=motion_bound(head))
        if static is not None:
            report("glb", 0.7, "baking the static texture")
            # A marching-cubes surface only approximates the opaque wall: colour it as seen from outside.
            static_texture = bake_texture(colour, static.vertices, static.faces, static.uv, static.faces,
                                          options.static_texture_size, normals=static.normals)

    report("glb", 0.9, "writing the GLB")
    gltf = gl.GLTF2(asset=gl.Asset(version="2.0", generator=GENERATOR), scene=0)
    blob = _Blob(gltf, bytearray())
    head_material = _material(blob, "head", png_bytes(head_texture))
    head_mesh = _head_mesh(blob, mesh, head_material, options.target_normals)
    gltf.nodes.append(gl.Node(name=root_name(avatar), children=[1]))
    gltf.nodes.append(gl.Node(name="head", mesh=head_mesh))
    if static is not None:
        static_material = _material(blob, "static", png_bytes(static_texture))
        static_mesh = _static_mesh(blob, static, head.metres_per_unit, static_material)
        gltf.nodes.append(gl.Node(name="static", mesh=static_mesh))
        gltf.nodes[0].children.append(2)
    gltf.scenes.append(gl.Scene(name=root_name(avatar), nodes=[0]))
    if animation is not None:
        _animation(blob, animation, root=0, head_node=1)
    gltf.extras = {"avatar_id": avatar.avatar_id, "head_model_id": head.model_id,
                   "metres_per_unit": head.metres_per_unit}
    blob.data.extend(b"\0" * (-len(blob.data) % 4))
    gltf.buffers.append(gl.Buffer(byteLength=len(blob.data)))
    gltf.set_binary_blob(bytes(blob.data))
    out = gltf.save_to_bytes()
    data = b"".join(out) if isinstance(out, list) else bytes(out)
    report("glb", 1.0, f"GLB written ({len(data) / 1e6:.1f} MB)")
    return data
