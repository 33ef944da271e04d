#pragma once
// A flow-matching toy with a closed-form velocity: a 2-D mixture of isotropic Gaussians under the
// linear path x_t = (1 - t) x0 + t eps. Used by examples/flow_toy and the pipeline tests.
#include <array>
#include <vector>

#include "ember/core/generator.h"
#include "ember/core/tensor.h"

namespace ember::diffusion {

class GaussianMixtureFlow {
 public:
  struct Component {
    std::array<double, 2> mean;
    double stddev;
    double weight;
  };
  explicit GaussianMixtureFlow(std::vector<Component> components);
  const std::vector<Component>& components() const { return components_; }

  // E[eps - x0 | x_t = x] for x [N, 2] at t in [0, 1]; `only` >= 0 conditions on one component.
  Tensor velocity(const Tensor& x, double t, int only = -1) const;
  std::array<double, 2> mean() const;
  std::array<double, 4> covariance() const;  // row-major 2x2
  double density(double x, double y) const;
  Tensor sample(int64_t n, Generator& gen) const;  // exact draws from the target, [n, 2]

 private:
  std::vector<Component> components_;
};

}  // namespace ember::diffusion
