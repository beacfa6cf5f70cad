#include "internal.h"

#include <cctype>

namespace avatarforge {

Error::Error(grpc::StatusCode code, const std::string& message)
    : std::runtime_error(std::string(StatusCodeName(code)) + ": " + message), code_(code), detail_(message) {}

const char* StatusCodeName(grpc::StatusCode code) noexcept {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    default: return "UNKNOWN";
  }
}

ExportFormat ParseExportFormat(const std::string& name) {
  std::string lower;
  for (char c : name) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (lower == "glb") return ExportFormat::kGlb;
  if (lower == "tables") return ExportFormat::kTables;
  if (lower == "animation") return ExportFormat::kAnimation;
  if (lower == "triplane") return ExportFormat::kTriplane;
  throw Error(grpc::StatusCode::INVALID_ARGUMENT,
              "unknown export format '" + name + "'; expected glb, tables, animation or triplane");
}

namespace internal {

void ThrowStatus(const grpc::Status& status) {
  std::string message = status.error_message();
  if (message.empty()) message = "the call failed without a message";
  throw Error(status.error_code(), message);
}

void CheckStatus(const grpc::Status& status) {
  if (!status.ok()) ThrowStatus(status);
}

void ToProto(const Camera& in, pb::Camera* out) {
  if (in.orbit && !in.eg3d.empty()) {
    throw Error(grpc::StatusCode::INVALID_ARGUMENT, "a camera is either an orbit or an EG3D vector, not both");
  }
  if (in.orbit) {
    auto* o = out->mutable_orbit();
    o->set_yaw_deg(in.orbit->yaw_deg);
    o->set_pitch_deg(in.orbit->pitch_deg);
    o->set_roll_deg(in.orbit->roll_deg);
    o->set_radius(in.orbit->radius);
    o->set_fov_deg(in.orbit->fov_deg);
  } else {
    auto* values = out->mutable_eg3d()->mutable_values();
    values->Add(in.eg3d.begin(), in.eg3d.end());
  }
}

void ToProto(const Expression& in, pb::Expression* out) {
  out->mutable_weights()->Add(in.weights.begin(), in.weights.end());
  for (const auto& [name, weight] : in.named) (*out->mutable_named())[name] = weight;
}

void ToProto(const HeadPose& in, pb::HeadPose* out) {
  out->set_yaw(in.yaw);
  out->set_pitch(in.pitch);
  out->set_roll(in.roll);
}

void ToProto(const FrameOptions& in, pb::FrameOptions* out) {
  out->set_width(in.width);
  out->set_height(in.height);
  out->set_encoding(static_cast<pb::Encoding>(in.encoding));
  out->set_jpeg_quality(in.jpeg_quality);
  out->set_include_depth(in.include_depth);
  out->set_include_alpha(in.include_alpha);
  out->mutable_background()->Add(in.background.begin(), in.background.end());
}

void ToProto(const FrameParams& in, pb::FrameRequest* out) {
  out->set_seq(in.seq);
  if (in.camera) ToProto(*in.camera, out->mutable_camera());
  if (in.expression) ToProto(*in.expression, out->mutable_expression());
  if (in.head_pose) ToProto(*in.head_pose, out->mutable_head_pose());
  out->mutable_eye()->Add(in.eye.begin(), in.eye.end());
}

void ToProto(const ExportOptions& in, pb::ExportOptions* out) {
  out->set_texture_size(in.texture_size);
  out->set_static_triangle_budget(in.static_triangle_budget);
  out->set_without_static_parts(in.without_static_parts);
  out->set_without_target_normals(in.without_target_normals);
  out->set_frame_rate(in.frame_rate);
}

AvatarInfo FromProto(const pb::AvatarInfo& in) {
  AvatarInfo out;
  out.avatar_id = in.avatar_id();
  out.generator = in.generator();
  out.generator_version = in.generator_version();
  out.source_sha256 = in.source_sha256();
  out.head_model_id = in.head_model_id();
  out.display_name = in.display_name();
  out.created_unix = in.created_unix();
  out.thumbnail_png = in.thumbnail_png();
  out.portrait_camera.assign(in.portrait_camera().begin(), in.portrait_camera().end());
  out.schema_version = in.schema_version();
  return out;
}

Frame FromProto(pb::Frame&& in) {
  Frame out;
  out.seq = in.seq();
  out.width = in.width();
  out.height = in.height();
  out.encoding = static_cast<Encoding>(in.encoding());
  out.data = std::move(*in.mutable_data());
  out.depth = std::move(*in.mutable_depth());
  out.alpha = std::move(*in.mutable_alpha());
  out.render_ms = in.render_ms();
  out.queue_ms = in.queue_ms();
  out.dropped = in.dropped();
  return out;
}

TrackedFace FromProto(const pb::TrackedFace& in) {
  TrackedFace out;
  out.seq = in.seq();
  out.time_s = in.time_s();
  out.found = in.found();
  out.confidence = in.confidence();
  out.weights.assign(in.weights().begin(), in.weights().end());
  out.head_pose = HeadPose{in.head_pose().yaw(), in.head_pose().pitch(), in.head_pose().roll()};
  out.eye.assign(in.eye().begin(), in.eye().end());
  out.dropped = in.dropped();
  out.track_ms = in.track_ms();
  return out;
}

Progress FromProto(const pb::Progress& in) {
  return Progress{in.stage(), in.fraction(), in.message()};
}

ServerInfo FromProto(const pb::ServerInfo& in) {
  ServerInfo out;
  out.version = in.version();
  for (const auto& g : in.generators()) out.generators.push_back({g.name(), g.version(), g.description()});
  out.default_generator = in.default_generator();
  const auto& l = in.limits();
  out.limits = Limits{l.max_portrait_bytes(), l.max_portrait_pixels(), l.max_streams(), l.max_frame_pixels(),
                      l.max_message_bytes(), l.max_track_frames()};
  out.rasterizer_backend = in.rasterizer_backend();
  out.device = in.device();
  out.expression_names.assign(in.expression_names().begin(), in.expression_names().end());
  out.auth_required = in.auth_required();
  return out;
}

std::unique_ptr<grpc::ClientContext> Connection::NewContext(bool with_deadline) const {
  auto context = std::make_unique<grpc::ClientContext>();
  // Per-call metadata rather than CallCredentials: gRPC refuses call credentials on plaintext
  // channels, and a bearer token on a loopback h2c server is a supported setup.
  if (!options.token.empty()) context->AddMetadata("authorization", "Bearer " + options.token);
  if (with_deadline && options.call_timeout.count() > 0) {
    context->set_deadline(std::chrono::system_clock::now() + options.call_timeout);
  }
  return context;
}

}  // namespace internal
}  // namespace avatarforge
