#pragma once
// Linear attention (Katharopoulos et al.) with positive feature maps, causal or not, padding
// masks, and a streaming state for causal decoding (spec/primitives.md, "Linear attention").
#include <optional>

#include "ember/core/tensor.h"

namespace ember::nn {

enum class FeatureMap : uint8_t { EluPlusOne, Relu };

// Running sums of a causal stream: S = sum phi(k) v^T [B, H, D, Dv], z = sum phi(k) [B, H, D].
struct LinearAttentionState {
  Tensor S, z;
  bool empty() const { return !S.defined(); }
};

struct LinearAttentionOptions {
  bool causal = false;
  FeatureMap feature_map = FeatureMap::EluPlusOne;
  float eps = 1e-6f;
  std::optional<Tensor> padding_mask;  // bool [B, T], true = padding (its k and v are zeroed)
};

// q, k [B, H, T, D], v [B, H, T, Dv] -> [B, H, T, Dv] (f32). Non-causal:
// out_i = phi(q_i)^T (sum_j phi(k_j) v_j^T) / (phi(q_i)^T sum_j phi(k_j) + eps); causal sums run
// over j <= i. With `state` (causal only), the sums also include everything streamed before, and
// the state is advanced past this chunk.
Tensor linear_attention(const Tensor& q, const Tensor& k, const Tensor& v, const LinearAttentionOptions& options = {},
                        LinearAttentionState* state = nullptr);

Tensor feature_map(const Tensor& x, FeatureMap map);

}  // namespace ember::nn
