#include "ember/nn/patch.h"

#include <numeric>

#include "ember/ops.h"

namespace ember::nn {

namespace {

std::vector<int64_t> kernel_of(const Tensor& w, const char* what) {
  EMBER_CHECK(w.defined() && (w.ndim() == 4 || w.ndim() == 5),
              "{}: weight must be [D, C, ph, pw] or [D, C, pt, ph, pw], got {}", what,
              w.defined() ? w.shape().str() : "undefined");
  std::vector<int64_t> k(w.shape().begin() + 2, w.shape().end());
  for (int64_t p : k) EMBER_CHECK(p > 0, "{}: patch sizes must be positive, got {}", what, w.shape().str());
  return k;
}

int64_t product(const std::vector<int64_t>& v) {
  return std::accumulate(v.begin(), v.end(), int64_t(1), std::multiplies<>());
}

}  // namespace

PatchEmbed::PatchEmbed(Tensor weight, std::optional<Tensor> bias)
    : bias_(std::move(bias)), channels_(weight.dim(1)), dim_(weight.dim(0)),
      patch_(kernel_of(weight, "PatchEmbed")) {
  if (bias_)
    EMBER_CHECK(bias_->shape() == (Shape{dim_}), "PatchEmbed: bias has shape {}, expected [{}]",
                bias_->shape().str(), dim_);
  weight_2d_ = weight.contiguous().view({dim_, -1});
}

std::vector<int64_t> PatchEmbed::grid(const Shape& s) const {
  const int n = spatial_dims();
  EMBER_CHECK(s.size() == 2 + n, "PatchEmbed: input must be [B, C, {}], got {}",
              n == 2 ? "H, W" : "F, H, W", s.str());
  EMBER_CHECK(s[1] == channels_, "PatchEmbed: input has {} channels, weight expects {}", s[1], channels_);
  std::vector<int64_t> g;
  for (int i = 0; i < n; ++i) {
    EMBER_CHECK(s[2 + i] % patch_[size_t(i)] == 0,
                "PatchEmbed: input size {} at dim {} is not a multiple of the patch size {}",
                s[2 + i], 2 + i, patch_[size_t(i)]);
    g.push_back(s[2 + i] / patch_[size_t(i)]);
  }
  return g;
}

Tensor PatchEmbed::forward(const Tensor& x) const {
  const auto g = grid(x.shape());
  const int64_t B = x.dim(0), C = channels_, N = product(g);
  Tensor patches;
  if (spatial_dims() == 2) {
    // [B, C, gh, ph, gw, pw] -> [B, gh, gw, C, ph, pw]
    patches = x.contiguous()
                  .view({B, C, g[0], patch_[0], g[1], patch_[1]})
                  .permute({0, 2, 4, 1, 3, 5});
  } else {
    // [B, C, gt, pt, gh, ph, gw, pw] has 8 dims: fold (B, C) and (gt) to stay within 6.
    Tensor v = x.contiguous().view({B * C * g[0], patch_[0], g[1], patch_[1], g[2], patch_[2]});
    v = v.permute({0, 2, 4, 1, 3, 5}).contiguous();  // [B C gt, gh, gw, pt, ph, pw]
    patches = v.view({B, C, g[0], g[1] * g[2], patch_[0] * patch_[1] * patch_[2]})
                  .permute({0, 2, 3, 1, 4});  // [B, gt, gh gw, C, pt ph pw]
  }
  Tensor flat = patches.reshape({B, N, C * product(patch_)});
  return linear(flat, weight_2d_, bias_);
}

Unpatchify::Unpatchify(Tensor weight, std::optional<Tensor> bias)
    : bias_(std::move(bias)), channels_(weight.dim(1)), dim_(weight.dim(0)),
      patch_(kernel_of(weight, "Unpatchify")) {
  if (bias_)
    EMBER_CHECK(bias_->shape() == (Shape{channels_}), "Unpatchify: bias has shape {}, expected [{}]",
                bias_->shape().str(), channels_);
  weight_2d_ = weight.contiguous().view({dim_, -1});
}

Tensor Unpatchify::forward(const Tensor& tokens, const std::vector<int64_t>& g) const {
  EMBER_CHECK(g.size() == patch_.size(), "Unpatchify: grid has {} dims, the patch {}", g.size(),
              patch_.size());
  EMBER_CHECK(tokens.ndim() == 3 && tokens.dim(2) == dim_ && tokens.dim(1) == product(g),
              "Unpatchify: tokens must be [B, {}, {}], got {}", product(g), dim_, tokens.shape().str());
  const int64_t B = tokens.dim(0), C = channels_;
  // y[b, n, (c, k...)] = sum_d tokens[b, n, d] W[d, c, k...]
  Tensor y = matmul(tokens, weight_2d_);  // [B, N, C * prod(patch)]
  Tensor out;
  if (patch_.size() == 2) {
    out = y.view({B, g[0], g[1], C, patch_[0], patch_[1]})
              .permute({0, 3, 1, 4, 2, 5})
              .reshape({B, C, g[0] * patch_[0], g[1] * patch_[1]});
  } else {
    // [B, gt, gh, gw, C, pt, ph, pw] in two steps to stay within 6 dims.
    Tensor v = y.view({B * g[0], g[1], g[2], C, patch_[0], patch_[1] * patch_[2]})
                   .permute({0, 3, 4, 1, 2, 5})
                   .contiguous();  // [B gt, C, pt, gh, gw, ph pw]
    v = v.view({B * g[0] * C * patch_[0], g[1], g[2], patch_[1], patch_[2]})
            .permute({0, 1, 3, 2, 4})
            .contiguous();  // [B gt C pt, gh, ph, gw, pw]
    out = v.view({B, g[0], C, patch_[0], g[1] * patch_[1] * g[2] * patch_[2]})
              .permute({0, 2, 1, 3, 4})
              .reshape({B, C, g[0] * patch_[0], g[1] * patch_[1], g[2] * patch_[2]});
  }
  if (bias_) out = add(out, bias_->view(patch_.size() == 2 ? Shape{1, C, 1, 1} : Shape{1, C, 1, 1, 1}));
  return out;
}

}  // namespace ember::nn
