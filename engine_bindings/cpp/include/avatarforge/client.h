// AvatarForge C++ client: an engine-agnostic wrapper over the avatarforge.v1 gRPC API.
//
// The public types here are plain C++ so that engine code (Unreal, custom engines) never has to
// include protobuf or generated headers; only <grpcpp/support/status.h> leaks through for the
// status code carried by avatarforge::Error.
#pragma once

#include <grpcpp/support/status.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

// Engines that build the client as a shared module (Unreal) define this to their export macro.
#ifndef AVATARFORGE_CLIENT_API
#define AVATARFORGE_CLIENT_API
#endif

namespace avatarforge {

// Every failure of the client: a gRPC status from the server or transport, or a local problem
// (bad argument, file I/O, sha256 mismatch) mapped onto the closest status code.
class AVATARFORGE_CLIENT_API Error : public std::runtime_error {
 public:
  Error(grpc::StatusCode code, const std::string& message);
  grpc::StatusCode code() const noexcept { return code_; }
  // The server's (or the client's) sentence without the code prefix.
  const std::string& detail() const noexcept { return detail_; }

 private:
  grpc::StatusCode code_;
  std::string detail_;
};

// "UNAUTHENTICATED", "NOT_FOUND", ... as in the gRPC spec.
AVATARFORGE_CLIENT_API const char* StatusCodeName(grpc::StatusCode code) noexcept;

struct ClientOptions {
  // host:port; for IPv6 use [::1]:port.
  std::string address = "127.0.0.1:50051";
  // Bearer token sent as "authorization: Bearer <token>" on every call; empty = none.
  std::string token;
  // TLS is used when use_tls is set; an empty root bundle means the system roots.
  bool use_tls = false;
  std::string tls_root_certs_pem;
  // Mutual TLS: both or neither.
  std::string tls_client_cert_pem;
  std::string tls_client_key_pem;
  // Expected server certificate name when it differs from the host in `address`.
  std::string tls_server_name_override;
  // Deadline for unary calls and for CreateAvatar/Export as a whole; zero = none.
  std::chrono::milliseconds call_timeout{0};
  // Largest message the client accepts (frames with depth at 2048^2 need ~36 MB).
  int max_receive_message_bytes = 64 * 1024 * 1024;
};

struct Progress {
  std::string stage;
  float fraction = 0.0f;
  std::string message;
};
using ProgressCallback = std::function<void(const Progress&)>;

struct AvatarInfo {
  std::string avatar_id;
  std::string generator;
  std::string generator_version;
  std::string source_sha256;
  std::string head_model_id;
  std::string display_name;
  double created_unix = 0.0;
  std::string thumbnail_png;  // PNG bytes; empty unless asked for
  std::vector<float> portrait_camera;
  std::uint32_t schema_version = 0;
};

struct FaceBox {
  float x = 0, y = 0, width = 0, height = 0;
};

struct CreateOptions {
  std::string generator;     // empty = server default
  std::string display_name;  // stored label, not part of the id
  std::optional<FaceBox> face_box;
  std::vector<float> landmarks_xy;  // 68- or 478-point layout, x0, y0, x1, y1, ...
};

struct OrbitCamera {
  float yaw_deg = 0, pitch_deg = 0, roll_deg = 0;
  float radius = 0;   // 0 = server default 2.7
  float fov_deg = 0;  // 0 = server default 18.837
};

// Either an orbit or an EG3D 25-vector (cam2world 4x4 row-major, then normalised intrinsics).
struct Camera {
  std::optional<OrbitCamera> orbit;
  std::vector<float> eg3d;

