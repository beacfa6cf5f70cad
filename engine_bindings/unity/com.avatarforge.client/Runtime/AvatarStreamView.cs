using System;
using System.Collections.Generic;
using AvatarForge.Client;
using AvatarForge.Core;
using UnityEngine;
using UnityEngine.UI;
using Proto = global::AvatarForge.V1;

namespace AvatarForge
{
    /// <summary>
    /// Streams an avatar into a Texture2D (and optionally a RenderTexture, a RawImage or a renderer's
    /// material) with RenderStream in LATEST_WINS mode: the server renders only the newest pending
    /// request and this component shows only the newest arrived frame, so a viewport never lags behind.
    /// Change the camera, expression or head pose from the inspector or through the Set* methods.
    /// </summary>
    public sealed class AvatarStreamView : MonoBehaviour
    {
        [SerializeField] AvatarForgeSettings settings;
        [SerializeField] string avatarId = "";
        [SerializeField, Range(16, 2048)] int width = 256;
        [SerializeField, Range(16, 2048)] int height = 256;
        [SerializeField] Color background = Color.black;
        [SerializeField, Range(1, 8), Tooltip("Frame requests in flight before further changes are coalesced")] int maxRequestsInFlight = 2;

        [Header("Camera (degrees)")]
        [SerializeField, Range(-90, 90)] float yaw;
        [SerializeField, Range(-60, 60)] float pitch;
        [SerializeField, Range(-45, 45)] float roll;
        [SerializeField, Min(0), Tooltip("0 = server default (2.7)")] float radius;

        [Header("Outputs (optional)")]
        [SerializeField] RenderTexture targetRenderTexture;
        [SerializeField] RawImage targetImage;
        [SerializeField] Renderer targetRenderer;

        AvatarForgeClient client;
        RenderStreamSession session;
        readonly object frameLock = new object();
        Proto.Frame latestFrame;
        string closedError;
        bool closedPending;
        Texture2D texture;
        byte[] uploadBuffer;
        bool dirty = true;
        float[] weights = new float[ExpressionNames.Count];
        Proto.HeadPose headPose = new Proto.HeadPose();
        bool sending;

        /// <summary>The texture frames are uploaded into (recreated when the frame size changes).</summary>
        public Texture2D Texture { get { return texture; } }
        public bool IsStreaming { get { return session != null && session.IsOpen; } }
        /// <summary>Main thread, after each texture update.</summary>
        public event Action<Texture2D, Proto.Frame> FrameShown;
        /// <summary>Main thread, when the stream ends; the message is empty for a clean stop.</summary>
        public event Action<string> StreamClosed;

        public string AvatarId
        {
            get { return avatarId; }
            set
            {
                if (avatarId == value) return;
                avatarId = value;
                if (isActiveAndEnabled) { StopStream(); StartStream(); }
            }
        }

        /// <summary>52 weights in canonical (alphabetical ARKit) order, each in [0, 1].</summary>
        public void SetExpression(IList<float> canonicalWeights)
        {
            weights = ExpressionNames.ValidateWeights(canonicalWeights);
            dirty = true;
        }

        /// <summary>Name -> weight (ARKit or Unreal spelling); unnamed targets are 0.</summary>
        public void SetExpression(IEnumerable<KeyValuePair<string, float>> named)
        {
            weights = ExpressionNames.WeightsFromMap(named);
            dirty = true;
        }

        public void SetCamera(float yawDegrees, float pitchDegrees, float rollDegrees = 0f, float orbitRadius = 0f)
        {
            yaw = yawDegrees;
            pitch = pitchDegrees;
            roll = rollDegrees;
            radius = orbitRadius;
            dirty = true;
        }

        /// <summary>Whole-head rotation in radians.</summary>
        public void SetHeadPose(float yawRadians, float pitchRadians, float rollRadians)
        {
            headPose = new Proto.HeadPose { Yaw = yawRadians, Pitch = pitchRadians, Roll = rollRadians };
            dirty = true;
        }

        void OnValidate()
        {
            dirty = true;
        }

