// Assembles Export's FileChunk stream into verified files on disk.
#pragma once

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "internal.h"

namespace avatarforge {
namespace internal {

class ExportWriter {
 public:
  explicit ExportWriter(std::filesystem::path out_dir);
  // Removes the temporary files of any file that did not complete.
  ~ExportWriter();
  ExportWriter(const ExportWriter&) = delete;
  ExportWriter& operator=(const ExportWriter&) = delete;

  void Add(const pb::FileChunk& chunk);
  // Throws when a file was started but never finished; returns final paths in completion order.
  std::vector<std::string> Finish();
  // Deletes every file this writer completed (used when the call fails after some files landed).
  void DiscardCompleted();

 private:
  struct Pending {
    std::filesystem::path final_path;
    std::filesystem::path temp_path;
    std::ofstream stream;
    std::uint64_t written = 0;
    std::unique_ptr<Sha256> hash;
  };

  std::filesystem::path Resolve(const std::string& relative) const;
  Pending& Open(const std::string& relative);

  std::filesystem::path out_dir_;
  std::map<std::string, Pending> pending_;
  std::vector<std::string> completed_;
  std::vector<std::string> seen_;
};

}  // namespace internal
}  // namespace avatarforge
