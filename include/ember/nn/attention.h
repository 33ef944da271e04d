#pragma once
// Scaled dot-product attention: batched, multi-head, grouped-query, with causal/window/sink-position
// visibility, learned sinks, additive bias, boolean or additive masks and quiet softmax, computed
// by one fused online-softmax kernel per backend (no materialised QK^T).
#include <optional>

#include "ember/core/tensor.h"

namespace ember::nn {

struct AttentionOptions {
  std::optional<float> scale;  // default 1/sqrt(head_dim)
  bool causal = false;
  int64_t window = 0;          // > 0: query at p sees keys p - window < kp <= p (plus sinks)
  int64_t sink_positions = 0;  // key positions < this are always visible (subject to causality)
  // Absolute position of query row 0; keys are at 0..Tk-1 unless key_positions is given.
  // Default: Tk - Tq (queries are the last Tq positions, as when decoding with a cache).
  std::optional<int64_t> q_offset;
  // i64 [Tq]: absolute position of each query (overrides q_offset).
  std::optional<Tensor> q_positions;
  // i64 [Tk]: absolute position of each key (a rolling cache's slots); negative = empty slot.
  std::optional<Tensor> key_positions;
  // Learned sinks, one logit per q head ([Hq]): an extra softmax column dropped before V.
  std::optional<Tensor> sinks;
  // Additive bias broadcastable to [B, Hq, Tq, Tk].
  std::optional<Tensor> bias;
  // Bool (true = masked out) or float additive mask broadcastable to [B, Hq, Tq, Tk].
  std::optional<Tensor> mask;
  bool quiet_softmax = false;  // softmax with an implicit extra zero logit
};

// q [B, Hq, Tq, D], k [B, Hkv, Tk, D], v [B, Hkv, Tk, Dv] with Hq % Hkv == 0 (q head h uses kv
// head h / (Hq / Hkv)). Inputs may be strided views (e.g. a [B, T, H, D] buffer permuted) as long
// as the last dim is contiguous. Returns [B, Hq, Tq, Dv] in q's dtype; math in f32. A query row
// that sees no key gives zeros.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const AttentionOptions& options = {});

}  // namespace ember::nn
