#include "ember/nn/rope.h"

#include <cmath>

#include "ember/ops.h"

namespace ember::nn {

RopeFrequencies rope_frequencies(const RopeConfig& config) {
  const int64_t d = config.head_dim;
  EMBER_CHECK(d > 0 && d % 2 == 0, "rope: head_dim must be positive and even, got {}", d);
  EMBER_CHECK(config.theta > 1.0, "rope: theta must be > 1, got {}", config.theta);
  const int64_t half = d / 2;
  // f32 arithmetic throughout, scalars rounded to f32, mirroring gpt_oss/torch/model.py.
  std::vector<float> freq(static_cast<size_t>(half));
  const float base = float(config.theta);
  for (int64_t i = 0; i < half; ++i) freq[size_t(i)] = std::pow(base, float(2 * i) / float(d));

  RopeFrequencies out;
  out.inv_freq.resize(size_t(half));
  if (!config.yarn || config.yarn->factor <= 1.0) {
    for (int64_t i = 0; i < half; ++i) out.inv_freq[size_t(i)] = 1.0f / freq[size_t(i)];
    return out;
  }
  const YarnScaling& y = *config.yarn;
  EMBER_CHECK(y.original_context > 0 && y.ntk_alpha > 0 && y.ntk_beta > 0,
              "rope: YaRN original_context, ntk_alpha and ntk_beta must be positive");
  out.concentration = float(0.1 * std::log(y.factor) + 1.0);
  const double d_half = double(half);
  const double low = d_half * std::log(double(y.original_context) / (y.ntk_beta * 2 * M_PI)) /
                     std::log(config.theta);
  const double high = d_half * std::log(double(y.original_context) / (y.ntk_alpha * 2 * M_PI)) /
                      std::log(config.theta);
  EMBER_CHECK(0 < low && low < high && high < d_half - 1,
              "rope: YaRN needs 0 < low < high < head_dim/2 - 1 (got low {}, high {}); check "
              "ntk_alpha/ntk_beta/original_context",
              low, high);
  const float scale = float(y.factor), flow = float(low), span = float(high - low);
  for (int64_t i = 0; i < half; ++i) {
    float interpolation = 1.0f / (scale * freq[size_t(i)]);
    float extrapolation = 1.0f / freq[size_t(i)];
    float ramp = std::clamp((float(i) - flow) / span, 0.0f, 1.0f);
    float mask = 1.0f - ramp;
    out.inv_freq[size_t(i)] = interpolation * (1.0f - mask) + extrapolation * mask;
  }
  return out;
}

Rope::Rope(RopeConfig config) : config_(config), freq_(rope_frequencies(config_)) {}

std::pair<Tensor, Tensor> Rope::tables(int64_t start, int64_t count, Device device) const {
  EMBER_CHECK(start >= 0 && count >= 0, "rope: invalid positions start {} count {}", start, count);
  std::vector<int64_t> pos(static_cast<size_t>(count));
  for (int64_t t = 0; t < count; ++t) pos[size_t(t)] = start + t;
  return tables(pos, device);
}

std::pair<Tensor, Tensor> Rope::tables(const std::vector<int64_t>& positions, Device device) const {
  const size_t half = freq_.inv_freq.size();
  std::vector<float> c(positions.size() * half), s(positions.size() * half);
  for (size_t t = 0; t < positions.size(); ++t) {
    EMBER_CHECK(positions[t] >= 0, "rope: negative position {}", positions[t]);
    const float p = float(positions[t]);
    for (size_t i = 0; i < half; ++i) {
      const float angle = p * freq_.inv_freq[i];  // f32 product, as torch.einsum("i,j->ij")
      c[t * half + i] = float(std::cos(double(angle))) * freq_.concentration;
      s[t * half + i] = float(std::sin(double(angle))) * freq_.concentration;
    }
  }
  Shape shape{int64_t(positions.size()), int64_t(half)};
  return {Tensor::from_vector(c, shape).to(device), Tensor::from_vector(s, shape).to(device)};
}

Tensor Rope::apply(const Tensor& x, int64_t start_pos, int token_dim) const {
  int td = wrap_dim(token_dim, x.ndim(), "rope token_dim");
  auto [c, s] = tables(start_pos, x.dim(td), x.device());
  return apply_rotary(x, c, s, td, config_.layout);
}

Tensor Rope::apply(const Tensor& x, const Tensor& cos, const Tensor& sin, int token_dim) const {
  return apply_rotary(x, cos, sin, token_dim, config_.layout);
}

Tensor apply_rotary(const Tensor& x, const Tensor& cos, const Tensor& sin, int token_dim,
                    RopeLayout layout) {
  EMBER_CHECK(is_floating(x.dtype()), "rope: x must be a float tensor, got {}",
              dtype_name(x.dtype()));
  EMBER_CHECK(x.ndim() >= 2, "rope: x needs at least [tokens, head_dim], got {}", x.shape().str());
  const int td = wrap_dim(token_dim, x.ndim(), "rope token_dim");
  EMBER_CHECK(td != x.ndim() - 1, "rope: token_dim must not be the head dim");
  const int64_t d = x.dim(-1), tokens = x.dim(td);
  EMBER_CHECK(d % 2 == 0, "rope: head_dim {} is odd", d);
  EMBER_CHECK(cos.shape() == (Shape{tokens, d / 2}) && sin.shape() == cos.shape(),
              "rope: cos/sin must be [{}, {}] for x {}, got {} and {}", tokens, d / 2,
              x.shape().str(), cos.shape().str(), sin.shape().str());
  // Broadcast shape for the tables: tokens at token_dim, pairs last, 1 elsewhere.
  Shape bshape;
  for (int i = 0; i < x.ndim(); ++i) bshape.push_back(i == td ? tokens : 1);
  bshape[x.ndim() - 1] = d / 2;
  Tensor c = cos.to(DType::F32).reshape(bshape), s = sin.to(DType::F32).reshape(bshape);
  Tensor xf = x.to(DType::F32);
  Tensor out;
  if (layout == RopeLayout::HalfSplit) {
    Tensor x1 = xf.narrow(-1, 0, d / 2), x2 = xf.narrow(-1, d / 2, d / 2);
    out = cat({sub(mul(x1, c), mul(x2, s)), add(mul(x2, c), mul(x1, s))}, -1);
  } else {
    Shape pairs = x.shape();
    pairs[x.ndim() - 1] = d / 2;
    pairs.push_back(2);
    Tensor xp = xf.contiguous().view(pairs);
    Tensor x1 = xp.select(-1, 0), x2 = xp.select(-1, 1);
    out = stack({sub(mul(x1, c), mul(x2, s)), add(mul(x2, c), mul(x1, s))}, -1).view(x.shape());
  }
  return out.to(x.dtype());
}

// ---------------- 3D RoPE ----------------

Rope3d::Rope3d(Rope3dConfig config) : config_(config) {
  const int64_t d = config.head_dim;
  EMBER_CHECK(d > 0 && d % 2 == 0, "rope3d: head_dim must be positive and even, got {}", d);
  split_ = config.split ? *config.split
                        : std::array<int64_t, 3>{d - 4 * (d / 6), 2 * (d / 6), 2 * (d / 6)};
  EMBER_CHECK(split_[0] + split_[1] + split_[2] == d,
              "rope3d: split ({}, {}, {}) does not sum to head_dim {}", split_[0], split_[1],
              split_[2], d);
  for (int a = 0; a < 3; ++a) {
    EMBER_CHECK(split_[a] > 0 && split_[a] % 2 == 0, "rope3d: split part {} = {} must be even and > 0",
                a, split_[a]);
    // Wan's rope_params: 1 / theta^(arange(0, dim, 2) / dim) in float64.
    for (int64_t i = 0; i < split_[a]; i += 2)
      inv_freq_[a].push_back(float(1.0 / std::pow(config.theta, double(i) / double(split_[a]))));
  }
}

std::pair<Tensor, Tensor> Rope3d::tables(int64_t frames, int64_t height, int64_t width,
                                         int64_t frame_offset, Device device) const {
  EMBER_CHECK(frames > 0 && height > 0 && width > 0 && frame_offset >= 0,
              "rope3d: invalid grid {}x{}x{} at frame offset {}", frames, height, width,
              frame_offset);
  std::vector<std::array<double, 3>> pos;
  pos.reserve(size_t(frames * height * width));
  for (int64_t f = 0; f < frames; ++f)
    for (int64_t h = 0; h < height; ++h)
      for (int64_t w = 0; w < width; ++w) pos.push_back({double(frame_offset + f), double(h), double(w)});
  return tables_at(pos, device);
}

std::pair<Tensor, Tensor> Rope3d::tables_at(std::span<const std::array<double, 3>> positions,
                                            Device device) const {
  const int64_t half = config_.head_dim / 2, tokens = int64_t(positions.size());
  EMBER_CHECK(tokens > 0, "rope3d: no positions");
  std::vector<float> c(size_t(tokens * half)), s(size_t(tokens * half));
  // Angles in float64 from the f64 frequencies, as rope_params/torch.polar do.
  std::array<std::vector<double>, 3> inv;
  for (int a = 0; a < 3; ++a)
    for (int64_t i = 0; i < split_[a]; i += 2)
      inv[a].push_back(1.0 / std::pow(config_.theta, double(i) / double(split_[a])));
  for (int64_t t = 0; t < tokens; ++t) {
    const auto& pos = positions[size_t(t)];
    EMBER_CHECK(std::isfinite(pos[0]) && std::isfinite(pos[1]) && std::isfinite(pos[2]),
                "rope3d: position {} is not finite", t);
    int64_t k = 0;
    for (int a = 0; a < 3; ++a)
      for (double freq : inv[a]) {
        c[size_t(t * half + k)] = float(std::cos(pos[size_t(a)] * freq));
        s[size_t(t * half + k)] = float(std::sin(pos[size_t(a)] * freq));
        ++k;
      }
  }
  Shape shape{tokens, half};
  return {Tensor::from_vector(c, shape).to(device), Tensor::from_vector(s, shape).to(device)};
}

Tensor Rope3d::apply(const Tensor& x, int64_t frames, int64_t height, int64_t width,
                     int64_t frame_offset, int token_dim) const {
  EMBER_CHECK(x.dim(-1) == config_.head_dim, "rope3d: x head dim {} != head_dim {}", x.dim(-1),
              config_.head_dim);
  int td = wrap_dim(token_dim, x.ndim(), "rope3d token_dim");
  EMBER_CHECK(x.dim(td) == frames * height * width,
              "rope3d: x has {} tokens at dim {}, grid {}x{}x{} has {}", x.dim(td), td, frames,
              height, width, frames * height * width);
  auto [c, s] = tables(frames, height, width, frame_offset, x.device());
  return apply_rotary(x, c, s, td, RopeLayout::Interleaved);
}

}  // namespace ember::nn
