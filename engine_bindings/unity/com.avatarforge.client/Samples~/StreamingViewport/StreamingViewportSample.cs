using System.Collections.Generic;
using UnityEngine;

namespace AvatarForge.Samples
{
    /// <summary>
    /// Put an AvatarStreamView (with settings and an avatar id) and this component on one GameObject,
    /// point the view's Target Image at a RawImage, and press Play: the camera sways and the avatar
    /// smiles and blinks, streamed live from the server.
    /// </summary>
    [RequireComponent(typeof(AvatarStreamView))]
    public sealed class StreamingViewportSample : MonoBehaviour
    {
        [SerializeField, Range(0, 60)] float swayDegrees = 25f;
        [SerializeField, Range(0.05f, 2f)] float swaySpeed = 0.3f;

        AvatarStreamView view;
        readonly Dictionary<string, float> expression = new Dictionary<string, float>();

        void Awake()
        {
            view = GetComponent<AvatarStreamView>();
            view.StreamClosed += error =>
            {
                if (!string.IsNullOrEmpty(error)) Debug.LogWarning("Stream closed: " + error, this);
            };
        }

        void Update()
        {
            float t = Time.time;
            view.SetCamera(Mathf.Sin(t * swaySpeed * Mathf.PI * 2f) * swayDegrees, 5f);
            float smile = 0.5f + 0.5f * Mathf.Sin(t * 0.7f);
            float blink = Mathf.Clamp01(Mathf.Sin(t * 2.1f) * 8f - 7f);
            expression["mouthSmileLeft"] = smile;
            expression["mouthSmileRight"] = smile;
            expression["eyeBlinkLeft"] = blink;
            expression["eyeBlinkRight"] = blink;
            view.SetExpression(expression);
        }
    }
}
