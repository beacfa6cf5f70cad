// The front-plane composition (AvatarForgeFrontPlane.hlsl), per channel group g into layer g of a
// RGBAFloat Texture2DArray render target with a depth buffer: pass Copy (full screen, no depth test),
// clear depth, then pass Mesh with the posed head mesh (positions in box units, uv with v up).
Shader "Hidden/AvatarForge/FrontPlane"
{
    SubShader
    {
        Cull Off
        Pass
        {
            Name "Copy"
            ZWrite Off ZTest Always
            HLSLPROGRAM
            #pragma target 4.5
            #pragma vertex FullscreenVert
            #pragma fragment CopyFrag
            #include "AvatarForgeTriplaneConfig.hlsl"
            #define COPY
            #include "AvatarForgeFrontPlane.hlsl"
            float4 FullscreenVert(uint id : SV_VertexID) : SV_Position
            {
                return float4(float((id & 1) * 4) - 1.0, float((id & 2) * 2) - 1.0, 0.0, 1.0);
            }
            ENDHLSL
        }
        Pass
        {
            Name "Mesh"
            ZWrite On ZTest LEqual
            HLSLPROGRAM
            #pragma target 4.5
            #pragma vertex MeshVert
            #pragma fragment MeshFrag
            #include "UnityCG.cginc"
            #define FRONT_ROW0_AT_TOP UNITY_UV_STARTS_AT_TOP
            #define FRONT_REVERSED_Z UNITY_REVERSED_Z
            #include "AvatarForgeTriplaneConfig.hlsl"
            #define MESH
            #include "AvatarForgeFrontPlane.hlsl"
            ENDHLSL
        }
    }
}
