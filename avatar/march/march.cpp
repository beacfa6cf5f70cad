// The accelerated renderer's ray march in one loop per ray: occupied-span scan on the coarse grid,
// density rounds through the fine grid with early termination (a step that crosses a surface is
// bisected to find it), colour at the samples that carry weight, compositing. It follows
// avatar/render.py's pure-torch path step by step and in float32 throughout (the surface decoder's
// claim channels carry values of ~4e3 whose differences are the colours, so the arithmetic must be
// torch's, not a faster approximation of it); the one departure is that a ray stops at the sample
// that spends its transmittance (see march_ray).
//
// The module also carries the renderer's other per-frame CPU steps, each computed as its torch version
// does to the bit: triangle rasterization (avatar/raster/cpu.py), marking points into an occupancy grid
// (avatar/occupancy.py) and the front plane's composition around its grid_sample (avatar/planes.py).
//
// Threads: the GIL is released by the binding; rays are cut into tiles that the caller and its
// helper threads take from a shared counter (see parallel_tiles), so one frame uses every core it is
// given and a tile of sky costs as little as it should.
#include <torch/extension.h>

#include <algorithm>
#include <array>
#include <utility>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace {

constexpr float kBig = 1e4f;  // "no span" marker, as in the torch path
constexpr int kTile = 8;      // rays per tile side

// One static plane as (row, column, channel), channels adjacent, sampled like grid_sample
// (bilinear, zeros padding, align_corners=False) at world axes (col_axis, row_axis).
struct Plane {
  const float* data;
  int64_t s_row, s_col;
  int height, width, col_axis, row_axis;
};

// Sums the bilinear samples of three planes at a point (planes, channels, box_half, point, out, scratch):
// sum_planes_n for one channel count.
using SumPlanes = void (*)(const Plane*, int, float, const float*, float*, float*);

// A dense layer kept as its non-zero weights per output row (CSR): the embedded generators' decoders
// are very sparse (a hidden unit reads one channel), learned ones dense; skipping exact zeros changes
// no sum.
struct SparseLayer {
  std::vector<int> row_start, index;  // row r's weights are index/weight[row_start[r] .. row_start[r + 1])
  std::vector<float> weight, bias;

  SparseLayer(const at::Tensor& w, const at::Tensor& b) {
    const int64_t rows = w.size(0), cols = w.size(1);
    const float* wp = w.data_ptr<float>();
    row_start.push_back(0);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        if (wp[r * cols + c] != 0.f) {
          index.push_back(static_cast<int>(c));
          weight.push_back(wp[r * cols + c]);
        }
      }
      row_start.push_back(static_cast<int>(index.size()));
    }
    bias.assign(b.data_ptr<float>(), b.data_ptr<float>() + rows);
  }
  int outputs() const { return static_cast<int>(bias.size()); }

  // out[r] = bias[r] + sum over row r of weight * x[index]
  void apply(const float* x, float* out) const {
    for (int r = 0; r < outputs(); ++r) {
      float acc = 0.f;
      for (int k = row_start[r]; k < row_start[r + 1]; ++k) acc += weight[k] * x[index[k]];
      out[r] = acc + bias[r];
    }
  }
};

// A RenderField: hidden = softplus(first x), out = second hidden.
struct Mlp {
  SparseLayer first, second;
  int channels;
  int hidden() const { return first.outputs(); }
  int outputs() const { return second.outputs(); }
};

struct Grid {
  const uint8_t* occupied;  // resolution^3, x-major
  int resolution;
};

struct Params {
  Plane density_planes[3];
  Plane colour_planes[3];
  const Mlp* density;
  const Mlp* colour;
  SumPlanes density_sum, colour_sum;
  Grid fine, coarse;
  float box_half, step, cell;
  int samples_per_round, refine_bisections;
  float transmittance_eps, weight_eps, density_shift, sigmoid_widen, refine_optical;
};

// torch's softplus (threshold 20). Below -20, log1p(exp(x)) is exp(x) to float precision, and below
// -88 it is 0 but for denormals: both skip libm's slow paths, which the gated decoders (hidden units
// at +-1e3 and more) would otherwise take on most samples.
inline float softplus(float x) {
  if (x > 20.f) return x;
  if (x < -20.f) return x < -88.f ? 0.f : std::exp(x);
  return std::log1p(std::exp(x));
}
inline float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }

inline int64_t cell_index(const Grid& g, float box_half, const float p[3]) {
  const float scale = static_cast<float>(g.resolution / (2.0 * box_half));
  int64_t ijk[3];
  for (int a = 0; a < 3; ++a) {
    int64_t i = static_cast<int64_t>((p[a] + box_half) * scale);  // truncation, as .long()
    ijk[a] = std::min<int64_t>(std::max<int64_t>(i, 0), g.resolution - 1);
  }
  return (ijk[0] * g.resolution + ijk[1]) * g.resolution + ijk[2];
}

// Sum over the three planes of the bilinear samples at world point p, into out[channels].
// kChannels > 0 fixes the channel count at compile time: the loops unroll without remainder handling,
// which measured 13% off the whole march (sum_planes_for picks the instance).
template <int kChannels>
inline void sum_planes_n(const Plane* planes, int runtime_channels, float box_half, const float p[3], float* out,
                         float* tmp) {
  const int channels = kChannels > 0 ? kChannels : runtime_channels;
  for (int c = 0; c < channels; ++c) out[c] = 0.f;
  for (int k = 0; k < 3; ++k) {
    const Plane& pl = planes[k];
    // grid_sample's CPU kernel: ((x + 1) * size / 2) - 0.5, then floor and fractional weights.
    const float gx = p[pl.col_axis] / box_half, gy = p[pl.row_axis] / box_half;
    const float x = (gx + 1.f) * (pl.width * 0.5f) - 0.5f;
    const float y = (gy + 1.f) * (pl.height * 0.5f) - 0.5f;
    const float x0f = std::floor(x), y0f = std::floor(y);
    const float w = x - x0f, e = 1.f - w, n = y - y0f, s = 1.f - n;
    const int x0 = static_cast<int>(x0f), y0 = static_cast<int>(y0f);
    const float corner_w[4] = {s * e, s * w, n * e, n * w};
    const int cx[4] = {x0, x0 + 1, x0, x0 + 1}, cy[4] = {y0, y0, y0 + 1, y0 + 1};
    for (int c = 0; c < channels; ++c) tmp[c] = 0.f;
    for (int q = 0; q < 4; ++q) {
      if (cx[q] < 0 || cx[q] >= pl.width || cy[q] < 0 || cy[q] >= pl.height) continue;  // zeros padding
      const float* v = pl.data + cy[q] * pl.s_row + cx[q] * pl.s_col;
      const float wq = corner_w[q];
      for (int c = 0; c < channels; ++c) tmp[c] += v[c] * wq;
    }
    for (int c = 0; c < channels; ++c) out[c] += tmp[c];
  }
}

