using System;
using System.Collections.Generic;
using System.IO;
using System.Security.Cryptography;
using System.Threading;
using System.Threading.Tasks;
using Cysharp.Net.Http;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Proto = global::AvatarForge.V1;

namespace AvatarForge.Client
{
    /// <summary>A failed call: the gRPC status code and the server's sentence, or a local check (sha256, paths).</summary>
    public sealed class AvatarForgeException : Exception
    {
        public StatusCode Code { get; }
        public string Detail { get; }

        public AvatarForgeException(StatusCode code, string detail, Exception inner = null)
            : base(code + ": " + detail, inner)
        {
            Code = code;
            Detail = detail;
        }

        internal static AvatarForgeException From(RpcException e)
        {
            string detail = string.IsNullOrEmpty(e.Status.Detail) ? "the call failed without a message" : e.Status.Detail;
            return new AvatarForgeException(e.StatusCode, detail, e);
        }
    }

    [Serializable]
    public sealed class AvatarForgeClientOptions
    {
        /// <summary>host:port of the server (plaintext h2c unless UseTls).</summary>
        public string Address = "127.0.0.1:50051";
        /// <summary>Sent as "authorization: Bearer &lt;token&gt;"; empty = none.</summary>
        public string Token = "";
        public bool UseTls;
        /// <summary>PEM roots; empty = the platform's roots.</summary>
        public string RootCertificatesPem = "";
        /// <summary>Mutual TLS: PEM chain and key, both or neither.</summary>
        public string ClientCertificatePem = "";
        public string ClientKeyPem = "";
        /// <summary>Deadline for unary calls and for Create/Export as a whole; 0 = none.</summary>
        public float CallTimeoutSeconds = 300f;
        /// <summary>Frames up to 2048^2 with depth need ~36 MB.</summary>
        public int MaxReceiveMessageBytes = 64 * 1024 * 1024;
    }

    /// <summary>
    /// The AvatarForge API over grpc-dotnet. Unity's own HTTP stack has no HTTP/2, so the channel runs
    /// on Cysharp's YetAnotherHttpHandler (h2c for loopback servers, TLS and mutual TLS otherwise).
    /// All methods are thread-safe; one client per server is enough for a whole application.
    /// </summary>
    public sealed class AvatarForgeClient : IDisposable
    {
        readonly GrpcChannel channel;
        readonly Proto.AvatarForge.AvatarForgeClient stub;
        readonly AvatarForgeClientOptions options;

        public AvatarForgeClientOptions Options { get { return options; } }

        public AvatarForgeClient(AvatarForgeClientOptions options)
        {
            if (options == null) throw new ArgumentNullException("options");
            if (string.IsNullOrWhiteSpace(options.Address)) throw new ArgumentException("the server address is empty");
            if (string.IsNullOrEmpty(options.ClientCertificatePem) != string.IsNullOrEmpty(options.ClientKeyPem))
                throw new ArgumentException("mutual TLS needs both a client certificate and its key, or neither");
            this.options = options;

            var handler = new YetAnotherHttpHandler { Http2Only = true };
            if (options.UseTls)
            {
                if (!string.IsNullOrEmpty(options.RootCertificatesPem)) handler.RootCertificates = options.RootCertificatesPem;
                if (!string.IsNullOrEmpty(options.ClientCertificatePem))
                {
                    handler.ClientAuthCertificates = options.ClientCertificatePem;
                    handler.ClientAuthKey = options.ClientKeyPem;
                }
            }
            string scheme = options.UseTls ? "https://" : "http://";
            string address = options.Address.Contains("://") ? options.Address : scheme + options.Address;
            channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions
            {
                HttpHandler = handler,
                DisposeHttpClient = true,
                MaxReceiveMessageSize = options.MaxReceiveMessageBytes,
                MaxSendMessageSize = options.MaxReceiveMessageBytes,
            });
            stub = new Proto.AvatarForge.AvatarForgeClient(channel);
        }

