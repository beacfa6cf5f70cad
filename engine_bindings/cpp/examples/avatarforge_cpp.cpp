// avatarforge-cpp: a command-line example of the C++ client, one subcommand per API call.
//
//   avatarforge-cpp [--address HOST:PORT] [--token T] [--tls] [--root-certs PEM] [--client-cert PEM]
//                   [--client-key PEM] [--server-name NAME] [--timeout-ms MS] COMMAND ...
//   info | list | get ID | delete ID | create PORTRAIT | render ID OUT.png
//   stream ID N OUTDIR [--size WxH] [--latest-wins] | export ID OUTDIR FORMATS (comma-separated) |
//   track FRAME... [--latest-wins]   (JPEG/PNG video frames in order; one line per tracked frame)
//
// Exit status: 0 on success, 1 when a call fails (the error is printed as "error: CODE: message"),
// 64 on a usage error.
#include <avatarforge/client.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

namespace {

constexpr int kUsageError = 64;
constexpr std::size_t kStreamWindow = 4;  // frame requests in flight, so the server is never starved

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw avatarforge::Error(grpc::StatusCode::INVALID_ARGUMENT, "cannot read file " + path);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void WriteFile(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw avatarforge::Error(grpc::StatusCode::INTERNAL, "cannot write file " + path.string());
}

bool IsPng(const std::string& bytes) {
  static const char kSignature[] = "\x89PNG\r\n\x1a\n";
  return bytes.size() >= 8 && std::memcmp(bytes.data(), kSignature, 8) == 0;
}

std::uint32_t ParseCount(const std::string& text, const char* what) {
  try {
    std::size_t used = 0;
    const long value = std::stol(text, &used);
    if (used == text.size() && value > 0 && value <= 1000000) return static_cast<std::uint32_t>(value);
  } catch (const std::exception&) {
  }
  throw UsageError(std::string(what) + " must be a positive integer, got '" + text + "'");
}

void PrintAvatar(const avatarforge::AvatarInfo& a) {
  std::cout << a.avatar_id << "  generator=" << a.generator << "@" << a.generator_version
            << "  head_model=" << a.head_model_id << "  name=\"" << a.display_name << "\""
            << "  created=" << std::fixed << std::setprecision(0) << a.created_unix << "\n";
}

int CmdInfo(avatarforge::Client& client) {
  const auto info = client.Info();
  std::cout << "version: " << info.version << "\n"
            << "default_generator: " << info.default_generator << "\n"
            << "rasterizer_backend: " << info.rasterizer_backend << "\n"
            << "device: " << info.device << "\n"
            << "auth_required: " << (info.auth_required ? "true" : "false") << "\n"
            << "expression_names: " << info.expression_names.size() << "\n"
            << "max_streams: " << info.limits.max_streams << "\n"
            << "max_frame_pixels: " << info.limits.max_frame_pixels << "\n";
  for (const auto& g : info.generators) std::cout << "generator: " << g.name << " " << g.version << "\n";
  return 0;
}

int CmdCreate(avatarforge::Client& client, const std::string& portrait_path) {
  const std::string bytes = ReadFile(portrait_path);
  avatarforge::CreateOptions options;
  options.display_name = std::filesystem::path(portrait_path).stem().string();
  const auto id = client.Create(
      bytes,
      [](const avatarforge::Progress& p) {
        std::cerr << "[" << std::setw(3) << static_cast<int>(std::lround(p.fraction * 100)) << "%] " << p.stage
                  << (p.message.empty() ? "" : ": ") << p.message << "\n";
      },
      options);
  std::cout << id << "\n";
  return 0;
}

int CmdRender(avatarforge::Client& client, const std::string& id, const std::string& out_path) {
  avatarforge::RenderParams params;
  params.avatar_id = id;
  params.frame.camera = avatarforge::Camera::Orbit(15.0f, 5.0f);
  params.frame.expression = avatarforge::Expression{{}, {{"mouthSmileLeft", 0.6f}, {"mouthSmileRight", 0.6f}}};
  params.options.encoding = avatarforge::Encoding::kPng;
  const auto frame = client.Render(params);
  if (!IsPng(frame.data)) throw avatarforge::Error(grpc::StatusCode::DATA_LOSS, "the server's frame is not a PNG");
  WriteFile(out_path, frame.data);
  std::cout << out_path << " " << frame.width << "x" << frame.height << " render_ms=" << frame.render_ms << "\n";
  return 0;
}

struct StreamArgs {
  std::string id;
  std::uint32_t count = 0;
  std::string out_dir;
  std::uint32_t width = 256, height = 256;
  avatarforge::StreamMode mode = avatarforge::StreamMode::kEveryFrame;
};

// Requests `count` frames sweeping the camera and opening the jaw, and writes each PNG as it
// arrives. EVERY_FRAME must answer every seq in order; LATEST_WINS may skip, but never go back.
int CmdStream(avatarforge::Client& client, const StreamArgs& args) {
  std::filesystem::create_directories(args.out_dir);
  std::mutex mutex;
  std::condition_variable changed;
  std::uint64_t received = 0;
  std::uint64_t last_seq = 0;
  std::uint64_t accounted = 0;  // frames received + frames the server reported as dropped
  bool closed = false;

  avatarforge::FrameOptions options;
  options.width = args.width;
  options.height = args.height;
  options.encoding = avatarforge::Encoding::kPng;

  auto on_frame = [&](const avatarforge::Frame& frame) {
    std::lock_guard<std::mutex> lock(mutex);
    const bool every = args.mode == avatarforge::StreamMode::kEveryFrame;
    if (every ? frame.seq != received + 1 : frame.seq <= last_seq) {
      throw avatarforge::Error(grpc::StatusCode::DATA_LOSS, "frame seq " + std::to_string(frame.seq) +
                                                                " arrived out of order after " +
                                                                std::to_string(last_seq));
    }
    if (frame.encoding != avatarforge::Encoding::kPng || !IsPng(frame.data)) {
      throw avatarforge::Error(grpc::StatusCode::DATA_LOSS,
                               "frame " + std::to_string(frame.seq) + " is not the PNG that was asked for");
    }
    char name[32];
    std::snprintf(name, sizeof name, "frame_%04llu.png", static_cast<unsigned long long>(frame.seq));
    WriteFile(std::filesystem::path(args.out_dir) / name, frame.data);
    last_seq = frame.seq;
    ++received;
    accounted += 1 + frame.dropped;
    changed.notify_all();
  };
  auto on_closed = [&](const avatarforge::Error*) {
    std::lock_guard<std::mutex> lock(mutex);
    closed = true;
    changed.notify_all();
  };

  auto stream = client.StartRenderStream(args.id, options, args.mode, on_frame, on_closed);
  for (std::uint32_t i = 1; i <= args.count; ++i) {
    {
      std::unique_lock<std::mutex> lock(mutex);
      changed.wait(lock, [&] { return closed || i - 1 - accounted < kStreamWindow; });
      if (closed) break;
    }
    const float t = args.count > 1 ? static_cast<float>(i - 1) / static_cast<float>(args.count - 1) : 0.0f;
    avatarforge::FrameParams params;
    params.seq = i;
    params.camera = avatarforge::Camera::Orbit(-30.0f + 60.0f * t, 5.0f);
    params.expression = avatarforge::Expression{{}, {{"jawOpen", 0.8f * t}, {"eyeBlinkLeft", t}}};
    if (!stream->Send(params)) break;
  }
  stream->Finish();  // throws the server's or the callback's error
  if (args.mode == avatarforge::StreamMode::kEveryFrame && received != args.count) {
    throw avatarforge::Error(grpc::StatusCode::DATA_LOSS, "asked for " + std::to_string(args.count) +
                                                              " frames but received " + std::to_string(received));
  }
  std::cout << "wrote " << received << " frames to " << args.out_dir << "\n";
  return 0;
}

int CmdExport(avatarforge::Client& client, const std::string& id, const std::string& out_dir,
              const std::string& format_list) {
  std::vector<avatarforge::ExportFormat> formats;
  std::stringstream list(format_list);
  for (std::string name; std::getline(list, name, ',');) {
    if (!name.empty()) formats.push_back(avatarforge::ParseExportFormat(name));
  }
  avatarforge::ExportOptions options;
  options.progress = [](const avatarforge::Progress& p) {
    std::cerr << "[" << std::setw(3) << static_cast<int>(std::lround(p.fraction * 100)) << "%] " << p.stage << "\n";
  };
  for (const auto& path : client.Export(id, formats, out_dir, options)) {
    std::cout << avatarforge::Sha256Hex(ReadFile(path)) << "  " << path << "\n";
  }
  return 0;
}

// TrackFace over the given frames: the header, then one line per answer with the channels a viewport
// most often needs (the full 52 weights are in TrackedFace::weights).
int CmdTrack(avatarforge::Client& client, const std::vector<std::string>& paths, avatarforge::StreamMode mode) {
  std::vector<avatarforge::TrackFrame> frames;
  for (std::size_t i = 0; i < paths.size(); ++i) frames.push_back({i, ReadFile(paths[i]), 0.0});
  avatarforge::TrackOptions options;
  options.mode = mode;
  const avatarforge::TrackResult result = client.Track(frames, options);
  auto channel = [&](const avatarforge::TrackedFace& face, const std::string& name) {
    const auto it = std::find(result.channel_names.begin(), result.channel_names.end(), name);
    const auto k = static_cast<std::size_t>(it - result.channel_names.begin());
    return k < face.weights.size() ? face.weights[k] : std::nanf("");
  };
  std::cout << "channels: " << result.channel_names.size() << "\n";
  for (const auto& face : result.faces) {
    std::cout << std::fixed << std::setprecision(4) << "face seq=" << face.seq << " found=" << face.found
              << " confidence=" << face.confidence << " yaw=" << face.head_pose.yaw << " pitch=" << face.head_pose.pitch
              << " roll=" << face.head_pose.roll << " jawOpen=" << channel(face, "jawOpen")
              << " eyeBlinkLeft=" << channel(face, "eyeBlinkLeft") << " eyeBlinkRight=" << channel(face, "eyeBlinkRight")
              << " dropped=" << face.dropped << "\n";
  }
  return 0;
}

int Usage(const std::string& problem) {
  std::cerr << "error: " << problem << "\n"
            << "usage: avatarforge-cpp [--address HOST:PORT] [--token T] [--tls] [--root-certs PEM]\n"
               "                       [--client-cert PEM --client-key PEM] [--server-name NAME] [--timeout-ms MS]\n"
               "                       info | list | get ID | delete ID | create PORTRAIT | render ID OUT.png |\n"
               "                       stream ID N OUTDIR [--size WxH] [--latest-wins] | export ID OUTDIR FORMATS |\n"
               "                       track FRAME... [--latest-wins]\n";
  return kUsageError;
}

int Run(int argc, char** argv) {
  avatarforge::ClientOptions options;
  std::vector<std::string> positional;
  StreamArgs stream;
  auto value = [&](int& i) -> std::string {
    if (i + 1 >= argc) throw UsageError(std::string(argv[i]) + " needs a value");
    return argv[++i];
  };
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--address") options.address = value(i);
    else if (arg == "--token") options.token = value(i);
    else if (arg == "--tls") options.use_tls = true;
    else if (arg == "--root-certs") options.tls_root_certs_pem = ReadFile(value(i));
    else if (arg == "--client-cert") options.tls_client_cert_pem = ReadFile(value(i));
    else if (arg == "--client-key") options.tls_client_key_pem = ReadFile(value(i));
    else if (arg == "--server-name") options.tls_server_name_override = value(i);
    else if (arg == "--timeout-ms") options.call_timeout = std::chrono::milliseconds(ParseCount(value(i), "--timeout-ms"));
    else if (arg == "--latest-wins") stream.mode = avatarforge::StreamMode::kLatestWins;
    else if (arg == "--size") {
      const std::string size = value(i);
      const auto x = size.find('x');
      if (x == std::string::npos) throw UsageError("--size must look like 256x256");
      stream.width = ParseCount(size.substr(0, x), "width");
      stream.height = ParseCount(size.substr(x + 1), "height");
    } else if (arg == "-h" || arg == "--help") {
      return Usage("help requested");
    } else if (arg.rfind("--", 0) == 0) {
      throw UsageError("unknown option " + arg);
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.empty()) throw UsageError("no command given");
  const std::string command = positional[0];
  const std::size_t nargs = positional.size() - 1;
  auto need = [&](std::size_t n, const char* shape) {
    if (nargs != n) throw UsageError(command + " takes " + shape);
  };

  avatarforge::Client client(options);
  if (command == "info") return need(0, "no arguments"), CmdInfo(client);
  if (command == "list") {
    need(0, "no arguments");
    for (const auto& a : client.List()) PrintAvatar(a);
    return 0;
  }
  if (command == "get") return need(1, "ID"), PrintAvatar(client.Get(positional[1])), 0;
  if (command == "delete") {
    need(1, "ID");
    std::cout << (client.Delete(positional[1]) ? "deleted" : "not present") << "\n";
    return 0;
  }
  if (command == "create") return need(1, "PORTRAIT"), CmdCreate(client, positional[1]);
  if (command == "render") return need(2, "ID OUT.png"), CmdRender(client, positional[1], positional[2]);
  if (command == "stream") {
    need(3, "ID N OUTDIR");
    stream.id = positional[1];
    stream.count = ParseCount(positional[2], "N");
    stream.out_dir = positional[3];
    return CmdStream(client, stream);
  }
  if (command == "export") return need(3, "ID OUTDIR FORMATS"), CmdExport(client, positional[1], positional[2], positional[3]);
  if (command == "track") {
    if (nargs == 0) throw UsageError("track takes FRAME... (JPEG or PNG images)");
    return CmdTrack(client, std::vector<std::string>(positional.begin() + 1, positional.end()), stream.mode);
  }
  throw UsageError("unknown command " + command);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const UsageError& e) {
    return Usage(e.what());
  } catch (const avatarforge::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