template <int... kCounts>
constexpr std::array<SumPlanes, sizeof...(kCounts)> sum_planes_table(std::integer_sequence<int, kCounts...>) {
  return {&sum_planes_n<kCounts>...};
}

// sum_planes_n for a channel count, fixed at compile time up to kMaxFixedChannels (0: at run time).
constexpr int kMaxFixedChannels = 32;
SumPlanes sum_planes_for(int channels) {
  static constexpr auto table = sum_planes_table(std::make_integer_sequence<int, kMaxFixedChannels + 1>{});
  return table[channels <= kMaxFixedChannels ? channels : 0];
}

inline void mlp(const Mlp& m, const float* x, float* hidden, float* out) {
  m.first.apply(x, hidden);
  for (int j = 0; j < m.hidden(); ++j) hidden[j] = softplus(hidden[j]);
  m.second.apply(hidden, out);
}

struct Scratch {
  std::vector<float> features, tmp, hidden, out;
  explicit Scratch(const Params& p)
      : features(std::max(p.density->channels, p.colour->channels)),
        tmp(features.size()),
        hidden(std::max(p.density->hidden(), p.colour->hidden())),
        out(std::max(p.density->outputs(), p.colour->outputs())) {}
};

// First and last occupied coarse cell along one ray, widened by half a cell; (kBig, -kBig) if none.
void coarse_span(const Params& p, const float* o, const float* d, float a, float b, float* first, float* last) {
  *first = kBig;
  *last = -kBig;
  if (!(a < b)) return;
  for (int64_t k = 0;; ++k) {
    const float t = a + p.cell * static_cast<float>(k);
    if (!(t <= b)) break;
    const float pt[3] = {o[0] + d[0] * t, o[1] + d[1] * t, o[2] + d[2] * t};
    if (p.coarse.occupied[cell_index(p.coarse, p.box_half, pt)]) {
      if (*first == kBig) *first = t - p.cell / 2;
      *last = t + p.cell / 2;
    }
  }
}

// As render.py's _light_centroid: where in a step of constant density with optical depth x its light
// comes from on average, as a fraction of the step.
inline float light_centroid(float x) {
  x = std::max(x, 1e-6f);
  return x < 0.1f ? 0.5f - x / 12.f + x * x * x / 720.f : 1.f / x - 1.f / std::expm1(x);
}

inline float density_at(const Params& p, Scratch& s, const float* o, const float* d, float t) {
  const float pt[3] = {o[0] + d[0] * t, o[1] + d[1] * t, o[2] + d[2] * t};
  p.density_sum(p.density_planes, p.density->channels, p.box_half, pt, s.features.data(), s.tmp.data());
  mlp(*p.density, s.features.data(), s.hidden.data(), s.out.data());
  return softplus(s.out[0] - p.density_shift);
}

// A sample that is opaque (optical depth over its step above refine_optical) after a light one, or
// light after an opaque one, has crossed a surface within its step (t - step, t]: as
// Renderer._refine_surfaces, the crossing (where density is half the opaque side's, `opaque_optical`
// over a step) is found by refine_bisections halvings and only the opaque side of the step counts.
// Returns that part's optical depth; *t_colour is the mean depth of its light.
float refine_crossing(const Params& p, Scratch& s, const float* o, const float* d, float t, float opaque_optical,
                      bool entering, float* t_colour) {
  const float sigma = opaque_optical / p.step;
  float lo = t - p.step, hi = t;
  for (int i = 0; i < p.refine_bisections; ++i) {
    const float mid = 0.5f * (lo + hi);
    const bool dense = density_at(p, s, o, d, mid) >= 0.5f * sigma;
    if (dense == entering) hi = mid; else lo = mid;
  }
  const float crossing = 0.5f * (lo + hi);
  const float start = entering ? crossing : t - p.step;
  const float length = entering ? t - crossing : crossing - (t - p.step);
  const float refined = sigma * length;
  *t_colour = t - p.step + (start - (t - p.step) + length * light_centroid(refined));
  return refined;
}