  static Camera Orbit(float yaw_deg, float pitch_deg = 0, float roll_deg = 0, float radius = 0, float fov_deg = 0) {
    Camera c;
    c.orbit = OrbitCamera{yaw_deg, pitch_deg, roll_deg, radius, fov_deg};
    return c;
  }
  static Camera Eg3d(std::vector<float> values) {
    Camera c;
    c.eg3d = std::move(values);
    return c;
  }
};

// 52 weights in canonical (alphabetical ARKit) order, or a name -> weight map; both empty = neutral.
struct Expression {
  std::vector<float> weights;
  std::map<std::string, float> named;
};

struct HeadPose {
  float yaw = 0, pitch = 0, roll = 0;  // radians
};

enum class Encoding { kUnspecified = 0, kRawRgba8 = 1, kPng = 2, kJpeg = 3 };

struct FrameOptions {
  std::uint32_t width = 0;   // 0 = 256
  std::uint32_t height = 0;  // 0 = 256
  Encoding encoding = Encoding::kPng;
  std::uint32_t jpeg_quality = 0;  // 0 = 90
  bool include_depth = false;
  bool include_alpha = false;
  std::vector<float> background;  // RGB 0..1; empty = server default
};

struct FrameParams {
  std::uint64_t seq = 0;
  std::optional<Camera> camera;
  std::optional<Expression> expression;
  std::optional<HeadPose> head_pose;
  std::vector<float> eye;  // FaceVerse eye 4-vector, radians
};

struct RenderParams {
  std::string avatar_id;
  FrameParams frame;  // seq is ignored for single renders
  FrameOptions options;
};

struct Frame {
  std::uint64_t seq = 0;
  std::uint32_t width = 0;
  std::uint32_t height = 0;
  Encoding encoding = Encoding::kUnspecified;
  std::string data;   // RAW_RGBA8: width*height*4, top row first; PNG/JPEG: file bytes
  std::string depth;  // float32 little-endian, width*height, when asked for
  std::string alpha;  // uint8, width*height, when asked for
  float render_ms = 0;
  float queue_ms = 0;
  std::uint32_t dropped = 0;
};

enum class StreamMode { kEveryFrame = 1, kLatestWins = 2 };

enum class ExportFormat { kGlb = 1, kTables = 2, kAnimation = 3, kTriplane = 4 };
// "glb", "tables", "animation", "triplane" (any case); throws Error(INVALID_ARGUMENT) otherwise.
AVATARFORGE_CLIENT_API ExportFormat ParseExportFormat(const std::string& name);

struct AnimationSource {
  std::string file_name;  // extension picks the parser: .npy, .csv, .json
  std::string data;
};

struct ExportOptions {
  std::uint32_t texture_size = 0;  // 0 = 1024
  std::uint32_t static_triangle_budget = 0;
  bool without_static_parts = false;
  bool without_target_normals = false;
  float frame_rate = 0;  // 0 = 30
  std::vector<AnimationSource> animation_sources;  // required for kAnimation
  ProgressCallback progress;
};

struct GeneratorInfo {
  std::string name, version, description;
};

struct Limits {
  std::uint64_t max_portrait_bytes = 0;
  std::uint64_t max_portrait_pixels = 0;
  std::uint32_t max_streams = 0;
  std::uint64_t max_frame_pixels = 0;
  std::uint64_t max_message_bytes = 0;
  std::uint64_t max_track_frames = 0;
};

// TrackFace: one video frame in (JPEG or PNG bytes), one TrackedFace out.
struct TrackFrame {
  std::uint64_t seq = 0;
  std::string image;  // JPEG or PNG bytes
  double time_s = 0;  // capture time; 0 = seq / frame_rate
};

struct TrackOptions {
  StreamMode mode = StreamMode::kEveryFrame;
  float frame_rate = 0;  // 0 = 30
  bool without_smoothing = false;
};

struct TrackedFace {
  std::uint64_t seq = 0;
  double time_s = 0;
  bool found = false;         // false: no face in this frame, the last values are held
  float confidence = 0;       // 0..1
  std::vector<float> weights;  // 52 ARKit weights in TrackResult::channel_names order
  HeadPose head_pose;         // radians, as RenderParams' head pose
  std::vector<float> eye;     // FaceVerse eye 4-vector, radians
  std::uint32_t dropped = 0;  // LATEST_WINS: frames skipped since the previous answer
  float track_ms = 0;
};

struct TrackResult {
  std::vector<std::string> channel_names;  // the header: names of TrackedFace::weights, sent once
  std::vector<std::string> eye_names;
  std::vector<TrackedFace> faces;          // in the order the server answered
};

struct ServerInfo {
  std::string version;
  std::vector<GeneratorInfo> generators;
  std::string default_generator;
  Limits limits;
  std::string rasterizer_backend;
  std::string device;
  std::vector<std::string> expression_names;
  bool auth_required = false;
};

class Client;

// A live RenderStream. Frames arrive on a reader thread owned by this object, in the order the
// server sends them. Not copyable; destroying it cancels the call (also allowed from inside its
// own callbacks, where the reader thread then cleans up after itself).
class AVATARFORGE_CLIENT_API RenderStream {
 public:
  using FrameCallback = std::function<void(const Frame&)>;
  // Called once on the reader thread when the stream ends; nullptr means it ended cleanly
  // (or was cancelled through Cancel()).
  using ClosedCallback = std::function<void(const Error*)>;

