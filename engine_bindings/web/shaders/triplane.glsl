// AvatarForge triplane raymarcher: the reference shader, and the porting guide for engines.
//
// GLSL ES 3.00 (WebGL2). The host prepends "#version 300 es" and the #defines below, then compiles
// this file twice: with PASS_SPAN for the span pass and with PASS_MARCH for the march pass. The HLSL
// (Unity) and .usf (Unreal) ports follow this file function by function.
//
// What it renders is exactly what avatar.render.Renderer's accelerated march computes (the fused C++
// kernel in avatar/march/march.cpp, in float32), read from the files of the triplane export
// (triplane/triplane.json names every number used here):
//   1. span pass (PASS_SPAN), at half resolution: for every other pixel of every other row, the
//      first and last occupied cell of the coarse occupancy grid along the pixel's ray;
//   2. the front-plane pass (front_plane.glsl) composes the expression-dependent xy plane;
//   3. march pass (PASS_MARCH), per pixel: the widest span of the four scanned rays around it, then
//      density in rounds of SAMPLES_PER_ROUND samples one fine cell apart, skipping empty fine cells,
//      stopping once the transmittance is spent; an opaque sample (optical depth over REFINE_OPTICAL)
//      is coloured where its step's light comes from, and the first one past a surface bisects its
//      step for the crossing; colour decoded only at heavy samples.
// Sample positions matter: the surface decoder's density is opaque within one sample, so a shader
// that placed its samples differently would colour a different depth. Keep the arithmetic in float32
// and in this order when porting.
//
// Host-provided #defines:
//   GROUPS               channel groups per plane (channels / 4; 8 for 32 channels)
//   FINE_RES, COARSE_RES occupancy grid resolutions (manifest occupancy.grids)
//   SAMPLES_PER_ROUND    TRANSMITTANCE_EPS  WEIGHT_EPS  REFINE_OPTICAL  REFINE_BISECTIONS
//                                                      (manifest occupancy.march)
//   DENSITY_SHIFT        SIGMOID_WIDEN                  (manifest decoder.outputs)
//   MAX_GROUPS           capacity of the group lists (8)

precision highp float;
precision highp int;
precision highp sampler2D;
precision highp sampler2DArray;
precision highp sampler3D;

const float BOX_HALF = 0.5;   // the head lives in [-0.5, 0.5]^3 (manifest box)
const float BIG = 1e4;        // "no span" marker

// ---- inputs --------------------------------------------------------------------------------------
// The planes as RGBA32F array layers, layer = plane * GROUPS + group; group g holds channels 4g..4g+3
// as RGBA, exactly one EXR of the export. Plane 0 is the neural texture (uv), planes 1-3 the spatial
// planes in manifest plane_order. Texel (i, j) is plane column i, row j (row 0 = the row axis at -0.5):
// note that three's EXRLoader returns rows bottom-up; the host flips them back.
// Full float: the surface decoder's gates carry ramps of magnitude ~4e3 whose differences are the
// colours, which half precision would round away (float16 values near 4e3 are 2 apart). Read with texelFetch:
// the bilinear weights are computed here as grid_sample does (RGBA32F is not filterable in WebGL2).
uniform sampler2DArray uPlanes;
// The xy plane composed for the current expression by front_plane.glsl, layer = group.
uniform sampler2DArray uFront;
uniform ivec2 uPlaneSize;          // (width, height) of every plane
uniform ivec2 uAxes[3];            // world axes (0 x, 1 y, 2 z) of (column, row) of spatial plane k (PLANE_AXES)

// Occupancy (manifest occupancy): R8, 1 = occupied; texel (k, j, i) is cell (i, j, k) along (x, y, z),
// i.e. the export's x-major bit order read as a 3D texture of width R (z), height R (y), depth R (x).
uniform sampler3D uFine;
uniform sampler3D uCoarse;

// The decoder as two pruned fields, like avatar.decoder.RenderField: density reads only the hidden
// units (and so the channel groups) that feed the density output; colour those that feed RGB.
// Field texture, RGBA32F, one row per hidden unit j:
//   texel 0          (b1[j], w2[out0][j], w2[out1][j], w2[out2][j])   outputs: density (x) or RGB (xyz)
//   texel 1          .x: bit n set when unit j has a non-zero weight on group uXxxGroups[n]; the others
//                    are skipped, as march.cpp's sparse layers skip zeros (a surface decoder's unit reads
//                    one channel, a learned one all)
//   texel 2 + n      fc0 weights of unit j on the 4 channels of group uXxxGroups[n], already / 3
//                    (the decoder's input is the mean of the three plane samples)
uniform sampler2D uDensityField;
uniform int uDensityGroups[MAX_GROUPS];
uniform int uDensityGroupCount;
uniform int uDensityHidden;
uniform float uDensityBias;        // fc1 bias of the density output
uniform sampler2D uColourField;
uniform int uColourGroups[MAX_GROUPS];
uniform int uColourGroupCount;
uniform int uColourHidden;
uniform vec3 uColourBias;          // fc1 bias of the RGB outputs

