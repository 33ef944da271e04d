#pragma once
// A small sampling loop: drives any scheduler with a user-supplied model callback and optional
// guidance, with a progress display on a terminal. And the attention-bias provider interface
// that ACE-Step-style transformers use per chunk.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ember/diffusion/guidance.h"
#include "ember/diffusion/scheduler.h"

namespace ember::diffusion {

// Model outputs (velocity / flow) at `sample` and timestep t.
struct ModelOutputs {
  Tensor cond;
  std::optional<Tensor> uncond;     // for CFG-style guidance
  std::optional<Tensor> text_only;  // for ACE-Step's double-condition CFG
};
using Model = std::function<ModelOutputs(const Tensor& sample, float timestep, int64_t step)>;

enum class GuidanceKind { None, Cfg, DoubleCfg, Apg, CfgZeroStar };

struct GuidanceConfig {
  GuidanceKind kind = GuidanceKind::None;
  float scale = 1.0f;        // CFG / APG / CFG-Zero* scale; DoubleCfg: the text scale
  float lyric_scale = 1.0f;  // DoubleCfg only
  ApgOptions apg;
  float apg_momentum = -0.75f;
  int64_t zero_steps = 1;    // CFG-Zero*
  bool zero_init = true;
};

struct PipelineOptions {
  int64_t num_inference_steps = 20;
  std::optional<std::vector<float>> sigmas, timesteps;
  std::optional<double> mu;
  GuidanceConfig guidance;
  float omega = 0.0f;
  Generator* generator = nullptr;  // stochastic schedulers
  bool progress = true;             // drawn on stderr when it is a terminal
  // Called after each step with (step, timestep, sample); return false to stop early.
  std::function<bool(int64_t, float, const Tensor&)> on_step;
};

// Runs from `initial` (noise at the first sigma) to the end of the schedule.
Tensor run_pipeline(Scheduler& scheduler, const Tensor& initial, const Model& model, const PipelineOptions& options = {});

// Additive attention bias for a chunk of queries [q_start, q_start + q_len) against keys
// [k_start, k_start + k_len): a tensor broadcastable to [B, heads, q_len, k_len].
class AttentionBiasProvider {
 public:
  virtual ~AttentionBiasProvider() = default;
  virtual Tensor bias(int64_t q_start, int64_t q_len, int64_t k_start, int64_t k_len, Device device) const = 0;
};

// ALiBi relative-position bias with the standard slopes (optionally symmetric |i - j|, as
// bidirectional encoders use it) plus a key padding mask.
class AlibiBiasProvider : public AttentionBiasProvider {
 public:
  AlibiBiasProvider(int64_t heads, bool symmetric = false);
  Tensor bias(int64_t q_start, int64_t q_len, int64_t k_start, int64_t k_len, Device device) const override;

 private:
  std::vector<float> slopes_;
  bool symmetric_;
};

}  // namespace ember::diffusion
