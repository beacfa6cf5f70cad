#include "export_writer.h"

#include <algorithm>
#include <system_error>

namespace avatarforge {
namespace internal {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void Fail(grpc::StatusCode code, const std::string& message) { throw Error(code, message); }

}  // namespace

ExportWriter::ExportWriter(fs::path out_dir) : out_dir_(std::move(out_dir)) {
  std::error_code ec;
  fs::create_directories(out_dir_, ec);
  if (ec) Fail(grpc::StatusCode::INVALID_ARGUMENT, "cannot create output directory " + out_dir_.string() + ": " + ec.message());
}

ExportWriter::~ExportWriter() {
  for (auto& [name, p] : pending_) {
    p.stream.close();
    std::error_code ec;
    fs::remove(p.temp_path, ec);
  }
}

fs::path ExportWriter::Resolve(const std::string& relative) const {
  // The server names the files; a hostile or buggy server must not write outside out_dir.
  const fs::path rel = fs::path(relative).lexically_normal();
  if (relative.empty() || rel.is_absolute() || rel.has_root_name() || rel.has_root_directory()) {
    Fail(grpc::StatusCode::DATA_LOSS, "export file path '" + relative + "' is not a relative path");
  }
  for (const auto& part : rel) {
    if (part == "..") Fail(grpc::StatusCode::DATA_LOSS, "export file path '" + relative + "' leaves the output directory");
  }
  return out_dir_ / rel;
}

ExportWriter::Pending& ExportWriter::Open(const std::string& relative) {
  auto it = pending_.find(relative);
  if (it != pending_.end()) return it->second;
  if (std::find(seen_.begin(), seen_.end(), relative) != seen_.end()) {
    Fail(grpc::StatusCode::DATA_LOSS, "export sent file '" + relative + "' twice");
  }
  Pending p;
  p.final_path = Resolve(relative);
  p.temp_path = p.final_path;
  p.temp_path += ".part";
  std::error_code ec;
  fs::create_directories(p.final_path.parent_path(), ec);
  if (ec) Fail(grpc::StatusCode::INTERNAL, "cannot create " + p.final_path.parent_path().string() + ": " + ec.message());
  p.stream.open(p.temp_path, std::ios::binary | std::ios::trunc);
  if (!p.stream) Fail(grpc::StatusCode::INTERNAL, "cannot write " + p.temp_path.string());
  p.hash = std::make_unique<Sha256>();
  seen_.push_back(relative);
  return pending_.emplace(relative, std::move(p)).first->second;
}

void ExportWriter::Add(const pb::FileChunk& chunk) {
  Pending& p = Open(chunk.path());
  if (chunk.offset() != p.written) {
    Fail(grpc::StatusCode::DATA_LOSS, "export chunk of '" + chunk.path() + "' starts at byte " +
                                          std::to_string(chunk.offset()) + " but " + std::to_string(p.written) +
                                          " bytes were received");
  }
  const std::string& data = chunk.data();
  p.stream.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!p.stream) Fail(grpc::StatusCode::INTERNAL, "writing " + p.temp_path.string() + " failed");
  p.hash->Update(data.data(), data.size());
  p.written += data.size();
  if (!chunk.last()) return;

  p.stream.close();
  if (!p.stream) Fail(grpc::StatusCode::INTERNAL, "closing " + p.temp_path.string() + " failed");
  if (chunk.size() != p.written) {
    Fail(grpc::StatusCode::DATA_LOSS, "export file '" + chunk.path() + "' announced " + std::to_string(chunk.size()) +
                                          " bytes but " + std::to_string(p.written) + " arrived");
  }
  const std::string digest = p.hash->HexDigest();
  if (chunk.sha256() != digest) {
    Fail(grpc::StatusCode::DATA_LOSS, "export file '" + chunk.path() + "' has sha256 " + digest +
                                          " but the server announced " + chunk.sha256());
  }
  std::error_code ec;
  fs::rename(p.temp_path, p.final_path, ec);
  if (ec) Fail(grpc::StatusCode::INTERNAL, "cannot move " + p.temp_path.string() + " into place: " + ec.message());
  completed_.push_back(p.final_path.string());
  pending_.erase(chunk.path());
}

std::vector<std::string> ExportWriter::Finish() {
  if (!pending_.empty()) {
    Fail(grpc::StatusCode::DATA_LOSS, "export ended before file '" + pending_.begin()->first + "' was complete");
  }
  return completed_;
}

void ExportWriter::DiscardCompleted() {
  for (const auto& path : completed_) {
    std::error_code ec;
    fs::remove(path, ec);
  }
  completed_.clear();
}

}  // namespace internal
}  // namespace avatarforge