// Camera: the EG3D 25-vector (avatar.camera): cam2world rotation (OpenCV axes: x right, y down,
// z forward), position, normalised intrinsics (fx, fy, cx, cy) as fractions of the image size.
uniform mat3 uCamRot;
uniform vec3 uCamPos;
uniform vec4 uIntrinsics;
uniform vec2 uNearFar;             // avatar.camera.ray_bounds: (max(r - 0.45, 0.01), r + 0.6), r = |uCamPos|
uniform ivec2 uImageSize;          // (width, height) of the final image

// ---- camera rays and the box (avatar.camera.generate_rays, avatar.volume.box_intersection) ---------
// Pixel (x, y), row y counted from the top of the image, through its centre.
void cameraRay(int x, int y, out vec3 origin, out vec3 dir) {
  float xs = (float(x) + 0.5) / float(uImageSize.x);
  float ys = (float(y) + 0.5) / float(uImageSize.y);
  vec3 cam = vec3((xs - uIntrinsics.z) / uIntrinsics.x, (ys - uIntrinsics.w) / uIntrinsics.y, 1.0);
  origin = uCamPos;
  dir = normalize(uCamRot * cam);
}

// Entry and exit depth of the ray in the head box, clipped to [near, far]; a < b when it hits.
vec2 boxInterval(vec3 o, vec3 d) {
  vec3 safe = vec3(abs(d.x) < 1e-9 ? 1e-9 : d.x, abs(d.y) < 1e-9 ? 1e-9 : d.y, abs(d.z) < 1e-9 ? 1e-9 : d.z);
  vec3 inv = 1.0 / safe;
  vec3 t0 = (-BOX_HALF - o) * inv;
  vec3 t1 = (BOX_HALF - o) * inv;
  vec3 lo = min(t0, t1), hi = max(t0, t1);
  float a = max(max(max(lo.x, lo.y), lo.z), uNearFar.x);
  float b = min(min(min(hi.x, hi.y), hi.z), uNearFar.y);
  return vec2(a, b);
}

// ---- occupancy (avatar.occupancy.OccupancyGrid.cell_index) ------------------------------------------
bool occupied(sampler3D grid, int res, vec3 p) {
  float scale = float(res) / (2.0 * BOX_HALF);
  ivec3 ijk = clamp(ivec3((p + BOX_HALF) * scale), ivec3(0), ivec3(res - 1));  // truncation, as .long()
  return texelFetch(grid, ijk.zyx, 0).r > 0.5;
}

// ---- plane sampling (grid_sample: bilinear, zeros padding, align_corners=False) ---------------------
// g: the sample's grid coordinates in [-1, 1] (world / BOX_HALF) along (column, row).
vec4 bilinearZero(sampler2DArray planes, int layer, vec2 g) {
  vec2 pos = (g + 1.0) * (vec2(uPlaneSize) * 0.5) - 0.5;
  vec2 p0 = floor(pos);
  vec2 w = pos - p0;
  ivec2 i0 = ivec2(p0);
  vec4 acc = vec4(0.0);
  for (int q = 0; q < 4; ++q) {
    ivec2 c = i0 + ivec2(q & 1, q >> 1);
    if (c.x < 0 || c.y < 0 || c.x >= uPlaneSize.x || c.y >= uPlaneSize.y) continue;  // zeros padding
    float wq = ((q & 1) == 1 ? w.x : 1.0 - w.x) * ((q >> 1) == 1 ? w.y : 1.0 - w.y);
    acc += wq * texelFetch(planes, ivec3(c, layer), 0);
  }
  return acc;
}

// Sum of the three spatial planes' samples of one channel group at world point p; the first spatial
// plane (xy) is read from the composed front plane.
vec4 sumPlanes(vec3 p, int group) {
  vec4 s = bilinearZero(uFront, group, vec2(p[uAxes[0].x], p[uAxes[0].y]) / BOX_HALF);
  s += bilinearZero(uPlanes, 2 * GROUPS + group, vec2(p[uAxes[1].x], p[uAxes[1].y]) / BOX_HALF);
  s += bilinearZero(uPlanes, 3 * GROUPS + group, vec2(p[uAxes[2].x], p[uAxes[2].y]) / BOX_HALF);
  return s;
}

