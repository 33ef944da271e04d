#pragma once
// Rotary position embeddings: standard, NTK-by-parts/YaRN (gpt-oss), and 3D RoPE for video.
#include <array>
#include <optional>
#include <span>
#include <vector>

#include "ember/core/tensor.h"

namespace ember::nn {

// How the rotated pairs sit in the head dimension.
//   HalfSplit:   pair i = (x[i], x[i + d/2])   (gpt-oss torch, Llama in HF layout)
//   Interleaved: pair i = (x[2i], x[2i + 1])   (GPT-J, Wan/Matrix-Game, Metal model.bin)
enum class RopeLayout : uint8_t { HalfSplit, Interleaved };

// YaRN / NTK-by-parts scaling as in gpt_oss/torch/model.py (RotaryEmbedding).
struct YarnScaling {
  double factor = 32.0;                 // rope_scaling_factor; <= 1 disables scaling
  double ntk_alpha = 1.0;
  double ntk_beta = 32.0;
  int64_t original_context = 4096;      // initial_context_length
};

struct RopeConfig {
  int64_t head_dim = 64;  // rotated dims (even)
  double theta = 10000.0;
  RopeLayout layout = RopeLayout::HalfSplit;
  std::optional<YarnScaling> yarn;
};

// inv_freq[i] for i < head_dim/2 (f32, computed as the reference does) and the YaRN
// concentration (1 without scaling) that multiplies both cos and sin.
struct RopeFrequencies {
  std::vector<float> inv_freq;
  float concentration = 1.0f;
};
RopeFrequencies rope_frequencies(const RopeConfig& config);

class Rope {
 public:
  explicit Rope(RopeConfig config);
  const RopeConfig& config() const { return config_; }
  const RopeFrequencies& frequencies() const { return freq_; }

  // cos and sin tables [count, head_dim/2] f32 for positions start .. start+count-1, concentration
  // applied. Angles are f32 products position × inv_freq, as in the reference.
  std::pair<Tensor, Tensor> tables(int64_t start, int64_t count, Device device = Device::cpu()) const;
  // Same for arbitrary absolute positions (a rolling cache's slots).
  std::pair<Tensor, Tensor> tables(const std::vector<int64_t>& positions,
                                   Device device = Device::cpu()) const;

  // Rotates x [..., tokens, ..., head_dim] whose dimension `token_dim` indexes tokens at
  // positions start_pos + t. Returns a new tensor of x's dtype (math in f32).
  Tensor apply(const Tensor& x, int64_t start_pos, int token_dim) const;
  // Rotates with precomputed tables (cos/sin [tokens, head_dim/2]).
  Tensor apply(const Tensor& x, const Tensor& cos, const Tensor& sin, int token_dim) const;

 private:
  RopeConfig config_;
  RopeFrequencies freq_;
};

// Rotates x with cos/sin [tokens, d/2] broadcast over every dim but token_dim and the last.
Tensor apply_rotary(const Tensor& x, const Tensor& cos, const Tensor& sin, int token_dim,
                    RopeLayout layout);

// 3D RoPE over a [frames, height, width] token grid in frame-major order (Wan / Matrix-Game-2):
// the head dim is split into (t, h, w) parts, each a standard RoPE over its axis index, pairs
// interleaved. Default split for head_dim d: t = d - 4*(d/6), h = w = 2*(d/6).
struct Rope3dConfig {
  int64_t head_dim = 64;
  double theta = 10000.0;
  std::optional<std::array<int64_t, 3>> split;  // dims for (t, h, w); each even, sum = head_dim
};

class Rope3d {
 public:
  explicit Rope3d(Rope3dConfig config);
  std::array<int64_t, 3> split() const { return split_; }
  // cos/sin [frames*height*width, head_dim/2] for frames frame_offset .. frame_offset+frames-1.
  std::pair<Tensor, Tensor> tables(int64_t frames, int64_t height, int64_t width,
                                   int64_t frame_offset, Device device = Device::cpu()) const;
  // cos/sin [positions, head_dim/2] at arbitrary (t, h, w) positions, fractional ones included
  // (the world model's camera-aware heads sit at screen + camera offset).
  std::pair<Tensor, Tensor> tables_at(std::span<const std::array<double, 3>> positions,
                                      Device device = Device::cpu()) const;
  // x [..., tokens = frames*height*width at token_dim, ..., head_dim].
  Tensor apply(const Tensor& x, int64_t frames, int64_t height, int64_t width,
               int64_t frame_offset, int token_dim) const;

 private:
  Rope3dConfig config_;
  std::array<int64_t, 3> split_;
  std::array<std::vector<float>, 3> inv_freq_;
};

}  // namespace ember::nn
