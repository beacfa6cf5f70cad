#include <atomic>
#include <mutex>
#include <thread>

#include "internal.h"

namespace avatarforge {

namespace pb = internal::pb;

struct RenderStream::State {
  std::shared_ptr<grpc::Channel> channel;  // keeps the connection alive even if the Client goes first
  std::unique_ptr<grpc::ClientContext> context;
  std::unique_ptr<grpc::ClientReaderWriter<pb::RenderStreamRequest, pb::Frame>> call;
  FrameCallback on_frame;
  ClosedCallback on_closed;

  // Guards writes and the end-of-call bookkeeping: gRPC allows one writer and one reader at a
  // time, and Finish() must not race a Write().
  std::mutex mutex;
  bool closed = false;
  bool writes_done = false;
  std::atomic<bool> cancelled{false};
  grpc::Status status;
  std::optional<Error> callback_error;

  std::thread reader;
  std::atomic<std::thread::id> reader_id{};
  // Set when the RenderStream is destroyed from inside one of its own callbacks: the reader
  // thread then owns this state and frees it when its loop ends.
  bool self_owned = false;

  void ReadLoop();
  std::optional<Error> Outcome() const;
};

void RenderStream::State::ReadLoop() {
  reader_id = std::this_thread::get_id();
  pb::Frame frame;
  while (call->Read(&frame)) {
    if (callback_error) {
      frame.Clear();
      continue;  // draining after a failed callback; the call is already cancelled
    }
    try {
      on_frame(internal::FromProto(std::move(frame)));
    } catch (const Error& e) {
      callback_error = e;
      context->TryCancel();
    } catch (const std::exception& e) {
      callback_error = Error(grpc::StatusCode::UNKNOWN, std::string("the frame callback failed: ") + e.what());
      context->TryCancel();
    }
    frame.Clear();
  }
  {
    std::lock_guard<std::mutex> lock(mutex);
    status = call->Finish();
    closed = true;
  }
  if (on_closed) {
    const std::optional<Error> error = Outcome();
    on_closed(error ? &*error : nullptr);
  }
  if (self_owned) delete this;
}

std::optional<Error> RenderStream::State::Outcome() const {
  if (callback_error) return callback_error;
  if (status.ok()) return std::nullopt;
  if (cancelled && status.error_code() == grpc::StatusCode::CANCELLED) return std::nullopt;
  std::string message = status.error_message();
  if (message.empty()) message = "the render stream failed without a message";
  return Error(status.error_code(), message);
}

RenderStream::RenderStream(std::unique_ptr<State> state) : state_(std::move(state)) {}

RenderStream::~RenderStream() {
  if (!state_) return;
  if (std::this_thread::get_id() == state_->reader_id) {
    // Joining would wait for ourselves: hand the state to the reader thread instead.
    state_->cancelled = true;
    state_->context->TryCancel();
    state_->self_owned = true;
    state_->reader.detach();
    (void)state_.release();
    return;
  }
  if (state_->reader.joinable()) Cancel();
}

bool RenderStream::Send(const FrameParams& params) {
  pb::RenderStreamRequest request;
  internal::ToProto(params, request.mutable_frame());
  std::lock_guard<std::mutex> lock(state_->mutex);
  if (state_->closed || state_->writes_done) return false;
  return state_->call->Write(request);
}

void RenderStream::Cancel() {
  state_->cancelled = true;
  state_->context->TryCancel();
  if (std::this_thread::get_id() == state_->reader_id) return;  // the loop ends by itself
  if (state_->reader.joinable()) state_->reader.join();
}

void RenderStream::Finish() {
  if (std::this_thread::get_id() == state_->reader_id) {
    throw std::logic_error("RenderStream::Finish() cannot be called from the frame callback");
  }
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    if (!state_->closed && !state_->writes_done) {
      state_->call->WritesDone();
      state_->writes_done = true;
    }
  }
  if (state_->reader.joinable()) state_->reader.join();
  if (auto error = state_->Outcome()) throw *error;
}

bool RenderStream::Open() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return !state_->closed;
}

std::unique_ptr<RenderStream> Client::StartRenderStream(const std::string& avatar_id, const FrameOptions& options,
                                                        StreamMode mode, RenderStream::FrameCallback on_frame,
                                                        RenderStream::ClosedCallback on_closed) {
  if (!on_frame) throw Error(grpc::StatusCode::INVALID_ARGUMENT, "a render stream needs a frame callback");
  pb::RenderStreamRequest start;
  start.mutable_start()->set_avatar_id(avatar_id);
  internal::ToProto(options, start.mutable_start()->mutable_options());
  start.mutable_start()->set_mode(static_cast<pb::StreamMode>(mode));

  auto state = std::make_unique<RenderStream::State>();
  state->channel = impl_->connection.channel;
  state->context = impl_->connection.NewContext(/*with_deadline=*/false);
  state->on_frame = std::move(on_frame);
  state->on_closed = std::move(on_closed);
  state->call = impl_->connection.stub->RenderStream(state->context.get());
  // A failed first write means the call is already over; the reader thread collects the status.
  state->call->Write(start);
  RenderStream::State* raw = state.get();
  state->reader = std::thread([raw] { raw->ReadLoop(); });
  return std::unique_ptr<RenderStream>(new RenderStream(std::move(state)));
}

}  // namespace avatarforge