// Density rounds then colour for one ray with t in [first, last]; writes rgb[3], alpha, depth.
void march_ray(const Params& p, Scratch& s, const float* o, const float* d, float first, float last, float* rgb,
               float* alpha, float* depth) {
  float trans = 1.f, kept = 0.f, col_acc[3] = {0.f, 0.f, 0.f}, depth_acc = 0.f;
  float start = first;
  float last_optical = 0.f;  // of the previous sample
  float colour_out[4];
  while (true) {
    float round_tr = 1.f, t = start;
    for (int j = 0; j < p.samples_per_round; ++j) {
      t = start + p.step * static_cast<float>(j);
      const float pt[3] = {o[0] + d[0] * t, o[1] + d[1] * t, o[2] + d[2] * t};
      // Past the span or in an empty cell: density 0, so transmittance unchanged, unless the step
      // leaves a surface.
      const bool skipped = !(t <= last) || !p.fine.occupied[cell_index(p.fine, p.box_half, pt)];
      const bool was_opaque = last_optical > p.refine_optical;
      if (skipped && !was_opaque) {
        last_optical = 0.f;
        continue;
      }
      const float raw = skipped ? 0.f : density_at(p, s, o, d, t) * p.step;
      const bool opaque = raw > p.refine_optical;
      // Light samples are coloured where they are, opaque ones where their step's light comes from
      // (as Renderer._refine_surfaces).
      float optical = raw, t_colour = opaque ? t - p.step + p.step * light_centroid(raw) : t;
      if (opaque != was_opaque)
        optical = refine_crossing(p, s, o, d, t, opaque ? raw : last_optical, opaque, &t_colour);
      last_optical = raw;
      const float a = optical > 88.f ? 1.f : 1.f - std::exp(-optical);  // exp underflows to 0 there
      const float w = a * round_tr * trans;
      round_tr *= 1.f - a + 1e-10f;
      // The torch path finishes the round before it tests the transmittance; stopping at the sample
      // that spends it skips up to a round of samples that can no longer be coloured (their weight
      // is below transmittance_eps <= weight_eps) and moves alpha by less than transmittance_eps.
      const bool spent = !(trans * round_tr > p.transmittance_eps);
      if (w > p.weight_eps) {
        const float pc[3] = {o[0] + d[0] * t_colour, o[1] + d[1] * t_colour, o[2] + d[2] * t_colour};
        p.colour_sum(p.colour_planes, p.colour->channels, p.box_half, pc, s.features.data(), s.tmp.data());
        mlp(*p.colour, s.features.data(), s.hidden.data(), colour_out);
        for (int c = 0; c < 3; ++c)
          col_acc[c] += w * (sigmoid(colour_out[c]) * (1.f + 2.f * p.sigmoid_widen) - p.sigmoid_widen);
        depth_acc += w * t_colour;
        kept += w;
      }
      if (spent) break;
    }
    trans *= round_tr;
    start = t + p.step;
    if (!(trans > p.transmittance_eps) || !(start <= last)) break;
  }
  const float acc = 1.f - trans;
  // The skipped light samples' share of opacity goes to the coloured ones (as the torch path).
  const float scale = kept > 0.f ? acc / std::max(kept, 1e-8f) : 0.f;
  for (int c = 0; c < 3; ++c) rgb[c] = col_acc[c] * scale;
  *alpha = acc;
  const float dsum = depth_acc * scale;
  *depth = acc > 1e-6f ? dsum / std::max(acc, 1e-6f) : 0.f;
}

// Runs body(tile) for every tile on the calling thread and up to threads - 1 helpers, which take tiles
// from a shared counter. The caller waits only for tiles a helper has actually claimed: a helper the
// OS has not scheduled yet (a busy, shared machine) costs nothing, it finds no tile left and leaves.
// This is why the kernel does not use at::parallel_for: an OpenMP region ends at a barrier that waits
// for every thread to arrive, and measured on the loaded 2-core machine, 2 OpenMP threads took twice
// the wall time and twice the CPU of one (spinning at the barrier).
struct TileQueue {
  std::atomic<int64_t> next{0};
  int64_t total = 0;
  std::mutex mutex;
  std::condition_variable done;
  int64_t finished = 0;               // tiles completed (guarded by mutex)
  std::function<void(int64_t)> body;  // valid until every claimed tile is finished
  std::exception_ptr error;
};

void run_tiles(const std::shared_ptr<TileQueue>& q) {
  for (int64_t tile = q->next.fetch_add(1); tile < q->total; tile = q->next.fetch_add(1)) {
    try {
      q->body(tile);
    } catch (...) {
      std::lock_guard<std::mutex> lock(q->mutex);
      if (!q->error) q->error = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(q->mutex);
    if (++q->finished == q->total) q->done.notify_all();
  }
}

void parallel_tiles(int64_t n_tiles, int64_t threads, std::function<void(int64_t)> body) {
  if (n_tiles <= 0) return;
  auto q = std::make_shared<TileQueue>();
  q->total = n_tiles;
  q->body = std::move(body);
  const int64_t helpers = std::min<int64_t>(std::max<int64_t>(threads, 1), n_tiles) - 1;
  for (int64_t k = 0; k < helpers; ++k) std::thread([q] { run_tiles(q); }).detach();
  run_tiles(q);
  std::unique_lock<std::mutex> lock(q->mutex);
  q->done.wait(lock, [&] { return q->finished == q->total; });
  if (q->error) std::rethrow_exception(q->error);
}

Plane make_plane(const at::Tensor& t, int col_axis, int row_axis) {
  // t: (H, W, C), any row and column strides, adjacent channels (a sample reads all channels of a
  // texel: in one or two cache lines, and in a loop the compiler vectorises)
  TORCH_CHECK(t.stride(2) == 1 || t.size(2) == 1, "planes must be channels-last: (H, W, C) with unit channel stride");
  return Plane{t.data_ptr<float>(), t.stride(0), t.stride(1),
               static_cast<int>(t.size(0)), static_cast<int>(t.size(1)), col_axis, row_axis};
}

Mlp make_mlp(const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2, const at::Tensor& b2) {
  TORCH_CHECK(w1.dim() == 2 && w2.dim() == 2 && b1.numel() == w1.size(0) && b2.numel() == w2.size(0) &&
                  w2.size(1) == w1.size(0),
              "decoder layers must be (hidden, channels), (hidden,), (outputs, hidden), (outputs,)");
  return Mlp{SparseLayer(w1, b1), SparseLayer(w2, b2), static_cast<int>(w1.size(1))};
}

void check_float(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat, name, " must be a float32 CPU tensor");
}

void check_contiguous_float(const at::Tensor& t, const char* name) {
  check_float(t, name);
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

}  // namespace