        void OnEnable()
        {
            StartStream();
        }

        void OnDisable()
        {
            StopStream();
        }

        void OnDestroy()
        {
            if (texture != null) Destroy(texture);
        }

        async void StartStream()
        {
            if (settings == null || string.IsNullOrEmpty(avatarId)) return;
            client = settings.CreateClient();
            var options = new Proto.FrameOptions
            {
                Width = (uint)width,
                Height = (uint)height,
                Encoding = Proto.Encoding.RawRgba8,
            };
            options.Background.Add(new[] { background.r, background.g, background.b });
            try
            {
                var started = await client.StartRenderStreamAsync(avatarId, options, Proto.StreamMode.LatestWins);
                if (!isActiveAndEnabled)
                {
                    started.Dispose();
                    return;
                }
                session = started;
                session.FrameReceived += OnFrameReceived;
                session.Closed += OnClosed;
                dirty = true;
            }
            catch (AvatarForgeException e)
            {
                Debug.LogError("AvatarForge: cannot start the stream: " + e.Message, this);
                if (StreamClosed != null) StreamClosed(e.Message);
            }
        }

        void StopStream()
        {
            if (session != null)
            {
                session.FrameReceived -= OnFrameReceived;
                session.Closed -= OnClosed;
                session.Dispose();
                session = null;
                if (StreamClosed != null) StreamClosed("");
            }
            if (client != null)
            {
                client.Dispose();
                client = null;
            }
        }

        // Background thread: keep only the newest frame; Update uploads it.
        void OnFrameReceived(Proto.Frame frame)
        {
            lock (frameLock) latestFrame = frame;
        }

        void OnClosed(AvatarForgeException error)
        {
            lock (frameLock)
            {
                closedPending = true;
                closedError = error != null ? error.Message : "";
            }
        }

        void Update()
        {
            Proto.Frame frame;
            bool closedNow;
            string error;
            lock (frameLock)
            {
                frame = latestFrame;
                latestFrame = null;
                closedNow = closedPending;
                error = closedError;
                closedPending = false;
            }
            if (frame != null) Show(frame);
            if (closedNow)
            {
                if (!string.IsNullOrEmpty(error)) Debug.LogError("AvatarForge: the stream ended: " + error, this);
                if (session != null)
                {
                    session.Dispose();
                    session = null;
                }
                if (StreamClosed != null) StreamClosed(error);
            }
            if (dirty && !sending && session != null && session.IsOpen && session.Sent - session.Accounted < maxRequestsInFlight)
                SendCurrent();
        }

        async void SendCurrent()
        {
            var request = new Proto.FrameRequest
            {
                Camera = new Proto.Camera { Orbit = new Proto.OrbitCamera { YawDeg = yaw, PitchDeg = pitch, RollDeg = roll, Radius = radius } },
                Expression = new Proto.Expression(),
                HeadPose = headPose,
            };
            request.Expression.Weights.Add(weights);
            dirty = false;
            sending = true;
            try
            {
                if (await session.SendAsync(request) == 0) dirty = true;
            }
            finally
            {
                sending = false;
            }
        }

        void Show(Proto.Frame frame)
        {
            int w = (int)frame.Width, h = (int)frame.Height;
            if (texture == null || texture.width != w || texture.height != h)
            {
                if (texture != null) Destroy(texture);
                texture = new Texture2D(w, h, TextureFormat.RGBA32, false) { name = "AvatarForge " + avatarId, wrapMode = TextureWrapMode.Clamp };
            }
            // Unity textures are bottom row first; the server sends top row first.
            uploadBuffer = RawFrame.Rgba8TopDownToBottomUp(frame.Data.ToByteArray(), w, h, uploadBuffer);
            texture.LoadRawTextureData(uploadBuffer);
            texture.Apply(false);
            if (targetRenderTexture != null) Graphics.Blit(texture, targetRenderTexture);
            if (targetImage != null) targetImage.texture = texture;
            if (targetRenderer != null) targetRenderer.material.mainTexture = texture;
            if (FrameShown != null) FrameShown(texture, frame);
        }
    }
}