  ~RenderStream();
  RenderStream(const RenderStream&) = delete;
  RenderStream& operator=(const RenderStream&) = delete;

  // Queues one frame request. Returns false once the stream has ended (see Finish()/closed callback).
  bool Send(const FrameParams& params);
  // Aborts the call; pending frames are dropped. Safe to call more than once and from any thread
  // except the frame callback's.
  void Cancel();
  // Says no more requests will come, waits for the remaining frames and throws Error if the
  // server ended the stream with a failure. Must not be called from the frame callback.
  void Finish();
  // True while the server may still send frames.
  bool Open() const;

 private:
  friend class Client;
  struct State;
  explicit RenderStream(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

class AVATARFORGE_CLIENT_API Client {
 public:
  explicit Client(ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Uploads a portrait (PNG/JPEG/WebP bytes) and returns the avatar id once the server finishes.
  std::string Create(const std::string& portrait_bytes, const ProgressCallback& progress = nullptr,
                     const CreateOptions& options = {});
  // Same, returning the whole AvatarInfo of the final event.
  AvatarInfo CreateAvatar(const std::string& portrait_bytes, const ProgressCallback& progress = nullptr,
                          const CreateOptions& options = {});
  AvatarInfo Get(const std::string& avatar_id, bool include_thumbnail = false);
  // Every avatar on the server (follows the pages).
  std::vector<AvatarInfo> List();
  bool Delete(const std::string& avatar_id);
  Frame Render(const RenderParams& params);
  std::unique_ptr<RenderStream> StartRenderStream(const std::string& avatar_id, const FrameOptions& options,
                                                  StreamMode mode, RenderStream::FrameCallback on_frame,
                                                  RenderStream::ClosedCallback on_closed = nullptr);
  // Tracks the face in a sequence of video frames over one TrackFace stream: the frames are sent from
  // a writer thread while the answers are read, so LATEST_WINS really drops frames the server cannot
  // keep up with. Throws Error with the server's status (INVALID_ARGUMENT for an image that is not
  // JPEG/PNG, RESOURCE_EXHAUSTED beyond the limits).
  TrackResult Track(const std::vector<TrackFrame>& frames, const TrackOptions& options = {});
  // Writes every exported file under out_dir (creating directories), verifying each file's size and
  // sha256 before it appears under its final name; returns the written paths in arrival order.
  // On any failure no partially written file is left behind.
  std::vector<std::string> Export(const std::string& avatar_id, const std::vector<ExportFormat>& formats,
                                  const std::string& out_dir, const ExportOptions& options = {});
  ServerInfo Info();

  const ClientOptions& options() const noexcept { return options_; }

 private:
  struct Impl;
  ClientOptions options_;
  std::unique_ptr<Impl> impl_;
};

// Lowercase hex SHA-256 of a byte string (exposed for callers that verify files themselves).
AVATARFORGE_CLIENT_API std::string Sha256Hex(const std::string& bytes);

}  // namespace avatarforge
