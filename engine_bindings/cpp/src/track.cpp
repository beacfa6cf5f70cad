// Client::Track: one TrackFace stream, frames written from a helper thread while answers are read.
#include <thread>

#include "internal.h"

namespace avatarforge {

namespace pb = internal::pb;

TrackResult Client::Track(const std::vector<TrackFrame>& frames, const TrackOptions& options) {
  auto context = impl_->connection.NewContext(/*with_deadline=*/false);
  auto call = impl_->connection.stub->TrackFace(context.get());

  pb::TrackFaceRequest start;
  start.mutable_start()->set_mode(static_cast<pb::StreamMode>(options.mode));
  start.mutable_start()->set_frame_rate(options.frame_rate);
  start.mutable_start()->set_without_smoothing(options.without_smoothing);

  // The writer stops at the first failed write: the call is over and Finish() has the status.
  std::thread writer([&] {
    if (!call->Write(start)) return;
    for (const TrackFrame& frame : frames) {
      pb::TrackFaceRequest request;
      auto* f = request.mutable_frame();
      f->set_seq(frame.seq);
      f->set_image(frame.image);
      f->set_time_s(frame.time_s);
      if (!call->Write(request)) return;
    }
    call->WritesDone();
  });

  TrackResult result;
  pb::TrackFaceResponse response;
  while (call->Read(&response)) {
    if (response.has_header()) {
      result.channel_names.assign(response.header().channel_names().begin(),
                                  response.header().channel_names().end());
      result.eye_names.assign(response.header().eye_names().begin(), response.header().eye_names().end());
    } else if (response.has_face()) {
      result.faces.push_back(internal::FromProto(response.face()));
    }
  }
  writer.join();
  internal::CheckStatus(call->Finish());
  return result;
}

}  // namespace avatarforge