// torch's softplus (threshold 20); below -20 log(1 + e^x) is e^x to float precision.
float softplus(float x) {
  if (x > 20.0) return x;
  if (x < -20.0) return exp(x);
  return log(1.0 + exp(x));
}

float sigmoid(float x) { return 1.0 / (1.0 + exp(-x)); }

// ---- the decoder ------------------------------------------------------------------------------------
// Density sigma (per world unit) at p: fc0 -> softplus -> fc1 output 0 -> softplus(o - DENSITY_SHIFT).
float density(vec3 p) {
  vec4 f[MAX_GROUPS];
  for (int n = 0; n < uDensityGroupCount; ++n) f[n] = sumPlanes(p, uDensityGroups[n]);
  float o = uDensityBias;
  for (int j = 0; j < uDensityHidden; ++j) {
    vec4 unit = texelFetch(uDensityField, ivec2(0, j), 0);
    float h = unit.x;
    int reads = int(texelFetch(uDensityField, ivec2(1, j), 0).x);
    for (int n = 0; n < uDensityGroupCount; ++n) {
      if (((reads >> n) & 1) == 1) h += dot(texelFetch(uDensityField, ivec2(2 + n, j), 0), f[n]);
    }
    o += softplus(h) * unit.y;
  }
  return softplus(o - DENSITY_SHIFT);
}

// RGB in [0, 1] at p: fc0 -> softplus -> fc1 outputs 1..3 -> widened sigmoid.
vec3 colour(vec3 p) {
  vec4 f[MAX_GROUPS];
  for (int n = 0; n < uColourGroupCount; ++n) f[n] = sumPlanes(p, uColourGroups[n]);
  vec3 o = uColourBias;
  for (int j = 0; j < uColourHidden; ++j) {
    vec4 unit = texelFetch(uColourField, ivec2(0, j), 0);
    float h = unit.x;
    int reads = int(texelFetch(uColourField, ivec2(1, j), 0).x);
    for (int n = 0; n < uColourGroupCount; ++n) {
      if (((reads >> n) & 1) == 1) h += dot(texelFetch(uColourField, ivec2(2 + n, j), 0), f[n]);
    }
    o += softplus(h) * unit.yzw;
  }
  return vec3(sigmoid(o.x), sigmoid(o.y), sigmoid(o.z)) * (1.0 + 2.0 * SIGMOID_WIDEN) - SIGMOID_WIDEN;
}

#ifdef PASS_SPAN
// ---- pass 1: coarse spans (march.cpp coarse_span) -----------------------------------------------------
// Target: RG32F of ((width + 1) / 2, (height + 1) / 2); texel (c, r) is the ray of image pixel
// (2c, 2r), rows counted from the top. Out: (first, last), or (BIG, -BIG) when nothing is occupied.
out vec2 outSpan;

void main() {
  ivec2 cell = ivec2(gl_FragCoord.xy);
  vec3 o, d;
  cameraRay(2 * cell.x, 2 * cell.y, o, d);
  vec2 ab = boxInterval(o, d);
  float size = 2.0 * BOX_HALF / float(COARSE_RES);
  float first = BIG, last = -BIG;
  if (ab.x < ab.y) {
    for (int k = 0; k < 4 * COARSE_RES; ++k) {   // the box diagonal is under 2 * COARSE_RES cells
      float t = ab.x + size * float(k);
      if (!(t <= ab.y)) break;
      if (occupied(uCoarse, COARSE_RES, o + d * t)) {
        if (first == BIG) first = t - size / 2.0;
        last = t + size / 2.0;
      }
    }
  }
  outSpan = vec2(first, last);
}
#endif

#ifdef PASS_MARCH
// ---- pass 3: the march (march.cpp march_ray) -----------------------------------------------------------
uniform sampler2D uSpans;          // pass 1's output
uniform vec3 uBackground;          // composited behind the head: rgb + (1 - alpha) * background
out vec4 outColour;

// Where in a step of constant density with optical depth x its light comes from on average, as a
// fraction of the step (avatar.render._light_centroid): 1/x - 1/(e^x - 1), its series below 0.1.
float lightCentroid(float x) {
  x = max(x, 1e-6);
  return x < 0.1 ? 0.5 - x / 12.0 + x * x * x / 720.0 : 1.0 / x - 1.0 / (exp(x) - 1.0);
}

