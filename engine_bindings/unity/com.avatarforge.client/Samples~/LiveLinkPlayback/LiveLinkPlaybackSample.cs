using AvatarForge.Core;
using UnityEngine;

namespace AvatarForge.Samples
{
    /// <summary>
    /// Logs what an ExpressionDriver is about to play: the recording's length and the strongest
    /// blendshape of its first frame, named in all three orders (canonical, Unreal, Live Link column).
    /// </summary>
    [RequireComponent(typeof(ExpressionDriver))]
    public sealed class LiveLinkPlaybackSample : MonoBehaviour
    {
        [SerializeField] TextAsset liveLinkCsv;

        void Start()
        {
            if (liveLinkCsv == null) return;
            var recording = LiveLinkRecording.Parse(liveLinkCsv.text, LiveLinkRecording.DefaultFrameRate, liveLinkCsv.name);
            float[] first = recording.Frames[0].Weights;
            int strongest = 0;
            for (int c = 1; c < first.Length; c++) if (first[c] > first[strongest]) strongest = c;
            var driver = GetComponent<ExpressionDriver>();
            string column = driver.Table != null ? ", Live Link column " + driver.Table.Targets[strongest].LiveLinkColumn : "";
            Debug.Log(string.Format("{0}: {1} frames over {2:0.00} s; strongest first-frame shape {3} (Unreal {4}{5}) = {6:0.00}",
                                    liveLinkCsv.name, recording.Frames.Count, recording.Frames[recording.Frames.Count - 1].Time,
                                    ExpressionNames.Canonical[strongest], ExpressionNames.Unreal[ExpressionNames.CanonicalToUnreal[strongest]],
                                    column, first[strongest]), this);
        }
    }
}
