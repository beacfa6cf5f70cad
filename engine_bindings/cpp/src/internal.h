// Private glue shared by the client's translation units: proto <-> plain-type conversion,
// call-context setup and the incremental hash used for export verification.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "avatarforge/client.h"
#include "avatarforge/v1/avatarforge.grpc.pb.h"

namespace avatarforge {
namespace internal {

namespace pb = ::avatarforge::v1;

[[noreturn]] void ThrowStatus(const grpc::Status& status);
void CheckStatus(const grpc::Status& status);

void ToProto(const Camera& in, pb::Camera* out);
void ToProto(const Expression& in, pb::Expression* out);
void ToProto(const HeadPose& in, pb::HeadPose* out);
void ToProto(const FrameOptions& in, pb::FrameOptions* out);
void ToProto(const FrameParams& in, pb::FrameRequest* out);
void ToProto(const ExportOptions& in, pb::ExportOptions* out);

AvatarInfo FromProto(const pb::AvatarInfo& in);
Frame FromProto(pb::Frame&& in);
TrackedFace FromProto(const pb::TrackedFace& in);
Progress FromProto(const pb::Progress& in);
ServerInfo FromProto(const pb::ServerInfo& in);

// Everything a call needs: the stub and a context carrying the token and deadline.
struct Connection {
  ClientOptions options;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::AvatarForge::Stub> stub;

  // Streams pass with_deadline=false: a live viewport has no natural end.
  std::unique_ptr<grpc::ClientContext> NewContext(bool with_deadline = true) const;
};

// Incremental SHA-256 (OpenSSL EVP), so large exported files are hashed as chunks arrive.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(const void* data, std::size_t size);
  std::string HexDigest();  // finalises; call once

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

}  // namespace internal

struct Client::Impl {
  internal::Connection connection;
};

}  // namespace avatarforge
