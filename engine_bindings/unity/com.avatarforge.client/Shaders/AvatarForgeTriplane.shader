// The triplane raymarcher's two full-screen passes (AvatarForgeTriplane.hlsl): Span renders the coarse
// spans into an RGFloat target of ((w + 1) / 2, (h + 1) / 2); March renders the image, reading them.
// Draw each with Graphics.DrawProcedural / CommandBuffer.DrawProcedural(Matrix4x4.identity, material,
// pass, MeshTopology.Triangles, 3).
Shader "Hidden/AvatarForge/Triplane"
{
    SubShader
    {
        Cull Off ZWrite Off ZTest Always
        Pass
        {
            Name "Span"
            HLSLPROGRAM
            #pragma target 4.5
            #pragma vertex FullscreenVert
            #pragma fragment SpanFrag
            #include "AvatarForgeTriplaneConfig.hlsl"
            #define PASS_SPAN
            #include "AvatarForgeTriplane.hlsl"
            ENDHLSL
        }
        Pass
        {
            Name "March"
            HLSLPROGRAM
            #pragma target 4.5
            #pragma vertex FullscreenVert
            #pragma fragment MarchFrag
            #include "AvatarForgeTriplaneConfig.hlsl"
            #define PASS_MARCH
            #include "AvatarForgeTriplane.hlsl"
            ENDHLSL
        }
    }
}