// origins, dirs (H*W, 3); t0, t1 (H*W,) box entry/exit (t0 >= t1 where a ray misses the box).
// density_planes, colour_planes: three (H, W, C) tensors each, channels adjacent; axes (3, 2) int64
// (column, row) world axes.
// threads: how many cores this frame may use (the caller's thread included).
// Returns rgb (H*W, 3) premultiplied, alpha (H*W,), depth (H*W,).
std::vector<at::Tensor> march(at::Tensor origins, at::Tensor dirs, at::Tensor t0, at::Tensor t1, int64_t height,
                              int64_t width, std::vector<at::Tensor> density_planes,
                              std::vector<at::Tensor> colour_planes, at::Tensor axes,
                              at::Tensor dw1, at::Tensor db1, at::Tensor dw2, at::Tensor db2, at::Tensor cw1,
                              at::Tensor cb1, at::Tensor cw2, at::Tensor cb2, at::Tensor fine, at::Tensor coarse,
                              double box_half, int64_t samples_per_round, double transmittance_eps,
                              double weight_eps, double density_shift, double sigmoid_widen, double refine_optical,
                              int64_t refine_bisections, int64_t threads) {
  const int64_t n = height * width;
  for (auto* t : {&origins, &dirs}) {
    check_contiguous_float(*t, "origins/dirs");
    TORCH_CHECK(t->dim() == 2 && t->size(0) == n && t->size(1) == 3, "origins/dirs must be (H*W, 3)");
  }
  for (auto* t : {&t0, &t1}) {
    check_contiguous_float(*t, "t0/t1");
    TORCH_CHECK(t->numel() == n, "t0/t1 must have H*W entries");
  }
  TORCH_CHECK(density_planes.size() == 3 && colour_planes.size() == 3, "three density and three colour planes");
  for (int k = 0; k < 3; ++k) {
    check_float(density_planes[k], "density planes");
    check_float(colour_planes[k], "colour planes");
    TORCH_CHECK(density_planes[k].dim() == 3 && colour_planes[k].dim() == 3, "planes must be (H, W, C)");
    TORCH_CHECK(density_planes[k].size(2) == dw1.size(1) && colour_planes[k].size(2) == cw1.size(1),
                "the first layers must read as many channels as the planes hold");
  }
  TORCH_CHECK(axes.scalar_type() == at::kLong && axes.is_contiguous() && axes.numel() == 6, "axes must be (3, 2) int64");
  for (auto* t : {&dw1, &db1, &dw2, &db2, &cw1, &cb1, &cw2, &cb2}) check_contiguous_float(*t, "decoder weights");
  TORCH_CHECK(dw2.size(0) == 1 && cw2.size(0) == 3, "the density layer has 1 output, the colour layer 3");
  for (auto* g : {&fine, &coarse}) {
    TORCH_CHECK(g->scalar_type() == at::kByte && g->is_contiguous() && g->dim() == 3, "grids must be uint8 (R, R, R)");
  }

  TORCH_CHECK(refine_bisections >= 0, "refine_bisections must not be negative");
  TORCH_CHECK(transmittance_eps <= weight_eps, "transmittance_eps must not exceed weight_eps (a ray stops once "
              "no later sample could be coloured)");
  Params p;
  const int64_t* ax = axes.data_ptr<int64_t>();
  for (int k = 0; k < 3; ++k) {
    p.density_planes[k] = make_plane(density_planes[k], ax[2 * k], ax[2 * k + 1]);
    p.colour_planes[k] = make_plane(colour_planes[k], ax[2 * k], ax[2 * k + 1]);
  }
  const Mlp density = make_mlp(dw1, db1, dw2, db2), colour = make_mlp(cw1, cb1, cw2, cb2);
  p.density = &density;
  p.colour = &colour;
  p.density_sum = sum_planes_for(density.channels);
  p.colour_sum = sum_planes_for(colour.channels);
  p.fine = Grid{fine.data_ptr<uint8_t>(), static_cast<int>(fine.size(0))};
  p.coarse = Grid{coarse.data_ptr<uint8_t>(), static_cast<int>(coarse.size(0))};
  p.box_half = static_cast<float>(box_half);
  p.step = static_cast<float>(2 * box_half / p.fine.resolution);
  p.cell = static_cast<float>(2 * box_half / p.coarse.resolution);
  p.samples_per_round = static_cast<int>(samples_per_round);
  p.transmittance_eps = static_cast<float>(transmittance_eps);
  p.weight_eps = static_cast<float>(weight_eps);
  p.density_shift = static_cast<float>(density_shift);
  p.sigmoid_widen = static_cast<float>(sigmoid_widen);
  p.refine_optical = static_cast<float>(refine_optical);
  p.refine_bisections = static_cast<int>(refine_bisections);

  const float* o = origins.data_ptr<float>();
  const float* d = dirs.data_ptr<float>();
  const float* a = t0.data_ptr<float>();
  const float* b = t1.data_ptr<float>();

  // 1. Coarse spans on every other pixel of every other row.
  const int64_t sh = (height + 1) / 2, sw = (width + 1) / 2;
  std::vector<float> first_s(sh * sw), last_s(sh * sw);
  parallel_tiles(sh, threads, [&](int64_t r) {
    for (int64_t c = 0; c < sw; ++c) {
      const int64_t i = (2 * r) * width + 2 * c;
      coarse_span(p, o + 3 * i, d + 3 * i, a[i], b[i], &first_s[r * sw + c], &last_s[r * sw + c]);
    }
  });

  // 2. Every pixel takes the widest span of the (up to) four scanned rays around it, clipped to its
  //    own box interval, and is marched.
  auto rgb = at::zeros({n, 3}, origins.options());
  auto alpha = at::zeros({n}, origins.options());
  auto depth = at::zeros({n}, origins.options());
  float* rgb_p = rgb.data_ptr<float>();
  float* alpha_p = alpha.data_ptr<float>();
  float* depth_p = depth.data_ptr<float>();
  const int64_t tiles_y = (height + kTile - 1) / kTile, tiles_x = (width + kTile - 1) / kTile;
  parallel_tiles(tiles_y * tiles_x, threads, [&](int64_t tile) {
    Scratch s(p);  // a few small buffers per tile: cheap next to a tile's rays
    const int64_t ty = tile / tiles_x, tx = tile % tiles_x;
    for (int64_t y = ty * kTile; y < std::min<int64_t>(height, (ty + 1) * kTile); ++y) {
      const int64_t r0 = y / 2, r1 = std::min<int64_t>((y + 1) / 2, sh - 1);
      for (int64_t x = tx * kTile; x < std::min<int64_t>(width, (tx + 1) * kTile); ++x) {
        const int64_t i = y * width + x;
        if (!(a[i] < b[i])) continue;
        const int64_t c0 = x / 2, c1 = std::min<int64_t>((x + 1) / 2, sw - 1);
        float first = kBig, last = -kBig;
        for (int64_t rr : {r0, r1})
          for (int64_t cc : {c0, c1}) {
            first = std::min(first, first_s[rr * sw + cc]);
            last = std::max(last, last_s[rr * sw + cc]);
          }
        first = std::max(first, a[i]);
        last = std::min(last, b[i]);
        if (!(first < last)) continue;
        march_ray(p, s, o + 3 * i, d + 3 * i, first, last, rgb_p + 3 * i, alpha_p + i, depth_p + i);
      }
    }
  });
  return {rgb, alpha, depth};
}

