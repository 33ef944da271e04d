#pragma once
// Patch embedding (Conv2d/Conv3d with kernel = stride = patch) and its inverse (ConvTranspose2d/3d,
// same geometry), with weights in PyTorch layout so real checkpoints load. Sizes that the patch
// does not divide are an error (no implicit padding).
#include <optional>
#include <vector>

#include "ember/core/tensor.h"

namespace ember::nn {

// Images: weight [D, C, ph, pw]. Videos: weight [D, C, pt, ph, pw].
class PatchEmbed {
 public:
  PatchEmbed(Tensor weight, std::optional<Tensor> bias = std::nullopt);
  int spatial_dims() const { return int(patch_.size()); }  // 2 or 3
  const std::vector<int64_t>& patch() const { return patch_; }
  // x [B, C, H, W] or [B, C, F, H, W] -> tokens [B, N, D], N in frame-major (row-major) order of
  // the patch grid; grid() gives that grid for an input.
  Tensor forward(const Tensor& x) const;
  std::vector<int64_t> grid(const Shape& input_shape) const;

 private:
  Tensor weight_2d_;  // [D, C * prod(patch)]
  std::optional<Tensor> bias_;
  int64_t channels_, dim_;
  std::vector<int64_t> patch_;
};

// ConvTranspose with kernel = stride = patch: weight [D, C, ph, pw] or [D, C, pt, ph, pw]
// (PyTorch's [in, out, k...] layout), bias [C].
class Unpatchify {
 public:
  Unpatchify(Tensor weight, std::optional<Tensor> bias = std::nullopt);
  // tokens [B, N, D] with N = prod(grid) (frame-major) -> [B, C, grid*patch...].
  Tensor forward(const Tensor& tokens, const std::vector<int64_t>& grid) const;

 private:
  Tensor weight_2d_;  // [D, C * prod(patch)]
  std::optional<Tensor> bias_;
  int64_t channels_, dim_;
  std::vector<int64_t> patch_;
};

}  // namespace ember::nn
