// AvatarForge triplane raymarcher, HLSL port of engine_bindings/web/shaders/triplane.glsl (the
// reference, with the full porting notes). Function for function and line for line with it; where
// HLSL differs the comment says so. Plain HLSL (no Unity include), so it also compiles outside Unity
// (tests/test_web_view.py compiles it with glslang's HLSL front end).
//
// Defines (set by AvatarForgeTriplane.shader or the including code): GROUPS, MAX_GROUPS, FINE_RES,
// COARSE_RES, SAMPLES_PER_ROUND, TRANSMITTANCE_EPS, WEIGHT_EPS, REFINE_OPTICAL, REFINE_BISECTIONS,
// DENSITY_SHIFT, SIGMOID_WIDEN (manifest values; see triplane.glsl), and PASS_SPAN or PASS_MARCH.
#ifndef AVATARFORGE_TRIPLANE_HLSL
#define AVATARFORGE_TRIPLANE_HLSL

static const float BOX_HALF = 0.5;
static const float BIG = 1e4;

// ---- inputs (triplane.glsl: uPlanes, uFront, ...) ----------------------------------------------------
Texture2DArray<float4> _Planes;        // RGBA32F, layer = plane * GROUPS + group, row 0 = the row axis at -0.5
Texture2DArray<float4> _Front;         // the composed xy plane (AvatarForgeFrontPlane.hlsl), layer = group
int2 _PlaneSize;                       // (width, height)
int4 _Axes[3];                         // .xy: world axes of (column, row) of spatial plane k (int4 for cbuffer packing)
Texture3D<float> _Fine;                // R8 occupancy, texel (k, j, i) = cell (i, j, k) along (x, y, z)
Texture3D<float> _Coarse;
Texture2D<float4> _DensityField;       // per hidden unit row: (b1, w2 column), (mask of groups read), fc0 weights / 3 per listed group
float _DensityGroups[MAX_GROUPS];      // group indices as floats (Unity sets arrays with SetFloatArray)
int _DensityGroupCount;
int _DensityHidden;
float _DensityBias;
Texture2D<float4> _ColourField;
float _ColourGroups[MAX_GROUPS];
int _ColourGroupCount;
int _ColourHidden;
float3 _ColourBias;
// The EG3D 25-vector's cam2world, row by row as the vector stores it: rows 0-2 = (R | position) with
// OpenCV axes (x right, y down, z forward). GLSL passes it as uCamRot (column-major) and uCamPos.
float4x4 _CamToWorld;
float4 _Intrinsics;                    // (fx, fy, cx, cy), fractions of the image size
float2 _NearFar;
int2 _ImageSize;

// ---- camera rays and the box ---------------------------------------------------------------------------
void cameraRay(int x, int y, out float3 origin, out float3 dir) {
  float xs = (float(x) + 0.5) / float(_ImageSize.x);
  float ys = (float(y) + 0.5) / float(_ImageSize.y);
  float3 cam = float3((xs - _Intrinsics.z) / _Intrinsics.x, (ys - _Intrinsics.w) / _Intrinsics.y, 1.0);
  origin = float3(_CamToWorld[0].w, _CamToWorld[1].w, _CamToWorld[2].w);  // [i] is row i
  dir = normalize(mul((float3x3)_CamToWorld, cam));
}

float2 boxInterval(float3 o, float3 d) {
  float3 safe = float3(abs(d.x) < 1e-9 ? 1e-9 : d.x, abs(d.y) < 1e-9 ? 1e-9 : d.y, abs(d.z) < 1e-9 ? 1e-9 : d.z);
  float3 inv = 1.0 / safe;
  float3 t0 = (-BOX_HALF - o) * inv;
  float3 t1 = (BOX_HALF - o) * inv;
  float3 lo = min(t0, t1), hi = max(t0, t1);
  float a = max(max(max(lo.x, lo.y), lo.z), _NearFar.x);
  float b = min(min(min(hi.x, hi.y), hi.z), _NearFar.y);
  return float2(a, b);
}

