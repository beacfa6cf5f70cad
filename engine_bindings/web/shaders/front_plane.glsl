// AvatarForge front-plane composition: the expression-dependent xy plane (avatar.planes.FrontPlaneComposer).
//
// The neural texture (plane 0) is not sampled in space: it is painted onto the posed head mesh, and
// the mesh is rasterized orthographically into the xy plane's texel grid, seen from +z. This is an
// exact port, not a baked approximation: at every texel the head covers, the plane takes the neural
// texture at the mesh's UV there, plus the mesh's depth through the decoder's depth weights; the
// static xy plane stays everywhere else and, with the depth test, wherever its own surface (hair) is
// nearer than the mesh.
//
// The host runs, per channel group g (one RGBA32F layer of the target, GROUPS layers):
//   a. COPY: a full-screen triangle writes the static xy plane (the export's plane 1) into layer g;
//   b. MESH: the posed head mesh is drawn over it with depth test LESS (the nearest surface, i.e.
//      the largest z, wins: clip z = -z, as avatar.raster.orthographic_clip).
// Mesh vertices come from the GLB: its "head" mesh (the head the avatar wears, in metres) divided by
// the GLB's metres_per_unit, with the 52 morph-target deltas applied on the CPU (the same posed
// positions the occupancy needs), and TEXCOORD_0 with v flipped back (glTF's v runs down, the
// neural texture's row 0 is v = 0).
// Host #defines: GROUPS; COPY or MESH; VERTEX or FRAGMENT.

precision highp float;
precision highp int;
precision highp sampler2DArray;

const float BOX_HALF = 0.5;

#ifdef VERTEX
#ifdef COPY
void main() {  // one triangle that covers the viewport
  vec2 corner = vec2(float((gl_VertexID & 1) * 4 - 1), float((gl_VertexID & 2) * 2 - 1));
  gl_Position = vec4(corner, 0.0, 1.0);
}
#endif
#ifdef MESH
in vec3 aPosition;   // posed world position, box units
in vec2 aUv;         // head-model UV, v up
out vec2 vUv;
out float vZ;
void main() {
  vUv = aUv;
  vZ = aPosition.z;
  // Column = x, row = y over [-0.5, 0.5] (framebuffer row 0 is y = -0.5, as plane row 0).
  gl_Position = vec4(aPosition.xy / BOX_HALF, -aPosition.z / (2.0 * BOX_HALF), 1.0);
}
#endif
#endif

#ifdef FRAGMENT
uniform sampler2DArray uPlanes;   // the export's planes, layer = plane * GROUPS + group (triplane.glsl)
uniform ivec2 uPlaneSize;
uniform int uGroup;               // the channel group this draw writes
out vec4 outFeature;

vec4 staticXy(ivec2 texel, int group) { return texelFetch(uPlanes, ivec3(texel, GROUPS + group), 0); }

#ifdef COPY
void main() { outFeature = staticXy(ivec2(gl_FragCoord.xy), uGroup); }
#endif

#ifdef MESH
uniform vec4 uMask;               // raster.channel_mask of this group's 4 channels
uniform vec4 uDepthWeight;        // raster.depth_weight of this group's 4 channels
// Depth test (raster.depth_test = 1): the channel k with the largest |depth_weight| among the masked
// channels the decoder reads; uDepthChannel = -1 when there is no test.
uniform int uDepthChannel;
uniform float uDepthChannelWeight;
in vec2 vUv;
in float vZ;

// The neural texture (plane 0) at uv: grid_sample bilinear, border padding, align_corners=False;
// column = u, row = v.
vec4 neural(int group, vec2 uv) {
  vec2 size = vec2(uPlaneSize);
  vec2 pos = clamp(uv * size - 0.5, vec2(0.0), size - 1.0);   // border: clamp the coordinate
  vec2 p0 = floor(pos);
  vec2 w = pos - p0;
  ivec2 i0 = ivec2(p0);
  ivec2 i1 = min(i0 + 1, uPlaneSize - 1);   // weight 0 when clamped at the last texel
  vec4 v00 = texelFetch(uPlanes, ivec3(i0.x, i0.y, group), 0);
  vec4 v10 = texelFetch(uPlanes, ivec3(i1.x, i0.y, group), 0);
  vec4 v01 = texelFetch(uPlanes, ivec3(i0.x, i1.y, group), 0);
  vec4 v11 = texelFetch(uPlanes, ivec3(i1.x, i1.y, group), 0);
  return (1.0 - w.y) * ((1.0 - w.x) * v00 + w.x * v10) + w.y * ((1.0 - w.x) * v01 + w.x * v11);
}

void main() {
  ivec2 texel = ivec2(gl_FragCoord.xy);
  vec4 base = staticXy(texel, uGroup);
  vec4 rasterized = neural(uGroup, vUv) + uDepthWeight * vZ;
  vec4 m = uMask;
  if (uDepthChannel >= 0) {
    int g = uDepthChannel / 4, c = uDepthChannel % 4;
    float own = staticXy(texel, g)[c];
    float mesh = neural(g, vUv)[c] + uDepthChannelWeight * vZ;
    if ((own - mesh) * sign(uDepthChannelWeight) > 0.0) m = vec4(0.0);   // the static surface is nearer
  }
  outFeature = base * (1.0 - m) + rasterized * m;
}
#endif
#endif
