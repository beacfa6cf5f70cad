using System;
using System.Threading;
using System.Threading.Tasks;
using Grpc.Core;
using Proto = global::AvatarForge.V1;

namespace AvatarForge.Client
{
    /// <summary>
    /// One RenderStream call. Requests are written one at a time (gRPC allows a single writer);
    /// frames are read by a background task and raised through FrameReceived on that task's thread,
    /// so Unity code must hand them to the main thread (AvatarStreamView does).
    /// </summary>
    public sealed class RenderStreamSession : IDisposable
    {
        readonly AsyncDuplexStreamingCall<Proto.RenderStreamRequest, Proto.Frame> call;
        readonly SemaphoreSlim writeLock = new SemaphoreSlim(1, 1);
        long nextSeq;
        long accounted;
        volatile bool closed;
        bool writesCompleted;
        Task readLoop;

        /// <summary>Raised on a background thread for every frame, in server order.</summary>
        public event Action<Proto.Frame> FrameReceived;
        /// <summary>Raised once on a background thread when the stream ends; null for a clean end or Dispose().</summary>
        public event Action<AvatarForgeException> Closed;

        public bool IsOpen { get { return !closed; } }
        /// <summary>Requests sent so far (also the last seq assigned).</summary>
        public long Sent { get { return Interlocked.Read(ref nextSeq); } }
        /// <summary>Requests answered or skipped by the server (frames plus their Dropped counts).</summary>
        public long Accounted { get { return Interlocked.Read(ref accounted); } }

        internal RenderStreamSession(AsyncDuplexStreamingCall<Proto.RenderStreamRequest, Proto.Frame> call)
        {
            this.call = call;
        }

        internal async Task StartAsync(Proto.StreamStart start)
        {
            await call.RequestStream.WriteAsync(new Proto.RenderStreamRequest { Start = start }).ConfigureAwait(false);
            readLoop = Task.Run(ReadLoop);
        }

        async Task ReadLoop()
        {
            AvatarForgeException failure = null;
            try
            {
                while (await call.ResponseStream.MoveNext(CancellationToken.None).ConfigureAwait(false))
                {
                    var frame = call.ResponseStream.Current;
                    Interlocked.Add(ref accounted, 1 + (long)frame.Dropped);
                    var handler = FrameReceived;
                    if (handler != null) handler(frame);
                }
            }
            catch (RpcException e)
            {
                if (!(disposed && e.StatusCode == StatusCode.Cancelled)) failure = AvatarForgeException.From(e);
            }
            catch (Exception e)
            {
                failure = new AvatarForgeException(StatusCode.Unknown, "the frame handler failed: " + e.Message, e);
            }
            closed = true;
            var closedHandler = Closed;
            if (closedHandler != null) closedHandler(failure);
        }

        volatile bool disposed;

        /// <summary>Sends one frame request; assigns and returns its seq. Returns 0 once the stream has ended.</summary>
        public async Task<long> SendAsync(Proto.FrameRequest request)
        {
            if (closed) return 0;
            await writeLock.WaitAsync().ConfigureAwait(false);
            try
            {
                if (closed || writesCompleted) return 0;
                long seq = Interlocked.Increment(ref nextSeq);
                request.Seq = (ulong)seq;
                await call.RequestStream.WriteAsync(new Proto.RenderStreamRequest { Frame = request }).ConfigureAwait(false);
                return seq;
            }
            catch (RpcException)
            {
                // The read loop reports the call's status through Closed.
                return 0;
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

        /// <summary>No more requests; completes when the server has answered the pending ones.</summary>
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