// ---- occupancy -----------------------------------------------------------------------------------------
bool occupiedFine(float3 p) {   // GLSL passes the grid as a parameter; HLSL resources are named instead
  float scale = float(FINE_RES) / (2.0 * BOX_HALF);
  int3 ijk = clamp(int3((p + BOX_HALF) * scale), int3(0, 0, 0), int3(FINE_RES - 1, FINE_RES - 1, FINE_RES - 1));
  return _Fine.Load(int4(ijk.zyx, 0)) > 0.5;
}

bool occupiedCoarse(float3 p) {
  float scale = float(COARSE_RES) / (2.0 * BOX_HALF);
  int3 ijk = clamp(int3((p + BOX_HALF) * scale), int3(0, 0, 0), int3(COARSE_RES - 1, COARSE_RES - 1, COARSE_RES - 1));
  return _Coarse.Load(int4(ijk.zyx, 0)) > 0.5;
}

// ---- plane sampling (grid_sample: bilinear, zeros padding, align_corners=False) -------------------------
float4 bilinearZero(Texture2DArray<float4> planes, int layer, float2 g) {
  float2 pos = (g + 1.0) * (float2(_PlaneSize) * 0.5) - 0.5;
  float2 p0 = floor(pos);
  float2 w = pos - p0;
  int2 i0 = int2(p0);
  float4 acc = float4(0.0, 0.0, 0.0, 0.0);
  for (int q = 0; q < 4; ++q) {
    int2 c = i0 + int2(q & 1, q >> 1);
    if (c.x < 0 || c.y < 0 || c.x >= _PlaneSize.x || c.y >= _PlaneSize.y) continue;  // zeros padding
    float wq = ((q & 1) == 1 ? w.x : 1.0 - w.x) * ((q >> 1) == 1 ? w.y : 1.0 - w.y);
    acc += wq * planes.Load(int4(c, layer, 0));
  }
  return acc;
}

float4 sumPlanes(float3 p, int group) {
  float4 s = bilinearZero(_Front, group, float2(p[_Axes[0].x], p[_Axes[0].y]) / BOX_HALF);
  s += bilinearZero(_Planes, 2 * GROUPS + group, float2(p[_Axes[1].x], p[_Axes[1].y]) / BOX_HALF);
  s += bilinearZero(_Planes, 3 * GROUPS + group, float2(p[_Axes[2].x], p[_Axes[2].y]) / BOX_HALF);
  return s;
}

float softplus(float x) {
  if (x > 20.0) return x;
  if (x < -20.0) return exp(x);
  return log(1.0 + exp(x));
}

float sigmoid(float x) { return 1.0 / (1.0 + exp(-x)); }

// ---- the decoder ----------------------------------------------------------------------------------------
float density(float3 p) {
  float4 f[MAX_GROUPS];
  for (int n = 0; n < _DensityGroupCount; ++n) f[n] = sumPlanes(p, int(_DensityGroups[n]));
  float o = _DensityBias;
  for (int j = 0; j < _DensityHidden; ++j) {
    float4 unit = _DensityField.Load(int3(0, j, 0));
    float h = unit.x;
    int reads = int(_DensityField.Load(int3(1, j, 0)).x);
    for (int m = 0; m < _DensityGroupCount; ++m) {
      if (((reads >> m) & 1) == 1) h += dot(_DensityField.Load(int3(2 + m, j, 0)), f[m]);
    }
    o += softplus(h) * unit.y;
  }
  return softplus(o - DENSITY_SHIFT);
}

float3 colour(float3 p) {
  float4 f[MAX_GROUPS];
  for (int n = 0; n < _ColourGroupCount; ++n) f[n] = sumPlanes(p, int(_ColourGroups[n]));
  float3 o = _ColourBias;
  for (int j = 0; j < _ColourHidden; ++j) {
    float4 unit = _ColourField.Load(int3(0, j, 0));
    float h = unit.x;
    int reads = int(_ColourField.Load(int3(1, j, 0)).x);
    for (int m = 0; m < _ColourGroupCount; ++m) {
      if (((reads >> m) & 1) == 1) h += dot(_ColourField.Load(int3(2 + m, j, 0)), f[m]);
    }
    o += softplus(h) * unit.yzw;
  }
  return float3(sigmoid(o.x), sigmoid(o.y), sigmoid(o.z)) * (1.0 + 2.0 * SIGMOID_WIDEN) - SIGMOID_WIDEN;
}

