using System.Collections.Generic;
using AvatarForge.Core;
using UnityEngine;

namespace AvatarForge
{
    /// <summary>
    /// Drives ARKit-52 expressions onto a baked avatar (the GLB's SkinnedMeshRenderer blendshapes,
    /// located through its blendshapes.json) and/or a live AvatarStreamView. Weights come from code
    /// (canonical vector or an ARKit name map) or from a Live Link Face CSV played back in time.
    /// </summary>
    public sealed class ExpressionDriver : MonoBehaviour
    {
        [Tooltip("blendshapes.json exported with the avatar")]
        [SerializeField] TextAsset blendshapeTable;
        [Tooltip("The baked head (imported GLB); may be empty when only streaming")]
        [SerializeField] SkinnedMeshRenderer targetMesh;
        [Tooltip("A live stream to send the same weights to; may be empty")]
        [SerializeField] AvatarStreamView targetStream;

        [Header("Live Link Face playback (optional)")]
        [SerializeField] TextAsset liveLinkCsv;
        [SerializeField, Min(1)] float liveLinkFrameRate = 30f;
        [SerializeField] bool loop = true;
        [SerializeField] bool playOnEnable = true;
        [SerializeField] bool applyHeadRotation = true;

        BlendshapeTable table;
        int[] blendshapeIndex;  // canonical index -> SkinnedMeshRenderer blendshape index, -1 when absent
        LiveLinkRecording recording;
        float playbackTime;
        bool playing;
        int cursor;

        public BlendshapeTable Table { get { return table; } }

        void Awake()
        {
            if (blendshapeTable != null) table = BlendshapeTable.Parse(blendshapeTable.text);
            if (liveLinkCsv != null) recording = LiveLinkRecording.Parse(liveLinkCsv.text, liveLinkFrameRate, liveLinkCsv.name);
            ResolveBlendshapes();
        }

        void OnEnable()
        {
            if (playOnEnable && recording != null) Play();
        }

        /// <summary>Maps canonical targets to the mesh's blendshapes by ARKit name (as glTFast names them), else by the table's GLB morph index.</summary>
        void ResolveBlendshapes()
        {
            blendshapeIndex = new int[ExpressionNames.Count];
            for (int c = 0; c < blendshapeIndex.Length; c++) blendshapeIndex[c] = -1;
            if (targetMesh == null || targetMesh.sharedMesh == null) return;
            Mesh mesh = targetMesh.sharedMesh;
            for (int c = 0; c < ExpressionNames.Count; c++)
            {
                int index = mesh.GetBlendShapeIndex(ExpressionNames.Canonical[c]);
                if (index < 0 && table != null && table.Targets[c].GlbMorphIndex < mesh.blendShapeCount)
                    index = table.Targets[c].GlbMorphIndex;
                blendshapeIndex[c] = index;
            }
        }

        /// <summary>52 weights in canonical order, each in [0, 1].</summary>
        public void Apply(IList<float> canonicalWeights)
        {
            float[] weights = ExpressionNames.ValidateWeights(canonicalWeights);
            if (targetMesh != null)
            {
                for (int c = 0; c < weights.Length; c++)
                    if (blendshapeIndex[c] >= 0) targetMesh.SetBlendShapeWeight(blendshapeIndex[c], weights[c] * 100f);
            }
            if (targetStream != null) targetStream.SetExpression(weights);
        }

        /// <summary>ARKit (or Unreal/Live Link) name -> weight; unnamed targets are 0.</summary>
        public void Apply(IEnumerable<KeyValuePair<string, float>> named)
        {
            Apply(ExpressionNames.WeightsFromMap(named));
        }

        /// <summary>Weights listed in Unreal's EARFaceBlendShape order.</summary>
        public void ApplyUnrealOrder(IList<float> unrealWeights)
        {
            Apply(ExpressionNames.ToCanonicalOrder(unrealWeights, ExpressionNames.UnrealToCanonical));
        }

        public void Play()
        {
            playing = recording != null && recording.Frames.Count > 0;
            playbackTime = 0f;
            cursor = 0;
        }

        public void Stop()
        {
            playing = false;
        }

        void Update()
        {
            if (!playing) return;
            playbackTime += Time.deltaTime;
            var frames = recording.Frames;
            double end = frames[frames.Count - 1].Time;
            if (playbackTime > end)
            {
                if (!loop)
                {
                    playing = false;
                    return;
                }
                playbackTime = end > 0 ? (float)(playbackTime % end) : 0f;
                cursor = 0;
            }
            while (cursor + 1 < frames.Count && frames[cursor + 1].Time <= playbackTime) cursor++;
            var frame = frames[cursor];
            Apply(frame.Weights);
            if (applyHeadRotation && frame.HeadRotation != null && targetStream != null)
                targetStream.SetHeadPose(frame.HeadRotation[0], frame.HeadRotation[1], frame.HeadRotation[2]);
        }
    }
}
