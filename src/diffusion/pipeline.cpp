#include "ember/diffusion/pipeline.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "ember/core/log.h"
#include "ember/nn/masks.h"
#include "ember/ops.h"

namespace ember::diffusion {

Tensor run_pipeline(Scheduler& s, const Tensor& initial, const Model& model, const PipelineOptions& o) {
  EMBER_CHECK(initial.defined(), "run_pipeline: the initial sample is undefined");
  EMBER_CHECK(bool(model), "run_pipeline: no model callback");
  retrieve_timesteps(s, o.sigmas || o.timesteps ? std::nullopt : std::optional<int64_t>(o.num_inference_steps),
                     o.timesteps, o.sigmas, o.mu);
  MomentumBuffer momentum(o.guidance.apg_momentum);
  const bool draw = o.progress && ::isatty(STDERR_FILENO) && log_level() < LogLevel::Quiet;
  const auto start = std::chrono::steady_clock::now();
  const auto& ts = s.timesteps();
  Tensor x = initial;
  for (size_t i = 0; i < ts.size(); ++i) {
    ModelOutputs out = model(x, ts[i], int64_t(i));
    EMBER_CHECK(out.cond.defined() && out.cond.shape() == x.shape(),
                "run_pipeline: the model returned {} for a sample of shape {}", out.cond.defined() ? out.cond.shape().str() : "nothing",
                x.shape().str());
    Tensor v = out.cond;
    const auto& gc = o.guidance;
    auto need = [&](const std::optional<Tensor>& t, const char* what) -> const Tensor& {
      EMBER_CHECK(t.has_value(), "run_pipeline: guidance needs the model's {} output", what);
      return *t;
    };
    switch (gc.kind) {
      case GuidanceKind::None: break;
      case GuidanceKind::Cfg: v = cfg(out.cond, need(out.uncond, "uncond"), gc.scale); break;
      case GuidanceKind::DoubleCfg:
        v = cfg_double_condition(out.cond, need(out.uncond, "uncond"), need(out.text_only, "text_only"), gc.scale,
                                 gc.lyric_scale);
        break;
      case GuidanceKind::Apg: v = apg(out.cond, need(out.uncond, "uncond"), gc.scale, &momentum, gc.apg); break;
      case GuidanceKind::CfgZeroStar:
        v = cfg_zero_star(out.cond, need(out.uncond, "uncond"), gc.scale, int64_t(i), gc.zero_steps, gc.zero_init);
        break;
    }
    x = s.step(v, ts[i], x, {.omega = o.omega, .generator = o.generator});
    if (draw) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::fprintf(stderr, "\rsampling %zu/%zu  %.1f steps/s ", i + 1, ts.size(), double(i + 1) / std::max(secs, 1e-9));
    }
    if (o.on_step && !o.on_step(int64_t(i), ts[i], x)) break;
  }
  if (draw) std::fprintf(stderr, "\n");
  return x;
}

AlibiBiasProvider::AlibiBiasProvider(int64_t heads, bool symmetric) : slopes_(nn::alibi_slopes(heads)), symmetric_(symmetric) {}

Tensor AlibiBiasProvider::bias(int64_t q_start, int64_t q_len, int64_t k_start, int64_t k_len, Device device) const {
  EMBER_CHECK(q_len >= 0 && k_len >= 0, "AlibiBiasProvider: negative chunk length");
  Tensor b = nn::alibi_bias(slopes_, q_start, q_len, k_start, k_len, device);
  if (symmetric_) b = neg(unary(UnaryOp::Abs, b));  // -slope * |i - j|
  return b.unsqueeze(0);
}

}  // namespace ember::diffusion
