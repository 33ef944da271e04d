#pragma once
// Streaming attention over a rolling K/V cache (spec/primitives.md, "Streaming attention"), and
// multi-head / grouped-query / cross-attention modules with PyTorch-layout projection weights.
#include <functional>
#include <optional>

#include "ember/nn/attention.h"
#include "ember/nn/kv_cache.h"
#include "ember/nn/rope.h"

namespace ember::nn {

// Full attention over everything the cache holds, or a window of the n most recent positions
// (a query at p sees p - n < kp <= p) plus the cache's sink tokens.
class AttnWindow {
 public:
  static AttnWindow full() { return AttnWindow(0); }
  static AttnWindow of(int64_t n);  // n >= 1
  bool is_full() const { return size_ == 0; }
  int64_t size() const { return size_; }

 private:
  explicit AttnWindow(int64_t n) : size_(n) {}
  int64_t size_;
};

// Additive bias for a chunk: given the absolute positions of the queries and of the keys (cache
// slots then the chunk; -1 for empty slots), returns a float tensor broadcastable to
// [B, Hq, Tq, Tk] (e.g. ALiBi via alibi_bias).
using BiasProvider = std::function<Tensor(const std::vector<int64_t>& q_positions,
                                          const std::vector<int64_t>& k_positions)>;

struct StreamingOptions {
  AttnWindow window = AttnWindow::full();
  // true: token-by-token causal (LLM decoding). false: every query of the chunk sees the whole
  // chunk (block-causal video generation: bidirectional within a frame block).
  bool causal_within_chunk = true;
  std::optional<Tensor> sinks;  // learned sinks [Hq]
  BiasProvider bias;
};

// One chunk: q [B, Hq, T, D], k [B, Hkv, T, D], v [B, Hkv, T, Dv] at positions start_pos.. (RoPE
// already applied). Attends to the cache's sinks, its positions inside the window and the chunk
// itself, then appends the chunk to the cache. Equal to one full forward with the equivalent mask
// as long as the cache holds capacity - sink_tokens >= window - 1 recent positions.
Tensor streaming_attention(const Tensor& q, const Tensor& k, const Tensor& v, KVCache& cache,
                           int64_t start_pos, const StreamingOptions& options = {});

struct StreamingAttentionConfig {
  int64_t d_model = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;  // 0: same as heads (MHA); 1: MQA; otherwise GQA
  int64_t head_dim = 0;  // 0: d_model / heads
  AttnWindow window = AttnWindow::full();
  int64_t sink_tokens = 0;
  int64_t cache_capacity = 0;  // slots per layer
  bool causal_within_chunk = true;
  std::optional<RopeConfig> rope;  // head_dim must match
};

// Projection weights in torch.nn.Linear layout ([out, in]); biases optional.
struct AttentionWeights {
  Tensor wq, wk, wv, wo;
  std::optional<Tensor> bq, bk, bv, bo;
  std::optional<Tensor> sinks;  // learned sinks [heads] (a per-layer parameter)
};

class StreamingAttention {
 public:
  StreamingAttention(StreamingAttentionConfig config, AttentionWeights weights);
  const StreamingAttentionConfig& config() const { return config_; }
  KVCache make_cache(int64_t batch, DType dtype = DType::F32) const;
  // x [B, T, d_model] at positions start_pos..; `sinks` overrides the layer's learned sinks.
  Tensor forward(const Tensor& x, KVCache& cache, int64_t start_pos,
                 const std::optional<Tensor>& sinks = std::nullopt,
                 const BiasProvider& bias = nullptr) const;

 private:
  StreamingAttentionConfig config_;
  AttentionWeights w_;
  std::optional<Rope> rope_;
};

// Cross-attention to a static context whose K/V are computed once by set_context.
class CrossAttention {
 public:
  CrossAttention(int64_t d_model, int64_t heads, int64_t kv_heads, AttentionWeights weights);
  // context [B, S, d_context]; context_mask (bool [B, S], true = padding) optional.
  void set_context(const Tensor& context, const std::optional<Tensor>& context_mask = std::nullopt);
  bool has_context() const { return k_.defined(); }
  Tensor forward(const Tensor& x) const;  // x [B, T, d_model]

 private:
  int64_t heads_, kv_heads_, head_dim_;
  AttentionWeights w_;
  Tensor k_, v_, mask_;
};

}  // namespace ember::nn
