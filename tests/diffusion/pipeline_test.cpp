// The sampling loop on the closed-form flow of a Gaussian mixture: samples land on the target's
// moments, and guidance toward one component moves mass there.
#include "ember/diffusion/pipeline.h"

#include <gtest/gtest.h>

#include <cmath>

#include "ember/ops.h"
#include "test_util.h"

namespace ember::diffusion {
namespace {

// Exact velocity of x_t = (1 - t) x0 + t eps for a 2-D mixture of N(mu_k, s_k^2 I) (t = sigma):
// v(x, t) = E[eps - x0 | x_t = x], a posterior-weighted mix of per-component conditional velocities.
struct Mixture {
  std::vector<std::array<double, 2>> mu{{{-2.0, 0.0}}, {{2.0, 1.0}}};
  std::vector<double> s{0.5, 0.7}, w{0.5, 0.5};
  Tensor velocity(const Tensor& x, double t, int only = -1) const {
    auto xv = x.to_vector<float>();
    const int64_t n = x.dim(0);
    std::vector<float> out(size_t(n * 2));
    for (int64_t i = 0; i < n; ++i) {
      const double px = xv[size_t(2 * i)], py = xv[size_t(2 * i + 1)];
      double wsum = 0, vx = 0, vy = 0;
      for (size_t k = 0; k < mu.size(); ++k) {
        if (only >= 0 && int(k) != only) continue;
        const double var = (1 - t) * (1 - t) * s[k] * s[k] + t * t;
        const double mx = (1 - t) * mu[k][0], my = (1 - t) * mu[k][1];
        const double lw = std::log(w[k]) - std::log(var) - ((px - mx) * (px - mx) + (py - my) * (py - my)) / (2 * var);
        // E[x0 | x, k] and E[eps | x, k] from the joint Gaussian of (x0, eps) given x_t = x.
        const double gain0 = (1 - t) * s[k] * s[k] / var, gain1 = t / var;
        const double x0x = mu[k][0] + gain0 * (px - mx), x0y = mu[k][1] + gain0 * (py - my);
        const double ex = gain1 * (px - mx), ey = gain1 * (py - my);
        const double wk = std::exp(lw);
        wsum += wk, vx += wk * (ex - x0x), vy += wk * (ey - x0y);
      }
      out[size_t(2 * i)] = float(vx / wsum), out[size_t(2 * i + 1)] = float(vy / wsum);
    }
    return Tensor::from_vector(out, {n, 2}).to(x.device());
  }
};

TEST(Pipeline, MixtureMomentsAndGuidance) {
  Mixture mix;
  const int64_t n = 4000;
  Generator g(5);
  Tensor noise = randn({n, 2}, g);
  auto moments = [&](const Tensor& x) {
    auto v = x.to_vector<float>();
    double m[2] = {0, 0}, right = 0;
    for (int64_t i = 0; i < n; ++i) m[0] += v[size_t(2 * i)], m[1] += v[size_t(2 * i + 1)], right += v[size_t(2 * i)] > 0;
    return std::array<double, 3>{m[0] / n, m[1] / n, right / n};
  };
  // Target: mean (0, 0.5), half the mass on each side of x = 0.
  for (int which = 0; which < 3; ++which) {
    std::unique_ptr<Scheduler> s;
    if (which == 0) s = std::make_unique<FlowMatchEuler>();
    if (which == 1) s = std::make_unique<FlowMatchHeun>();
    if (which == 2) s = std::make_unique<PingPong>();
    Generator sg(9);
    Tensor x = run_pipeline(*s, noise, [&](const Tensor& xt, float t, int64_t) { return ModelOutputs{mix.velocity(xt, t / 1000.0)}; },
                            {.num_inference_steps = which == 1 ? 20 : 40, .generator = &sg, .progress = false});
    auto m = moments(x);
    // Standard errors with n = 4000: mean-x ~ 0.033, fraction ~ 0.008; allow ~4 sigma.
    EXPECT_NEAR(m[0], 0.0, 0.14) << s->name();
    EXPECT_NEAR(m[1], 0.5, 0.06) << s->name();
    EXPECT_NEAR(m[2], 0.5, 0.035) << s->name();
  }
  // CFG toward component 1 (x > 0): cond = that component's flow, uncond = the mixture's.
  FlowMatchEuler e;
  Tensor x = run_pipeline(e, noise,
                          [&](const Tensor& xt, float t, int64_t) {
                            return ModelOutputs{mix.velocity(xt, t / 1000.0, 1), mix.velocity(xt, t / 1000.0)};
                          },
                          {.num_inference_steps = 40, .guidance = {.kind = GuidanceKind::Cfg, .scale = 2.0f}, .progress = false});
  EXPECT_GT(moments(x)[2], 0.97);
  EXPECT_THROW(run_pipeline(e, noise, [&](const Tensor& xt, float, int64_t) { return ModelOutputs{xt}; },
                            {.guidance = {.kind = GuidanceKind::Cfg}, .progress = false}),
               Error);
}

TEST(Pipeline, AlibiBiasProvider) {
  AlibiBiasProvider p(4), sym(4, true);
  Tensor b = p.bias(10, 2, 8, 4, Device::cpu());
  EXPECT_EQ(b.shape(), (Shape{1, 4, 2, 4}));
  EXPECT_FLOAT_EQ(b.to_vector<float>()[0], -0.25f * 2);  // slope 2^-2 for head 0 of 4, distance 2
  EXPECT_FLOAT_EQ(sym.bias(0, 1, 0, 3, Device::cpu()).to_vector<float>()[2], -0.25f * 2);
}

}  // namespace
}  // namespace ember::diffusion
