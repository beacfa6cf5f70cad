using System;
using System.Threading;
using System.Threading.Tasks;
using Google.Protobuf;
using Grpc.Core;
using AvatarForge.Core;
using Proto = global::AvatarForge.V1;

namespace AvatarForge.Client
{
    /// <summary>
    /// One TrackFace call: JPEG or PNG video frames (e.g. a webcam's) in, one TrackedFace per tracked
    /// frame out. The server sends a header naming the 52 weight channels once; FaceReceived hands each
    /// answer over with its weights already in canonical order. Answers arrive on a background task's
    /// thread: Unity code must hand them to the main thread. In LATEST_WINS the server tracks only the
    /// newest pending frame and reports the skipped ones in TrackedFace.Dropped.
    /// </summary>
    public sealed class TrackFaceSession : IDisposable
    {
        readonly AsyncDuplexStreamingCall<Proto.TrackFaceRequest, Proto.TrackFaceResponse> call;
        readonly SemaphoreSlim writeLock = new SemaphoreSlim(1, 1);
        int[] toCanonical;
        long nextSeq;
        volatile bool closed;
        volatile bool disposed;
        bool writesCompleted;
        Task readLoop;

        /// <summary>Raised on a background thread per answer: the message and its 52 weights in canonical order.</summary>
        public event Action<Proto.TrackedFace, float[]> FaceReceived;
        /// <summary>Raised once on a background thread when the stream ends; null for a clean end or Dispose().</summary>
        public event Action<AvatarForgeException> Closed;

        public bool IsOpen { get { return !closed; } }

        internal TrackFaceSession(AsyncDuplexStreamingCall<Proto.TrackFaceRequest, Proto.TrackFaceResponse> call)
        {
            this.call = call;
        }

        internal async Task StartAsync(Proto.TrackStart start)
        {
            await call.RequestStream.WriteAsync(new Proto.TrackFaceRequest { Start = start }).ConfigureAwait(false);
            readLoop = Task.Run(ReadLoop);
        }

        async Task ReadLoop()
        {
            AvatarForgeException failure = null;
            try
            {
                while (await call.ResponseStream.MoveNext(CancellationToken.None).ConfigureAwait(false))
                {
                    var response = call.ResponseStream.Current;
                    if (response.ResponseCase == Proto.TrackFaceResponse.ResponseOneofCase.Header)
                    {
                        toCanonical = ExpressionNames.ToCanonical(response.Header.ChannelNames);
                        continue;
                    }
                    if (response.ResponseCase != Proto.TrackFaceResponse.ResponseOneofCase.Face) continue;
                    var face = response.Face;
                    var weights = toCanonical == null ? new float[ExpressionNames.Count]
                                                      : ExpressionNames.ToCanonicalOrder(face.Weights, toCanonical);
                    var handler = FaceReceived;
                    if (handler != null) handler(face, weights);
                }
            }
            catch (RpcException e)
            {
                if (!(disposed && e.StatusCode == StatusCode.Cancelled)) failure = AvatarForgeException.From(e);
            }
            catch (Exception e)
            {
                failure = new AvatarForgeException(StatusCode.Unknown, "the face handler failed: " + e.Message, e);
            }
            closed = true;
            var closedHandler = Closed;
            if (closedHandler != null) closedHandler(failure);
        }

        /// <summary>Sends one frame (JPEG or PNG bytes; timeSeconds 0 = seq / frame rate); returns its seq, 0 once the stream has ended.</summary>
        public async Task<long> SendAsync(byte[] image, double timeSeconds = 0)
        {
            if (closed) return 0;
            await writeLock.WaitAsync().ConfigureAwait(false);
            try
            {
                if (closed || writesCompleted) return 0;
                long seq = Interlocked.Increment(ref nextSeq);
                var frame = new Proto.TrackFrame { Seq = (ulong)seq, Image = ByteString.CopyFrom(image ?? new byte[0]), TimeS = timeSeconds };
                await call.RequestStream.WriteAsync(new Proto.TrackFaceRequest { Frame = frame }).ConfigureAwait(false);
                return seq;
            }
            catch (RpcException)
            {
                return 0;  // the read loop reports the call's status through Closed
            }
            catch (InvalidOperationException)
            {
                return 0;
            }
            finally
            {
                writeLock.Release();
            }
        }

        /// <summary>No more frames; completes when the server has answered the pending ones.</summary>
        public async Task FinishAsync()
        {
            await writeLock.WaitAsync().ConfigureAwait(false);
            try
            {
                if (!writesCompleted && !closed)
                {
                    writesCompleted = true;
                    await call.RequestStream.CompleteAsync().ConfigureAwait(false);
                }
            }
            finally
            {
                writeLock.Release();
            }
            if (readLoop != null) await readLoop.ConfigureAwait(false);
        }

        /// <summary>Cancels the call immediately.</summary>
        public void Dispose()
        {
            disposed = true;
            call.Dispose();
        }
    }
}
