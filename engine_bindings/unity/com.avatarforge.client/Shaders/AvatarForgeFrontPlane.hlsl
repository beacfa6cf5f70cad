// AvatarForge front-plane composition, HLSL port of engine_bindings/web/shaders/front_plane.glsl (the
// reference, with the notes): the posed head mesh rasterized orthographically into the xy plane, per
// channel group; a COPY pass writes the static xy plane first, then the MESH pass draws over it with a
// depth test that keeps the nearest surface (the largest z).
// Defines: GROUPS; COPY or MESH. Plain HLSL, as AvatarForgeTriplane.hlsl.
#ifndef AVATARFORGE_FRONT_PLANE_HLSL
#define AVATARFORGE_FRONT_PLANE_HLSL

static const float BOX_HALF_FRONT = 0.5;

Texture2DArray<float4> _Planes;
int2 _PlaneSize;
int _Group;

float4 staticXy(int2 texel, int group) { return _Planes.Load(int4(texel, GROUPS + group, 0)); }

#ifdef COPY
float4 CopyFrag(float4 position : SV_Position) : SV_Target { return staticXy(int2(position.xy), _Group); }
#endif

#ifdef MESH
float4 _Mask;
float4 _DepthWeight;
int _DepthChannel;
float _DepthChannelWeight;

struct MeshVaryings {
  float4 position : SV_Position;
  float2 uv : TEXCOORD0;
  float z : TEXCOORD1;
};

// Plane row 0 is y = -0.5. D3D-style targets put NDC y = +1 at row 0, so y is negated there
// (FRONT_ROW0_AT_TOP 1); GL-style targets keep it. Depth: the nearest (largest z) surface must win with
// ZTest LEqual: D3D's clip z runs 0..1, GL's -1..1, and with a reversed depth buffer (UNITY_REVERSED_Z)
// Unity flips the comparison, so the mapping flips with it.
MeshVaryings MeshVert(float3 position : POSITION, float2 uv : TEXCOORD0) {
  MeshVaryings o;
  o.uv = uv;
  o.z = position.z;
  float y = position.y / BOX_HALF_FRONT;
#if FRONT_ROW0_AT_TOP
  y = -y;
#endif
#if FRONT_REVERSED_Z
  float depth = 0.5 + position.z / (4.0 * BOX_HALF_FRONT);
#else
  float depth = 0.5 - position.z / (4.0 * BOX_HALF_FRONT);
#endif
  o.position = float4(position.x / BOX_HALF_FRONT, y, depth, 1.0);
  return o;
}

float4 neural(int group, float2 uv) {
  float2 size = float2(_PlaneSize);
  float2 pos = clamp(uv * size - 0.5, float2(0.0, 0.0), size - 1.0);
  float2 p0 = floor(pos);
  float2 w = pos - p0;
  int2 i0 = int2(p0);
  int2 i1 = min(i0 + 1, _PlaneSize - 1);
  float4 v00 = _Planes.Load(int4(i0.x, i0.y, group, 0));
  float4 v10 = _Planes.Load(int4(i1.x, i0.y, group, 0));
  float4 v01 = _Planes.Load(int4(i0.x, i1.y, group, 0));
  float4 v11 = _Planes.Load(int4(i1.x, i1.y, group, 0));
  return (1.0 - w.y) * ((1.0 - w.x) * v00 + w.x * v10) + w.y * ((1.0 - w.x) * v01 + w.x * v11);
}

float4 MeshFrag(MeshVaryings i) : SV_Target {
  int2 texel = int2(i.position.xy);  // SV_Position rows count from the top, as the texture's rows do
  float4 base = staticXy(texel, _Group);
  float4 rasterized = neural(_Group, i.uv) + _DepthWeight * i.z;
  float4 m = _Mask;
  if (_DepthChannel >= 0) {
    int g = _DepthChannel / 4, c = _DepthChannel % 4;
    float own = staticXy(texel, g)[c];
    float mesh = neural(g, i.uv)[c] + _DepthChannelWeight * i.z;
    if ((own - mesh) * sign(_DepthChannelWeight) > 0.0) m = float4(0.0, 0.0, 0.0, 0.0);
  }
  return base * (1.0 - m) + rasterized * m;
}
#endif

#endif  // AVATARFORGE_FRONT_PLANE_HLSL