// Full-screen triangle (vertex id 0, 1, 2), as front_plane.glsl's COPY vertex shader.
float4 FullscreenVert(uint id : SV_VertexID) : SV_Position {
  return float4(float((id & 1) * 4) - 1.0, float((id & 2) * 2) - 1.0, 0.0, 1.0);
}

#ifdef PASS_SPAN
// SV_Position has its origin at the top left in D3D, so rows count from the top, as the GLSL's texel rows
// of the span target do (that target is internal: only the two passes must agree).
float2 SpanFrag(float4 position : SV_Position) : SV_Target {
  int2 cell = int2(position.xy);
  float3 o, d;
  cameraRay(2 * cell.x, 2 * cell.y, o, d);
  float2 ab = boxInterval(o, d);
  float size = 2.0 * BOX_HALF / float(COARSE_RES);
  float first = BIG, last = -BIG;
  if (ab.x < ab.y) {
    for (int k = 0; k < 4 * COARSE_RES; ++k) {
      float t = ab.x + size * float(k);
      if (!(t <= ab.y)) break;
      if (occupiedCoarse(o + d * t)) {
        if (first == BIG) first = t - size / 2.0;
        last = t + size / 2.0;
      }
    }
  }
  return float2(first, last);
}
#endif

#ifdef PASS_MARCH
Texture2D<float2> _Spans;
float3 _Background;

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
float refineSurface(float3 o, float3 d, float t, float optical, float stepLen, out float tColour) {
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

// Image rows from the top: SV_Position.y in D3D (GLSL flips gl_FragCoord.y). On a target Unity flips
// (UNITY_UV_STARTS_AT_TOP false, e.g. OpenGL) the host flips the result when it samples it.
float4 MarchFrag(float4 position : SV_Position) : SV_Target {
  int x = int(position.x);
  int y = int(position.y);
  float3 o, d;
  cameraRay(x, y, o, d);
  float2 ab = boxInterval(o, d);
  float3 rgb = float3(0.0, 0.0, 0.0);
  float alpha = 0.0;
  if (ab.x < ab.y) {
    int2 scanned = (_ImageSize + 1) / 2;
    int r0 = y / 2, r1 = min((y + 1) / 2, scanned.y - 1);
    int c0 = x / 2, c1 = min((x + 1) / 2, scanned.x - 1);
    float2 s00 = _Spans.Load(int3(c0, r0, 0)), s01 = _Spans.Load(int3(c1, r0, 0));
    float2 s10 = _Spans.Load(int3(c0, r1, 0)), s11 = _Spans.Load(int3(c1, r1, 0));
    float first = max(min(min(s00.x, s01.x), min(s10.x, s11.x)), ab.x);
    float last = min(max(max(s00.y, s01.y), max(s10.y, s11.y)), ab.y);
    if (first < last) {
      float stepLen = 2.0 * BOX_HALF / float(FINE_RES);
      float trans = 1.0, kept = 0.0;
      float3 colourSum = float3(0.0, 0.0, 0.0);
      float start = first;
      float lastOptical = 0.0;   // of the previous sample
      for (int r = 0; r < 4 * FINE_RES; ++r) {
        float roundTrans = 1.0, t = start;
        for (int j = 0; j < SAMPLES_PER_ROUND; ++j) {
          t = start + stepLen * float(j);
          float3 p = o + d * t;
          if (!(t <= last) || !occupiedFine(p)) {   // past the span or an empty cell: density 0
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
          if (w > WEIGHT_EPS) {
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
      rgb = kept > 0.0 ? colourSum * (alpha / max(kept, 1e-8)) : float3(0.0, 0.0, 0.0);
    }
  }
  return float4(saturate(rgb + (1.0 - alpha) * _Background), 1.0);
}
#endif

#endif  // AVATARFORGE_TRIPLANE_HLSL