// Density (P,) at world points (P, 3) with the density planes and layers of `march`: what the
// occupancy grid is built from, on all `threads`.
at::Tensor density(at::Tensor points, std::vector<at::Tensor> planes, at::Tensor axes, at::Tensor w1, at::Tensor b1,
                   at::Tensor w2, at::Tensor b2, double box_half, double density_shift, int64_t threads) {
  check_contiguous_float(points, "points");
  TORCH_CHECK(points.dim() == 2 && points.size(1) == 3, "points must be (P, 3)");
  TORCH_CHECK(planes.size() == 3, "three density planes");
  TORCH_CHECK(axes.scalar_type() == at::kLong && axes.is_contiguous() && axes.numel() == 6, "axes must be (3, 2) int64");
  for (auto* t : {&w1, &b1, &w2, &b2}) check_contiguous_float(*t, "decoder weights");
  TORCH_CHECK(w2.size(0) == 1, "the density layer has 1 output");
  Plane pl[3];
  const int64_t* ax = axes.data_ptr<int64_t>();
  for (int k = 0; k < 3; ++k) {
    check_float(planes[k], "density planes");
    TORCH_CHECK(planes[k].dim() == 3 && planes[k].size(2) == w1.size(1), "planes must be (H, W, C) with C = w1's columns");
    pl[k] = make_plane(planes[k], ax[2 * k], ax[2 * k + 1]);
  }
  const Mlp m = make_mlp(w1, b1, w2, b2);
  const SumPlanes sum_planes = sum_planes_for(m.channels);
  const int64_t n = points.size(0);
  auto out = at::empty({n}, points.options());
  const float* pts = points.data_ptr<float>();
  float* o = out.data_ptr<float>();
  const float bh = static_cast<float>(box_half), shift = static_cast<float>(density_shift);
  constexpr int64_t kChunk = 4096;
  parallel_tiles((n + kChunk - 1) / kChunk, threads, [&](int64_t chunk) {
    std::vector<float> features(m.channels), tmp(m.channels), hidden(m.hidden());
    float raw;
    for (int64_t i = chunk * kChunk; i < std::min(n, (chunk + 1) * kChunk); ++i) {
      sum_planes(pl, m.channels, bh, pts + 3 * i, features.data(), tmp.data());
      mlp(m, features.data(), hidden.data(), &raw);
      o[i] = softplus(raw - shift);
    }
  });
  return out;
}