        public void Dispose()
        {
            channel.Dispose();
        }

        internal Metadata Headers()
        {
            var headers = new Metadata();
            if (!string.IsNullOrEmpty(options.Token)) headers.Add("authorization", "Bearer " + options.Token);
            return headers;
        }

        internal DateTime? Deadline()
        {
            if (options.CallTimeoutSeconds <= 0) return null;
            return DateTime.UtcNow.AddSeconds(options.CallTimeoutSeconds);
        }

        static async Task<T> Guard<T>(Func<Task<T>> call)
        {
            try { return await call().ConfigureAwait(false); }
            catch (RpcException e) { throw AvatarForgeException.From(e); }
        }

        /// <summary>Uploads a portrait (PNG/JPEG/WebP bytes); progress is reported as the server works.</summary>
        public Task<Proto.AvatarInfo> CreateAvatarAsync(byte[] portrait, string displayName = "", IProgress<Proto.Progress> progress = null,
                                                         string generator = "", CancellationToken cancellationToken = default(CancellationToken))
        {
            if (portrait == null || portrait.Length == 0) throw new ArgumentException("the portrait is empty");
            var request = new Proto.CreateAvatarRequest
            {
                Portrait = ByteString.CopyFrom(portrait),
                DisplayName = displayName ?? "",
                Generator = generator ?? "",
            };
            return Guard(async () =>
            {
                using (var call = stub.CreateAvatar(request, Headers(), Deadline(), cancellationToken))
                {
                    Proto.AvatarInfo avatar = null;
                    while (await call.ResponseStream.MoveNext(cancellationToken).ConfigureAwait(false))
                    {
                        var e = call.ResponseStream.Current;
                        if (e.EventCase == Proto.CreateAvatarEvent.EventOneofCase.Progress)
                        {
                            if (progress != null) progress.Report(e.Progress);
                        }
                        else if (e.EventCase == Proto.CreateAvatarEvent.EventOneofCase.Avatar)
                        {
                            avatar = e.Avatar;
                        }
                    }
                    if (avatar == null)
                        throw new AvatarForgeException(StatusCode.DataLoss, "the server ended CreateAvatar without sending the avatar");
                    return avatar;
                }
            });
        }

        public Task<Proto.AvatarInfo> GetAvatarAsync(string avatarId, bool includeThumbnail = false,
                                                     CancellationToken cancellationToken = default(CancellationToken))
        {
            var request = new Proto.GetAvatarRequest { AvatarId = avatarId ?? "", IncludeThumbnail = includeThumbnail };
            return Guard(() => stub.GetAvatarAsync(request, Headers(), Deadline(), cancellationToken).ResponseAsync);
        }