// The sample at t (standing for the step (t - stepLen, t]) is the first whose optical depth exceeds
// REFINE_OPTICAL: it has crossed a surface. The crossing, where density reaches half the sample's, is
// found by REFINE_BISECTIONS halvings and only the step behind it counts (march.cpp refine_surface).
// Returns that part's optical depth; tColour is the mean depth of its light.
float refineSurface(vec3 o, vec3 d, float t, float optical, float stepLen, out float tColour) {
  float sigma = optical / stepLen;
  float lo = t - stepLen, hi = t;
  for (int i = 0; i < REFINE_BISECTIONS; ++i) {
    float mid = 0.5 * (lo + hi);
    if (density(o + d * mid) >= 0.5 * sigma) hi = mid; else lo = mid;
  }
  float len = t - 0.5 * (lo + hi);
  float refined = sigma * len;
  tColour = t - stepLen + (stepLen - len + len * lightCentroid(refined));
  return refined;
}

void main() {
  int x = int(gl_FragCoord.x);
  int y = uImageSize.y - 1 - int(gl_FragCoord.y);   // image rows from the top, framebuffer from the bottom
  vec3 o, d;
  cameraRay(x, y, o, d);
  vec2 ab = boxInterval(o, d);
  vec3 rgb = vec3(0.0);
  float alpha = 0.0;
  if (ab.x < ab.y) {
    // The widest span of the (up to) four scanned rays around this pixel, clipped to its own interval.
    ivec2 scanned = (uImageSize + 1) / 2;
    int r0 = y / 2, r1 = min((y + 1) / 2, scanned.y - 1);
    int c0 = x / 2, c1 = min((x + 1) / 2, scanned.x - 1);
    vec2 s00 = texelFetch(uSpans, ivec2(c0, r0), 0).xy, s01 = texelFetch(uSpans, ivec2(c1, r0), 0).xy;
    vec2 s10 = texelFetch(uSpans, ivec2(c0, r1), 0).xy, s11 = texelFetch(uSpans, ivec2(c1, r1), 0).xy;
    float first = max(min(min(s00.x, s01.x), min(s10.x, s11.x)), ab.x);
    float last = min(max(max(s00.y, s01.y), max(s10.y, s11.y)), ab.y);
    if (first < last) {
      float stepLen = 2.0 * BOX_HALF / float(FINE_RES);
      float trans = 1.0, kept = 0.0;
      vec3 colourSum = vec3(0.0);
      float start = first;
      float lastOptical = 0.0;   // of the previous sample
      for (int r = 0; r < 4 * FINE_RES; ++r) {   // a ray crosses fewer than 2 * FINE_RES cells
        float roundTrans = 1.0, t = start;
        for (int j = 0; j < SAMPLES_PER_ROUND; ++j) {
          t = start + stepLen * float(j);
          vec3 p = o + d * t;
          if (!(t <= last) || !occupied(uFine, FINE_RES, p)) {   // past the span or an empty cell: density 0
            lastOptical = 0.0;
            continue;
          }
          float raw = density(p) * stepLen;
          // Light samples are coloured where they are; opaque ones, which stand for the step behind
          // them, where that step's light comes from.
          float optical = raw, tColour = raw > REFINE_OPTICAL ? t - stepLen + stepLen * lightCentroid(raw) : t;
          if (raw > REFINE_OPTICAL && !(lastOptical > REFINE_OPTICAL)) optical = refineSurface(o, d, t, raw, stepLen, tColour);
          lastOptical = raw;
          float a = optical > 88.0 ? 1.0 : 1.0 - exp(-optical);
          float w = a * roundTrans * trans;
          roundTrans *= 1.0 - a + 1e-10;
          bool spent = !(trans * roundTrans > TRANSMITTANCE_EPS);
          if (w > WEIGHT_EPS) {                              // light samples are not coloured
            colourSum += w * colour(o + d * tColour);
            kept += w;
          }
          if (spent) break;
        }
        trans *= roundTrans;
        start = t + stepLen;
        if (!(trans > TRANSMITTANCE_EPS) || !(start <= last)) break;
      }
      alpha = 1.0 - trans;
      // The skipped light samples' share of opacity goes to the coloured ones.
      rgb = kept > 0.0 ? colourSum * (alpha / max(kept, 1e-8)) : vec3(0.0);
    }
  }
  outColour = vec4(clamp(rgb + (1.0 - alpha) * uBackground, 0.0, 1.0), 1.0);
}
#endif