namespace {

// --- Triangle rasterization, as avatar/raster/cpu.py computes it --------------------------------
// The same arithmetic in the same order (float64 vertex setup, vertices snapped to 1/256 pixel, integer
// edge functions with the top-left-style tie rule, float32 depth keys with the lowest triangle id on a
// tie, float64 perspective-correct barycentrics), so the raster is bit for bit the torch one; only the
// enumeration differs: each triangle walks its own pixel box instead of a power-of-two candidate grid
// (pixels outside the box are never inside). Built without floating-point contraction (march.CFLAGS),
// so no product and sum is fused where torch rounds twice.
constexpr double kSubpixel = 256.0;
constexpr int64_t kEmptyKey = std::numeric_limits<int64_t>::max();

struct RasterTriangle {
  double edge[3][3];  // (term: constant, per column, per row) x edge, from the box origin
  double depth[3];    // constant, per column, per row
  double shading[9];  // bary_a[0..1], bary_b[0..1], bary_c[0..1], inv_w[0..2] (cpu.py's order)
  int64_t col_lo, row_lo, box_w, box_h;
  bool alive;
};

inline int64_t depth_key(double z, int64_t tri) {
  const float f = static_cast<float>(z) + 0.0f;  // -0 becomes +0: the two zeros tie
  int32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  const int32_t ordered = bits < 0 ? bits ^ 0x7FFFFFFF : bits;
  return (static_cast<int64_t>(ordered) * (int64_t{1} << 32)) | tri;
}

inline float depth_of_key(int64_t key) {
  int32_t hi = static_cast<int32_t>(key >> 32);
  if (hi < 0) hi ^= 0x7FFFFFFF;
  float f;
  std::memcpy(&f, &hi, sizeof f);
  return f;
}

// vx, vy in pixel units (centres on integers), vz = z/w, vi = 1/w (0 for an unusable corner).
RasterTriangle setup_triangle(const double* vx, const double* vy, const double* vz, const double* vi,
                              const int64_t* corner, int64_t width, int64_t height) {
  RasterTriangle t{};
  double px[3], py[3], z[3], iw[3], sx[3], sy[3];
  for (int k = 0; k < 3; ++k) {
    px[k] = vx[corner[k]];
    py[k] = vy[corner[k]];
    z[k] = vz[corner[k]];
    iw[k] = vi[corner[k]];
    sx[k] = std::nearbyint(px[k] * kSubpixel);  // torch.round: half to even, the default rounding mode
    sy[k] = std::nearbyint(py[k] * kSubpixel);
  }
  const double sx_min = std::min(std::min(sx[0], sx[1]), sx[2]), sy_min = std::min(std::min(sy[0], sy[1]), sy[2]);
  const double sx_max = std::max(std::max(sx[0], sx[1]), sx[2]), sy_max = std::max(std::max(sy[0], sy[1]), sy[2]);
  const double col_lo = std::max(std::ceil(sx_min * (1.0 / kSubpixel)), 0.0);
  const double row_lo = std::max(std::ceil(sy_min * (1.0 / kSubpixel)), 0.0);
  const double col_hi = std::floor(sx_max * (1.0 / kSubpixel)), row_hi = std::floor(sy_max * (1.0 / kSubpixel));
  const double box_w = std::min(col_hi, static_cast<double>(width - 1)) - col_lo + 1;
  const double box_h = std::min(row_hi, static_cast<double>(height - 1)) - row_lo + 1;
  t.alive = std::min(std::min(iw[0], iw[1]), iw[2]) > 0 && box_w > 0 && box_h > 0;
  if (!t.alive) return t;
  t.col_lo = static_cast<int64_t>(col_lo);
  t.row_lo = static_cast<int64_t>(row_lo);
  t.box_w = static_cast<int64_t>(box_w);
  t.box_h = static_cast<int64_t>(box_h);
  // Edge k runs from corner k+1 to corner k+2.
  double dx[3], dy[3], ux[3], uy[3];
  for (int k = 0; k < 3; ++k) {
    const int n = (k + 1) % 3, q = (k + 2) % 3;
    dx[k] = sx[q] - sx[n];
    dy[k] = sy[q] - sy[n];
    ux[k] = px[q] - px[n];
    uy[k] = py[q] - py[n];
  }
  const double area_snapped = dx[0] * (sy[0] - sy[1]) - dy[0] * (sx[0] - sx[1]);
  const double area = ux[0] * (py[0] - py[1]) - uy[0] * (px[0] - px[1]);
  const double sign = (area_snapped > 0 ? 1.0 : area_snapped < 0 ? -1.0 : 0.0) * (area != 0 ? 1.0 : 0.0);
  const double inv_area = 1.0 / (area != 0 ? area : 1.0);
  double bary_a[3], bary_b[3], bary_c[3];
  for (int k = 0; k < 3; ++k) {
    const int n = (k + 1) % 3;
    const double odx = dx[k] * sign, ody = dy[k] * sign;
    const double owns = (ody < 0 || (ody == 0 && odx > 0)) ? 1.0 : 0.0;
    const double edge_a = ody * -kSubpixel, edge_b = odx * kSubpixel;
    t.edge[0][k] = ody * sx[n] - odx * sy[n] + owns + edge_a * col_lo + edge_b * row_lo;
    t.edge[1][k] = edge_a;
    t.edge[2][k] = edge_b;
    bary_a[k] = uy[k] * -inv_area;
    bary_b[k] = ux[k] * inv_area;
    bary_c[k] = (uy[k] * px[n] - ux[k] * py[n]) * inv_area;
  }
  const double dz0 = z[0] - z[2], dz1 = z[1] - z[2];
  const double z_a = dz0 * bary_a[0] + dz1 * bary_a[1];
  const double z_b = dz0 * bary_b[0] + dz1 * bary_b[1];
  t.depth[0] = z[2] + dz0 * bary_c[0] + dz1 * bary_c[1] + z_a * col_lo + z_b * row_lo;
  t.depth[1] = z_a;
  t.depth[2] = z_b;
  const double shading[9] = {bary_a[0], bary_a[1], bary_b[0], bary_b[1], bary_c[0], bary_c[1], iw[0], iw[1], iw[2]};
  std::copy(shading, shading + 9, t.shading);
  return t;
}

}  // namespace

// pos (N, 4) float64 clip positions, faces (F, 3) int64 indices into them (checked by the caller).
// Returns the (H, W, 4) float32 raster of avatar.raster: (u, v, z/w, triangle id + 1), zeros where empty.
at::Tensor rasterize(at::Tensor pos, at::Tensor faces, int64_t height, int64_t width) {
  TORCH_CHECK(pos.scalar_type() == at::kDouble && pos.is_contiguous() && pos.dim() == 2 && pos.size(1) == 4,
              "pos must be contiguous float64 (N, 4)");
  TORCH_CHECK(faces.scalar_type() == at::kLong && faces.is_contiguous() && faces.dim() == 2 && faces.size(1) == 3,
              "faces must be contiguous int64 (F, 3)");
  TORCH_CHECK(height > 0 && width > 0, "height and width must be positive");
  const int64_t n = pos.size(0), n_faces = faces.size(0);
  const double* p = pos.data_ptr<double>();
  const int64_t* f = faces.data_ptr<int64_t>();
  for (int64_t i = 0; i < 3 * n_faces; ++i) TORCH_CHECK(f[i] >= 0 && f[i] < n, "face index out of range");
  std::vector<double> vx(n), vy(n), vz(n), vi(n);
  for (int64_t i = 0; i < n; ++i) {
    const double* q = p + 4 * i;
    const double w = q[3];
    const bool usable = w > 0 && std::isfinite(q[0]) && std::isfinite(q[1]) && std::isfinite(q[2]) && std::isfinite(w);
    const double inv_w = usable ? 1.0 / w : 0.0;
    vx[i] = ((usable ? q[0] * inv_w : 0.0) + 1.0) * (0.5 * static_cast<double>(width)) - 0.5;
    vy[i] = ((usable ? q[1] * inv_w : 0.0) + 1.0) * (0.5 * static_cast<double>(height)) - 0.5;
    vz[i] = usable ? q[2] * inv_w : 0.0;
    vi[i] = inv_w;
  }
  std::vector<int64_t> keys(height * width, kEmptyKey);
  std::vector<RasterTriangle> tris(n_faces);
  for (int64_t tri = 0; tri < n_faces; ++tri) {
    const RasterTriangle& t = tris[tri] = setup_triangle(vx.data(), vy.data(), vz.data(), vi.data(), f + 3 * tri,
                                                         width, height);
    if (!t.alive) continue;
    for (int64_t r = 0; r < t.box_h; ++r) {
      const double row = static_cast<double>(r);
      int64_t* line = keys.data() + (t.row_lo + r) * width + t.col_lo;
      for (int64_t c = 0; c < t.box_w; ++c) {
        const double col = static_cast<double>(c);
        bool inside = true;
        for (int k = 0; k < 3; ++k) inside = inside && (t.edge[0][k] + t.edge[1][k] * col) + t.edge[2][k] * row > 0;
        if (!inside) continue;
        const double z = (t.depth[0] + t.depth[1] * col) + t.depth[2] * row;
        if (!(std::abs(z) <= 1.0)) continue;  // outside the near/far range (or NaN): never wins
        line[c] = std::min(line[c], depth_key(z, tri));
      }
    }
  }
  auto out = at::zeros({height, width, 4}, pos.options().dtype(at::kFloat));
  float* o = out.data_ptr<float>();
  for (int64_t i = 0; i < height * width; ++i) {
    if (keys[i] == kEmptyKey) continue;
    const int64_t winner = keys[i] & 0xFFFFFFFFLL;
    const double* s = tris[winner].shading;
    const int64_t row_i = i / width;
    const double col = static_cast<double>(i - row_i * width), row = static_cast<double>(row_i);
    const double b0 = s[0] * col + s[2] * row + s[4];
    const double b1 = s[1] * col + s[3] * row + s[5];
    const double q0 = b0 * s[6], q1 = b1 * s[7], q2 = (1.0 - b0 - b1) * s[8];
    const double inv_total = 1.0 / (q0 + q1 + q2);
    o[4 * i] = static_cast<float>(q0 * inv_total);
    o[4 * i + 1] = static_cast<float>(q1 * inv_total);
    o[4 * i + 2] = depth_of_key(keys[i]);
    o[4 * i + 3] = static_cast<float>(winner + 1);
  }
  return out;
}