        /// <summary>Every avatar on the server (follows the pages).</summary>
        public Task<List<Proto.AvatarInfo>> ListAvatarsAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            return Guard(async () =>
            {
                var all = new List<Proto.AvatarInfo>();
                var request = new Proto.ListAvatarsRequest();
                while (true)
                {
                    var page = await stub.ListAvatarsAsync(request, Headers(), Deadline(), cancellationToken).ResponseAsync.ConfigureAwait(false);
                    all.AddRange(page.Avatars);
                    if (string.IsNullOrEmpty(page.NextPageToken)) return all;
                    if (page.NextPageToken == request.PageToken)
                        throw new AvatarForgeException(StatusCode.DataLoss, "the server repeated the same page token");
                    request.PageToken = page.NextPageToken;
                }
            });
        }

        public Task<bool> DeleteAvatarAsync(string avatarId, CancellationToken cancellationToken = default(CancellationToken))
        {
            var request = new Proto.DeleteAvatarRequest { AvatarId = avatarId ?? "" };
            return Guard(async () =>
                (await stub.DeleteAvatarAsync(request, Headers(), Deadline(), cancellationToken).ResponseAsync.ConfigureAwait(false)).Deleted);
        }

        public Task<Proto.Frame> RenderAsync(Proto.RenderRequest request, CancellationToken cancellationToken = default(CancellationToken))
        {
            return Guard(() => stub.RenderAsync(request, Headers(), Deadline(), cancellationToken).ResponseAsync);
        }

        public Task<Proto.ServerInfo> GetServerInfoAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            return Guard(() => stub.GetServerInfoAsync(new Proto.GetServerInfoRequest(), Headers(), Deadline(), cancellationToken).ResponseAsync);
        }

        /// <summary>Opens a live RenderStream; frames arrive through the session's events on a background thread.</summary>
        public Task<RenderStreamSession> StartRenderStreamAsync(string avatarId, Proto.FrameOptions options, Proto.StreamMode mode,
                                                                CancellationToken cancellationToken = default(CancellationToken))
        {
            var call = stub.RenderStream(Headers(), null, cancellationToken);
            var session = new RenderStreamSession(call);
            return Guard(async () =>
            {
                await session.StartAsync(new Proto.StreamStart { AvatarId = avatarId ?? "", Options = options ?? new Proto.FrameOptions(), Mode = mode })
                             .ConfigureAwait(false);
                return session;
            });
        }

        /// <summary>
        /// Opens a TrackFace stream: send JPEG/PNG frames with TrackFaceSession.SendAsync, receive ARKit
        /// weights (canonical order), head pose, eye rotations and a confidence per tracked frame.
        /// frameRate (0 = 30) times frames sent without their own time; LATEST_WINS keeps a live webcam current.
        /// </summary>
        public Task<TrackFaceSession> StartTrackFaceAsync(Proto.StreamMode mode, float frameRate = 0f, bool withoutSmoothing = false,
                                                          CancellationToken cancellationToken = default(CancellationToken))
        {
            var call = stub.TrackFace(Headers(), null, cancellationToken);
            var session = new TrackFaceSession(call);
            return Guard(async () =>
            {
                await session.StartAsync(new Proto.TrackStart { Mode = mode, FrameRate = frameRate, WithoutSmoothing = withoutSmoothing })
                             .ConfigureAwait(false);
                return session;
            });
        }

        /// <summary>
        /// Writes every exported file under outDir, each first to "name.part" and renamed only after its
        /// size and sha256 match what the server announced; on failure nothing partial is left behind.
        /// Returns the written paths in arrival order.
        /// </summary>
        public Task<List<string>> ExportAsync(string avatarId, IEnumerable<Proto.ExportFormat> formats, string outDir,
                                              Proto.ExportOptions exportOptions = null, IEnumerable<Proto.AnimationSource> animationSources = null,
                                              IProgress<Proto.Progress> progress = null,
                                              CancellationToken cancellationToken = default(CancellationToken))
        {
            var request = new Proto.ExportRequest { AvatarId = avatarId ?? "", Options = exportOptions ?? new Proto.ExportOptions() };
            request.Formats.AddRange(formats);
            if (request.Formats.Count == 0) throw new ArgumentException("no export format was requested");
            if (animationSources != null) request.AnimationSource.AddRange(animationSources);
            string root = Path.GetFullPath(outDir);
            Directory.CreateDirectory(root);

            return Guard(async () =>
            {
                var writer = new ExportWriter(root);
                try
                {
                    using (var call = stub.Export(request, Headers(), Deadline(), cancellationToken))
                    {
                        while (await call.ResponseStream.MoveNext(cancellationToken).ConfigureAwait(false))
                        {
                            var e = call.ResponseStream.Current;
                            if (e.EventCase == Proto.ExportEvent.EventOneofCase.Progress)
                            {
                                if (progress != null) progress.Report(e.Progress);
                            }
                            else if (e.EventCase == Proto.ExportEvent.EventOneofCase.Chunk)
                            {
                                writer.Add(e.Chunk);
                            }
                        }
                    }
                    return writer.Finish();
                }
                catch
                {
                    writer.Abort();
                    throw;
                }
            });
        }

        /// <summary>Assembles FileChunks into verified files.</summary>
        sealed class ExportWriter
        {
            sealed class Pending
            {
                public string FinalPath;
                public string TempPath;
                public FileStream Stream;
                public IncrementalHash Hash;
                public ulong Written;
            }

            readonly string root;
            readonly Dictionary<string, Pending> pending = new Dictionary<string, Pending>();
            readonly List<string> completed = new List<string>();
            readonly HashSet<string> seen = new HashSet<string>();

            public ExportWriter(string root) { this.root = root; }

            string Resolve(string relative)
            {
                // The server names the files; never let a name escape the output directory.
                if (string.IsNullOrEmpty(relative) || Path.IsPathRooted(relative))
                    throw new AvatarForgeException(StatusCode.DataLoss, "export file path '" + relative + "' is not relative");
                string full = Path.GetFullPath(Path.Combine(root, relative));
                string prefix = root.EndsWith(Path.DirectorySeparatorChar.ToString()) ? root : root + Path.DirectorySeparatorChar;
                if (!full.StartsWith(prefix, StringComparison.Ordinal))
                    throw new AvatarForgeException(StatusCode.DataLoss, "export file path '" + relative + "' leaves the output directory");
                return full;
            }

            public void Add(Proto.FileChunk chunk)
            {
                Pending p;
                if (!pending.TryGetValue(chunk.Path, out p))
                {
                    if (!seen.Add(chunk.Path))
                        throw new AvatarForgeException(StatusCode.DataLoss, "export sent file '" + chunk.Path + "' twice");
                    p = new Pending { FinalPath = Resolve(chunk.Path) };
                    p.TempPath = p.FinalPath + ".part";
                    Directory.CreateDirectory(Path.GetDirectoryName(p.FinalPath));
                    p.Stream = new FileStream(p.TempPath, FileMode.Create, FileAccess.Write);
                    p.Hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                    pending[chunk.Path] = p;
                }
                if (chunk.Offset != p.Written)
                    throw new AvatarForgeException(StatusCode.DataLoss, "export chunk of '" + chunk.Path + "' starts at byte " + chunk.Offset +
                                                                        " but " + p.Written + " bytes were received");
                byte[] data = chunk.Data.ToByteArray();
                p.Stream.Write(data, 0, data.Length);
                p.Hash.AppendData(data);
                p.Written += (ulong)data.Length;
                if (!chunk.Last) return;

                p.Stream.Dispose();
                if (chunk.Size != p.Written)
                    throw new AvatarForgeException(StatusCode.DataLoss, "export file '" + chunk.Path + "' announced " + chunk.Size +
                                                                        " bytes but " + p.Written + " arrived");
                string digest = BitConverter.ToString(p.Hash.GetHashAndReset()).Replace("-", "").ToLowerInvariant();
                if (digest != chunk.Sha256)
                    throw new AvatarForgeException(StatusCode.DataLoss, "export file '" + chunk.Path + "' has sha256 " + digest +
                                                                        " but the server announced " + chunk.Sha256);
                if (File.Exists(p.FinalPath)) File.Delete(p.FinalPath);
                File.Move(p.TempPath, p.FinalPath);
                completed.Add(p.FinalPath);
                pending.Remove(chunk.Path);
            }

            public List<string> Finish()
            {
                foreach (var name in pending.Keys)
                    throw new AvatarForgeException(StatusCode.DataLoss, "export ended before file '" + name + "' was complete");
                return completed;
            }

            public void Abort()
            {
                foreach (var p in pending.Values)
                {
                    p.Stream.Dispose();
                    if (File.Exists(p.TempPath)) File.Delete(p.TempPath);
                }
                pending.Clear();
                foreach (var path in completed)
                    if (File.Exists(path)) File.Delete(path);
                completed.Clear();
            }
        }
    }
}
