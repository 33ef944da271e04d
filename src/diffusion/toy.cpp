#include "ember/diffusion/toy.h"

#include <cmath>

#include "ember/ops.h"

namespace ember::diffusion {

GaussianMixtureFlow::GaussianMixtureFlow(std::vector<Component> components) : components_(std::move(components)) {
  EMBER_CHECK(!components_.empty(), "GaussianMixtureFlow: no components");
  double total = 0;
  for (const auto& c : components_) {
    EMBER_CHECK(c.stddev > 0 && c.weight > 0, "GaussianMixtureFlow: stddev and weight must be positive");
    total += c.weight;
  }
  for (auto& c : components_) c.weight /= total;
}

Tensor GaussianMixtureFlow::velocity(const Tensor& x, double t, int only) const {
  EMBER_CHECK(x.ndim() == 2 && x.dim(1) == 2, "GaussianMixtureFlow: x must be [N, 2], got {}", x.shape().str());
  EMBER_CHECK(only < int(components_.size()), "GaussianMixtureFlow: no component {}", only);
  auto xv = x.to_vector<float>();
  const int64_t n = x.dim(0);
  std::vector<float> out(static_cast<size_t>(n * 2));
  for (int64_t i = 0; i < n; ++i) {
    const double px = xv[size_t(2 * i)], py = xv[size_t(2 * i + 1)];
    // Log-weights first (subtract the max: far from a component its density underflows).
    std::vector<double> lw(components_.size(), -INFINITY);
    double top = -INFINITY;
    for (size_t k = 0; k < components_.size(); ++k) {
      if (only >= 0 && int(k) != only) continue;
      const auto& c = components_[k];
      const double var = (1 - t) * (1 - t) * c.stddev * c.stddev + t * t;
      const double dx = px - (1 - t) * c.mean[0], dy = py - (1 - t) * c.mean[1];
      lw[k] = std::log(c.weight) - std::log(var) - (dx * dx + dy * dy) / (2 * var);
      top = std::max(top, lw[k]);
    }
    double wsum = 0, vx = 0, vy = 0;
    for (size_t k = 0; k < components_.size(); ++k) {
      if (lw[k] == -INFINITY) continue;
      const auto& c = components_[k];
      const double var = (1 - t) * (1 - t) * c.stddev * c.stddev + t * t;
      const double dx = px - (1 - t) * c.mean[0], dy = py - (1 - t) * c.mean[1];
      // (x0, eps) given x_t = x within component k: E[x0] = mu + (1-t) s^2/var dx, E[eps] = t/var dx.
      const double g0 = (1 - t) * c.stddev * c.stddev / var, g1 = t / var;
      const double w = std::exp(lw[k] - top);
      wsum += w;
      vx += w * (g1 * dx - (c.mean[0] + g0 * dx));
      vy += w * (g1 * dy - (c.mean[1] + g0 * dy));
    }
    out[size_t(2 * i)] = float(vx / wsum);
    out[size_t(2 * i + 1)] = float(vy / wsum);
  }
  return Tensor::from_vector(out, {n, 2}).to(x.device());
}

std::array<double, 2> GaussianMixtureFlow::mean() const {
  std::array<double, 2> m{0, 0};
  for (const auto& c : components_) m[0] += c.weight * c.mean[0], m[1] += c.weight * c.mean[1];
  return m;
}

std::array<double, 4> GaussianMixtureFlow::covariance() const {
  const auto m = mean();
  std::array<double, 4> cv{0, 0, 0, 0};
  for (const auto& c : components_) {
    const double dx = c.mean[0] - m[0], dy = c.mean[1] - m[1], v = c.stddev * c.stddev;
    cv[0] += c.weight * (v + dx * dx);
    cv[1] += c.weight * dx * dy;
    cv[3] += c.weight * (v + dy * dy);
  }
  cv[2] = cv[1];
  return cv;
}

double GaussianMixtureFlow::density(double x, double y) const {
  double p = 0;
  for (const auto& c : components_) {
    const double v = c.stddev * c.stddev, dx = x - c.mean[0], dy = y - c.mean[1];
    p += c.weight * std::exp(-(dx * dx + dy * dy) / (2 * v)) / (2 * M_PI * v);
  }
  return p;
}

Tensor GaussianMixtureFlow::sample(int64_t n, Generator& gen) const {
  std::vector<float> out(static_cast<size_t>(n * 2));
  for (int64_t i = 0; i < n; ++i) {
    double u = gen.uniform(), acc = 0;
    size_t k = 0;
    for (; k + 1 < components_.size(); ++k)
      if (u < (acc += components_[k].weight)) break;
    const auto& c = components_[k];
    out[size_t(2 * i)] = float(c.mean[0] + c.stddev * gen.normal());
    out[size_t(2 * i + 1)] = float(c.mean[1] + c.stddev * gen.normal());
  }
  return Tensor::from_vector(out, {n, 2});
}

}  // namespace ember::diffusion