// static (R, R, R) bool occupancy, x-major; points (P, 3) float32 in the box. Returns a copy with every
// cell holding a point occupied, and its 26 neighbours (clamped to the grid): avatar/occupancy.py's
// OccupancyGrid.with_points, which dilates a block around the points to the same cells.
at::Tensor occupancy_with_points(at::Tensor grid, at::Tensor points, double box_half) {
  TORCH_CHECK(grid.scalar_type() == at::kBool && grid.is_contiguous() && grid.dim() == 3 &&
                  grid.size(0) == grid.size(1) && grid.size(1) == grid.size(2),
              "grid must be a contiguous bool (R, R, R) tensor");
  check_contiguous_float(points, "points");
  TORCH_CHECK(points.dim() == 2 && points.size(1) == 3, "points must be (P, 3)");
  auto out = grid.clone();
  const Grid g{nullptr, static_cast<int>(grid.size(0))};
  const int64_t r = g.resolution;
  bool* o = out.data_ptr<bool>();
  const float* p = points.data_ptr<float>();
  // Cells already dilated as a point's cell (one bit each): most points share their cell with others.
  std::vector<uint64_t> seen((r * r * r + 63) / 64, 0);
  const float bh = static_cast<float>(box_half);
  for (int64_t i = 0; i < points.size(0); ++i) {
    const int64_t cell = cell_index(g, bh, p + 3 * i);
    const uint64_t bit = uint64_t{1} << (cell % 64);
    if (seen[cell / 64] & bit) continue;
    seen[cell / 64] |= bit;
    const int64_t x = cell / (r * r), y = cell / r % r, z = cell % r;
    for (int64_t a = std::max<int64_t>(x - 1, 0); a <= std::min(x + 1, r - 1); ++a)
      for (int64_t b = std::max<int64_t>(y - 1, 0); b <= std::min(y + 1, r - 1); ++b)
        for (int64_t c = std::max<int64_t>(z - 1, 0); c <= std::min(z + 1, r - 1); ++c) o[(a * r + b) * r + c] = true;
  }
  return out;
}

// --- The front plane's composition, as avatar/planes.py's FrontPlaneComposer._compose ------------
// Everything but its grid_sample, which stays torch's, in the same float32 operations in the same order,
// so the composed plane is the torch one to the bit.

