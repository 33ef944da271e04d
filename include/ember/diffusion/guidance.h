#pragma once
// Guidance for diffusion sampling (spec/diffusion.md), as ACE-Step's apg_guidance.py defines it:
// classifier-free guidance, ACE-Step's double-condition CFG, APG with its momentum buffer, and
// CFG-Zero*. Tensors of any shape and device.
#include <optional>
#include <vector>

#include "ember/core/tensor.h"

namespace ember::diffusion {

// uncond + scale * (cond - uncond)
Tensor cfg(const Tensor& cond, const Tensor& uncond, float scale);

// (1 - s_text) uncond + (s_text - s_lyric) text_only + s_lyric cond
Tensor cfg_double_condition(const Tensor& cond, const Tensor& uncond, const Tensor& text_only, float scale_text,
                            float scale_lyric);

// running_average <- update + momentum * running_average (starts at 0).
class MomentumBuffer {
 public:
  explicit MomentumBuffer(float momentum = -0.75f) : momentum_(momentum) {}
  void update(const Tensor& value);
  const Tensor& running_average() const { return average_; }
  void reset() { average_ = Tensor(); }

 private:
  float momentum_;
  Tensor average_;
};

struct ApgOptions {
  float eta = 0.0f;
  float norm_threshold = 2.5f;     // <= 0 disables the norm clamp
  std::vector<int> dims = {-1, -2};
};

// Adaptive projected guidance: diff = cond - uncond (through the momentum buffer if given),
// clamped to norm_threshold over dims, split into the parts parallel and orthogonal to cond;
// cond + (scale - 1) (orthogonal + eta parallel).
Tensor apg(const Tensor& cond, const Tensor& uncond, float scale, MomentumBuffer* momentum = nullptr,
           const ApgOptions& options = {});

// CFG-Zero*: alpha = <cond, uncond> / (|uncond|^2 + 1e-8) per batch item; zeros for steps
// i <= zero_steps when use_zero_init; else alpha uncond + scale (cond - alpha uncond).
Tensor cfg_zero_star(const Tensor& cond, const Tensor& uncond, float scale, int64_t step, int64_t zero_steps = 1,
                     bool use_zero_init = true);
// [B, N] x [B, N] -> [B, 1]
Tensor optimized_scale(const Tensor& positive_flat, const Tensor& negative_flat);

}  // namespace ember::diffusion
