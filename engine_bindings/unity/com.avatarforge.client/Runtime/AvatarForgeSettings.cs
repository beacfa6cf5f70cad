using System;
using AvatarForge.Client;
using UnityEngine;

namespace AvatarForge
{
    /// <summary>
    /// Where the AvatarForge server is and how to authenticate. Keep tokens out of version control:
    /// leave Token empty and set the AVATARFORGE_TOKEN environment variable instead.
    /// </summary>
    [CreateAssetMenu(fileName = "AvatarForgeSettings", menuName = "AvatarForge/Settings")]
    public sealed class AvatarForgeSettings : ScriptableObject
    {
        [Tooltip("host:port of the AvatarForge server")]
        public string serverAddress = "127.0.0.1:50051";
        [Tooltip("Bearer token; empty = AVATARFORGE_TOKEN or none")]
        public string token = "";
        public bool useTls;
        [Tooltip("PEM bundle of trusted roots; empty = the platform's roots")]
        public TextAsset rootCertificates;
        [Tooltip("Mutual TLS client certificate chain (PEM)")]
        public TextAsset clientCertificate;
        [Tooltip("Mutual TLS private key (PEM)")]
        public TextAsset clientKey;
        [Min(0)] public float callTimeoutSeconds = 300f;

        public AvatarForgeClientOptions ToOptions()
        {
            string resolvedToken = string.IsNullOrEmpty(token) ? Environment.GetEnvironmentVariable("AVATARFORGE_TOKEN") ?? "" : token;
            return new AvatarForgeClientOptions
            {
                Address = serverAddress,
                Token = resolvedToken,
                UseTls = useTls,
                RootCertificatesPem = rootCertificates != null ? rootCertificates.text : "",
                ClientCertificatePem = clientCertificate != null ? clientCertificate.text : "",
                ClientKeyPem = clientKey != null ? clientKey.text : "",
                CallTimeoutSeconds = callTimeoutSeconds,
            };
        }

        public AvatarForgeClient CreateClient()
        {
            return new AvatarForgeClient(ToOptions());
        }
    }
}
