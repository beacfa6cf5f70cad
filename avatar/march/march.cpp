// The accelerated renderer's ray march in one loop per ray: occupied-span scan on the coarse grid,
// density rounds through the fine grid with early termination (a step that crosses a surface is
// bisected to find it), colour at the samples that carry weight, compositing. It follows
// avatar/render.py's pure-torch path step by step and in float32 throughout (the surface decoder's
// claim channels carry values of ~4e3 whose differences are the colours, so the arithmetic must be
// torch's, not a faster approximation of it); the one departure is that a ray stops at the sample
// that spends its transmittance (see march_ray).
//
// Threads: the GIL is released by the binding; rays are cut into tiles that the caller and its
// helper threads take from a shared counter (see parallel_tiles), so one frame uses every core it is
// given and a tile of sky costs as little as it should.
#include <torch/extension.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
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
inline void sum_planes(const Plane* planes, int channels, float box_half, const float p[3], float* out,
                       float* tmp) {
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
  sum_planes(p.density_planes, p.density->channels, p.box_half, pt, s.features.data(), s.tmp.data());
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
        sum_planes(p.colour_planes, p.colour->channels, p.box_half, pc, s.features.data(), s.tmp.data());
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

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("density", &density, "Density at world points (see avatar/render.py)", py::call_guard<py::gil_scoped_release>());
  m.def("march", &march, "Fused occupancy-grid ray march (see avatar/march/__init__.py)",
        py::call_guard<py::gil_scoped_release>());
}