// rast (H, W, 4) raster, where (H*W,) bool: the texels to compose; uv (T, 2) with faces_uv (F, 3) int32,
// z (N,) vertex depths with faces (F, 3) int32. Returns the texels' flat indices (M,) int64, their texture
// coordinates as grid_sample's grid (M, 2) = uv * 2 - 1, and their depth (M,).
std::vector<at::Tensor> front_texels(at::Tensor rast, at::Tensor where, at::Tensor uv, at::Tensor faces_uv,
                                     at::Tensor z, at::Tensor faces) {
  check_contiguous_float(rast, "rast");
  check_contiguous_float(uv, "uv");
  check_contiguous_float(z, "z");
  TORCH_CHECK(rast.dim() == 3 && rast.size(2) == 4, "rast must be (H, W, 4)");
  const int64_t n = rast.size(0) * rast.size(1);
  TORCH_CHECK(where.scalar_type() == at::kBool && where.is_contiguous() && where.numel() == n, "where must be (H*W,) bool");
  for (auto* f : {&faces_uv, &faces})
    TORCH_CHECK(f->scalar_type() == at::kInt && f->is_contiguous() && f->dim() == 2 && f->size(1) == 3,
                "faces must be contiguous int32 (F, 3)");
  TORCH_CHECK(faces_uv.size(0) == faces.size(0), "faces_uv and faces must have a row per triangle");
  const bool* w = where.data_ptr<bool>();
  const float* r = rast.data_ptr<float>();
  const float* t = uv.data_ptr<float>();
  const float* zp = z.data_ptr<float>();
  const int32_t* fu = faces_uv.data_ptr<int32_t>();
  const int32_t* fz = faces.data_ptr<int32_t>();
  const int64_t n_faces = faces.size(0), n_uv = uv.size(0), n_z = z.numel();
  std::vector<int64_t> picked;
  for (int64_t i = 0; i < n; ++i)
    if (w[i]) picked.push_back(i);
  const int64_t m = static_cast<int64_t>(picked.size());
  auto texels = at::empty({m}, rast.options().dtype(at::kLong));
  auto grid = at::zeros({m, 2}, rast.options());
  auto depth = at::zeros({m}, rast.options());
  std::copy(picked.begin(), picked.end(), texels.data_ptr<int64_t>());
  float* g = grid.data_ptr<float>();
  float* d = depth.data_ptr<float>();
  for (int64_t j = 0; j < m; ++j) {
    const float* px = r + 4 * picked[j];
    const int64_t tri = static_cast<int64_t>(px[3]) - 1;
    float uv_j[2] = {0.f, 0.f};  // raster.interpolate: zeros where no triangle
    if (tri >= 0) {
      TORCH_CHECK(tri < n_faces, "the raster refers to a triangle past the face list");
      const float u = px[0], v = px[1];
      const int32_t* a = fu + 3 * tri;
      const int32_t* b = fz + 3 * tri;
      TORCH_CHECK(a[0] < n_uv && a[1] < n_uv && a[2] < n_uv && b[0] < n_z && b[1] < n_z && b[2] < n_z,
                  "face index out of range");
      for (int c = 0; c < 2; ++c) {
        const float c0 = t[2 * a[0] + c], c1 = t[2 * a[1] + c], c2 = t[2 * a[2] + c];
        uv_j[c] = c2 + u * (c0 - c2) + v * (c1 - c2);
      }
      d[j] = zp[b[2]] + u * (zp[b[0]] - zp[b[2]]) + v * (zp[b[1]] - zp[b[2]]);
    }
    g[2 * j] = uv_j[0] * 2.f - 1.f;
    g[2 * j + 1] = uv_j[1] * 2.f - 1.f;
  }
  return {texels, grid, depth};
}

// Writes the composed texels into front (H*W, C'): over the static plane static0 (C', H*W), channel
// dynamic[c] becomes texture[c] (Cd, M) + depth_weight[c] * depth, by mask[c] (and where the static
// plane's surface is not nearer, read from channel depth_channel, when it is >= 0).
void blend_front(at::Tensor front, at::Tensor texels, at::Tensor texture, at::Tensor depth, at::Tensor static0,
                 at::Tensor dynamic, at::Tensor mask, at::Tensor depth_weight, int64_t depth_channel) {
  for (auto* t : {&front, &texture, &depth, &static0, &mask, &depth_weight}) check_contiguous_float(*t, "composer tensors");
  TORCH_CHECK(texels.scalar_type() == at::kLong && dynamic.scalar_type() == at::kLong && texels.is_contiguous() &&
                  dynamic.is_contiguous(), "texels and dynamic must be contiguous int64");
  const int64_t m = texels.numel(), cd = dynamic.numel(), channels = front.size(1), hw = front.size(0);
  TORCH_CHECK(front.dim() == 2 && static0.dim() == 2 && static0.size(0) == channels && static0.size(1) == hw,
              "front must be (H*W, C') and static0 (C', H*W)");
  TORCH_CHECK(texture.dim() == 2 && texture.size(0) == cd && texture.size(1) == m && depth.numel() == m &&
                  mask.numel() == cd && depth_weight.numel() == cd && depth_channel < cd,
              "texture (Cd, M), depth (M,), mask and depth_weight (Cd,)");
  const int64_t* tx = texels.data_ptr<int64_t>();
  const int64_t* dy = dynamic.data_ptr<int64_t>();
  for (int64_t j = 0; j < m; ++j) TORCH_CHECK(tx[j] >= 0 && tx[j] < hw, "texel out of range");
  for (int64_t c = 0; c < cd; ++c) TORCH_CHECK(dy[c] >= 0 && dy[c] < channels, "channel out of range");
  float* f = front.data_ptr<float>();
  const float* tex = texture.data_ptr<float>();
  const float* dp = depth.data_ptr<float>();
  const float* st = static0.data_ptr<float>();
  const float* mk = mask.data_ptr<float>();
  const float* dw = depth_weight.data_ptr<float>();
  const float sign = depth_channel >= 0 ? (dw[depth_channel] > 0 ? 1.f : dw[depth_channel] < 0 ? -1.f : 0.f) : 0.f;
  for (int64_t j = 0; j < m; ++j) {
    float keep = 1.f;  // 0 where the static plane's own surface is nearer
    if (depth_channel >= 0) {
      const float sel = st[dy[depth_channel] * hw + tx[j]];
      const float dyn = tex[depth_channel * m + j] + dw[depth_channel] * dp[j];
      keep = (sel - dyn) * sign > 0 ? 0.f : 1.f;
    }
    for (int64_t c = 0; c < cd; ++c) {
      const float sel = st[dy[c] * hw + tx[j]];
      const float dyn = tex[c * m + j] + dw[c] * dp[j];
      const float mc = depth_channel >= 0 ? mk[c] * keep : mk[c];
      f[tx[j] * channels + dy[c]] = sel * (1.f - mc) + dyn * mc;
    }
  }
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("density", &density, "Density at world points (see avatar/render.py)", py::call_guard<py::gil_scoped_release>());
  m.def("occupancy_with_points", &occupancy_with_points, "Occupancy grid plus the cells of points (see "
        "avatar/occupancy.py)", py::call_guard<py::gil_scoped_release>());
  m.def("front_texels", &front_texels, "The front plane's texels to compose (see avatar/planes.py)",
        py::call_guard<py::gil_scoped_release>());
  m.def("blend_front", &blend_front, "Compose texels into the front plane (see avatar/planes.py)",
        py::call_guard<py::gil_scoped_release>());
  m.def("rasterize", &rasterize, "Triangle rasterization (see avatar/raster/cpu.py)",
        py::call_guard<py::gil_scoped_release>());
  m.def("march", &march, "Fused occupancy-grid ray march (see avatar/march/__init__.py)",
        py::call_guard<py::gil_scoped_release>());
}
