#include <exception>

#include "export_writer.h"
#include "internal.h"

namespace avatarforge {

using internal::CheckStatus;
using internal::FromProto;
using internal::ToProto;
namespace pb = internal::pb;

namespace {

std::shared_ptr<grpc::Channel> MakeChannel(const ClientOptions& options) {
  if (options.address.empty()) throw Error(grpc::StatusCode::INVALID_ARGUMENT, "the server address is empty");
  if (options.tls_client_cert_pem.empty() != options.tls_client_key_pem.empty()) {
    throw Error(grpc::StatusCode::INVALID_ARGUMENT,
                "mutual TLS needs both a client certificate and its private key, or neither");
  }
  if (!options.use_tls && (!options.tls_root_certs_pem.empty() || !options.tls_client_cert_pem.empty())) {
    throw Error(grpc::StatusCode::INVALID_ARGUMENT, "TLS certificates were given but use_tls is off");
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  args.SetMaxSendMessageSize(options.max_receive_message_bytes);
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options.use_tls) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_root_certs_pem;
    ssl.pem_cert_chain = options.tls_client_cert_pem;
    ssl.pem_private_key = options.tls_client_key_pem;
    credentials = grpc::SslCredentials(ssl);
    if (!options.tls_server_name_override.empty()) args.SetSslTargetNameOverride(options.tls_server_name_override);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  return grpc::CreateCustomChannel(options.address, credentials, args);
}

// Server-streaming calls must be drained and finished even when our own code throws midway
// (a progress callback, a failed write): cancel, drain, finish, then rethrow.
template <typename Reader, typename Event>
void DrainAfterCancel(grpc::ClientContext& context, Reader& reader, Event& scratch) {
  context.TryCancel();
  while (reader.Read(&scratch)) {
  }
  reader.Finish();
}

}  // namespace

Client::Client(ClientOptions options) : options_(std::move(options)), impl_(std::make_unique<Impl>()) {
  impl_->connection.options = options_;
  impl_->connection.channel = MakeChannel(options_);
  impl_->connection.stub = pb::AvatarForge::NewStub(impl_->connection.channel);
}

Client::~Client() = default;

AvatarInfo Client::CreateAvatar(const std::string& portrait_bytes, const ProgressCallback& progress,
                                const CreateOptions& options) {
  if (portrait_bytes.empty()) throw Error(grpc::StatusCode::INVALID_ARGUMENT, "the portrait is empty");
  pb::CreateAvatarRequest request;
  request.set_portrait(portrait_bytes);
  request.set_generator(options.generator);
  request.set_display_name(options.display_name);
  if (options.face_box) {
    auto* box = request.mutable_face_box();
    box->set_x(options.face_box->x);
    box->set_y(options.face_box->y);
    box->set_width(options.face_box->width);
    box->set_height(options.face_box->height);
  }
  if (!options.landmarks_xy.empty()) {
    request.mutable_landmarks()->mutable_xy()->Add(options.landmarks_xy.begin(), options.landmarks_xy.end());
  }

  auto context = impl_->connection.NewContext();
  auto reader = impl_->connection.stub->CreateAvatar(context.get(), request);
  pb::CreateAvatarEvent event;
  std::optional<AvatarInfo> avatar;
  try {
    while (reader->Read(&event)) {
      if (event.has_progress()) {
        if (progress) progress(FromProto(event.progress()));
      } else if (event.has_avatar()) {
        avatar = FromProto(event.avatar());
      }
    }
  } catch (...) {
    DrainAfterCancel(*context, *reader, event);
    throw;
  }
  CheckStatus(reader->Finish());
  if (!avatar) throw Error(grpc::StatusCode::DATA_LOSS, "the server ended CreateAvatar without sending the avatar");
  return *avatar;
}

std::string Client::Create(const std::string& portrait_bytes, const ProgressCallback& progress,
                           const CreateOptions& options) {
  return CreateAvatar(portrait_bytes, progress, options).avatar_id;
}

AvatarInfo Client::Get(const std::string& avatar_id, bool include_thumbnail) {
  pb::GetAvatarRequest request;
  request.set_avatar_id(avatar_id);
  request.set_include_thumbnail(include_thumbnail);
  pb::AvatarInfo response;
  auto context = impl_->connection.NewContext();
  CheckStatus(impl_->connection.stub->GetAvatar(context.get(), request, &response));
  return FromProto(response);
}

std::vector<AvatarInfo> Client::List() {
  std::vector<AvatarInfo> out;
  pb::ListAvatarsRequest request;
  for (;;) {
    pb::ListAvatarsResponse response;
    auto context = impl_->connection.NewContext();
    CheckStatus(impl_->connection.stub->ListAvatars(context.get(), request, &response));
    for (const auto& info : response.avatars()) out.push_back(FromProto(info));
    if (response.next_page_token().empty()) break;
    if (response.next_page_token() == request.page_token()) {
      throw Error(grpc::StatusCode::DATA_LOSS, "the server repeated the same page token while listing avatars");
    }
    request.set_page_token(response.next_page_token());
  }
  return out;
}

bool Client::Delete(const std::string& avatar_id) {
  pb::DeleteAvatarRequest request;
  request.set_avatar_id(avatar_id);
  pb::DeleteAvatarResponse response;
  auto context = impl_->connection.NewContext();
  CheckStatus(impl_->connection.stub->DeleteAvatar(context.get(), request, &response));
  return response.deleted();
}

Frame Client::Render(const RenderParams& params) {
  pb::RenderRequest request;
  request.set_avatar_id(params.avatar_id);
  if (params.frame.camera) ToProto(*params.frame.camera, request.mutable_camera());
  if (params.frame.expression) ToProto(*params.frame.expression, request.mutable_expression());
  if (params.frame.head_pose) ToProto(*params.frame.head_pose, request.mutable_head_pose());
  request.mutable_eye()->Add(params.frame.eye.begin(), params.frame.eye.end());
  ToProto(params.options, request.mutable_options());
  pb::Frame response;
  auto context = impl_->connection.NewContext();
  CheckStatus(impl_->connection.stub->Render(context.get(), request, &response));
  return FromProto(std::move(response));
}

std::vector<std::string> Client::Export(const std::string& avatar_id, const std::vector<ExportFormat>& formats,
                                        const std::string& out_dir, const ExportOptions& options) {
  if (formats.empty()) throw Error(grpc::StatusCode::INVALID_ARGUMENT, "no export format was requested");
  if (out_dir.empty()) throw Error(grpc::StatusCode::INVALID_ARGUMENT, "the export output directory is empty");
  pb::ExportRequest request;
  request.set_avatar_id(avatar_id);
  for (ExportFormat f : formats) request.add_formats(static_cast<pb::ExportFormat>(f));
  ToProto(options, request.mutable_options());
  for (const auto& source : options.animation_sources) {
    auto* s = request.add_animation_source();
    s->set_file_name(source.file_name);
    s->set_data(source.data);
  }

  internal::ExportWriter writer{std::filesystem::path(out_dir)};
  auto context = impl_->connection.NewContext();
  auto reader = impl_->connection.stub->Export(context.get(), request);
  pb::ExportEvent event;
  try {
    while (reader->Read(&event)) {
      if (event.has_progress()) {
        if (options.progress) options.progress(FromProto(event.progress()));
      } else if (event.has_chunk()) {
        writer.Add(event.chunk());
      }
    }
  } catch (...) {
    DrainAfterCancel(*context, *reader, event);
    writer.DiscardCompleted();
    throw;
  }
  const grpc::Status status = reader->Finish();
  if (!status.ok()) {
    writer.DiscardCompleted();
    internal::ThrowStatus(status);
  }
  try {
    return writer.Finish();
  } catch (...) {
    writer.DiscardCompleted();
    throw;
  }
}

ServerInfo Client::Info() {
  pb::GetServerInfoRequest request;
  pb::ServerInfo response;
  auto context = impl_->connection.NewContext();
  CheckStatus(impl_->connection.stub->GetServerInfo(context.get(), request, &response));
  return FromProto(response);
}

}  // namespace avatarforge
