#include "ember/nn/streaming_attention.h"

#include "ember/ops.h"

namespace ember::nn {

AttnWindow AttnWindow::of(int64_t n) {
  EMBER_CHECK(n >= 1, "AttnWindow: window must be >= 1, got {}", n);
  return AttnWindow(n);
}

Tensor streaming_attention(const Tensor& q, const Tensor& k, const Tensor& v, KVCache& cache,
                           int64_t start_pos, const StreamingOptions& o) {
  EMBER_CHECK(q.ndim() == 4 && k.ndim() == 4 && v.ndim() == 4,
              "streaming_attention: q, k, v must be [B, H, T, D]");
  const int64_t T = q.dim(2);
  EMBER_CHECK(k.dim(2) == T && v.dim(2) == T, "streaming_attention: q, k, v chunk lengths differ");
  EMBER_CHECK(T <= cache.capacity() - cache.sink_tokens(),
              "streaming_attention: chunk of {} tokens is larger than the cache ({} slots, {} sinks)",
              T, cache.capacity(), cache.sink_tokens());
  EMBER_CHECK(start_pos == cache.next_position(),
              "streaming_attention: start_pos {} but the cache is at position {}", start_pos,
              cache.next_position());
  // Keys: the cache as it was (before this chunk evicts anything), then the chunk.
  Tensor keys = cat({cache.keys(), k.to(cache.keys().dtype())}, 2);
  Tensor values = cat({cache.values(), v.to(cache.values().dtype())}, 2);
  std::vector<int64_t> kpos = cache.positions();
  std::vector<int64_t> qpos(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) kpos.push_back(qpos[size_t(t)] = start_pos + t);

  AttentionOptions a;
  a.causal = true;
  a.window = o.window.size();
  a.sink_positions = cache.sink_tokens();
  a.key_positions = Tensor::from_vector(kpos, {int64_t(kpos.size())});
  if (o.causal_within_chunk) {
    a.q_offset = start_pos;
  } else {
    // Bidirectional within the chunk: every query counts as the chunk's last position, for
    // causality and for the window alike.
    a.q_positions = full({T}, double(start_pos + T - 1), DType::I64);
  }
  a.sinks = o.sinks;
  if (o.bias) a.bias = o.bias(qpos, kpos);
  Tensor out = scaled_dot_product_attention(q, keys, values, a);
  cache.append(k, v, start_pos);
  return out;
}

// ---------------- modules ----------------

namespace {

void check_linear(const Tensor& w, int64_t out, int64_t in, const char* name) {
  EMBER_CHECK(w.defined(), "attention weights: {} is missing", name);
  EMBER_CHECK(w.shape() == (Shape{out, in}), "attention weights: {} has shape {}, expected [{}, {}]",
              name, w.shape().str(), out, in);
}
void check_bias(const std::optional<Tensor>& b, int64_t n, const char* name) {
  if (b) EMBER_CHECK(b->shape() == (Shape{n}), "attention weights: {} has shape {}, expected [{}]",
                     name, b->shape().str(), n);
}

// x [B, T, in] -> [B, heads, T, head_dim]
Tensor project_heads(const Tensor& x, const Tensor& w, const std::optional<Tensor>& b, int64_t heads,
                     int64_t head_dim) {
  Tensor y = linear(x, w, b);
  return y.view({x.dim(0), x.dim(1), heads, head_dim}).permute({0, 2, 1, 3});
}

}  // namespace

StreamingAttention::StreamingAttention(StreamingAttentionConfig config, AttentionWeights weights)
    : config_(config), w_(std::move(weights)) {
  auto& c = config_;
  EMBER_CHECK(c.d_model > 0 && c.heads > 0, "StreamingAttention: d_model and heads must be positive");
  if (c.kv_heads == 0) c.kv_heads = c.heads;
  EMBER_CHECK(c.heads % c.kv_heads == 0, "StreamingAttention: heads {} not divisible by kv_heads {}",
              c.heads, c.kv_heads);
  if (c.head_dim == 0) {
    EMBER_CHECK(c.d_model % c.heads == 0, "StreamingAttention: d_model {} not divisible by heads {}",
                c.d_model, c.heads);
    c.head_dim = c.d_model / c.heads;
  }
  EMBER_CHECK(c.cache_capacity > c.sink_tokens,
              "StreamingAttention: cache_capacity {} must exceed sink_tokens {}", c.cache_capacity,
              c.sink_tokens);
  const int64_t q_dim = c.heads * c.head_dim, kv_dim = c.kv_heads * c.head_dim;
  check_linear(w_.wq, q_dim, c.d_model, "wq");
  check_linear(w_.wk, kv_dim, c.d_model, "wk");
  check_linear(w_.wv, kv_dim, c.d_model, "wv");
  check_linear(w_.wo, c.d_model, q_dim, "wo");
  check_bias(w_.bq, q_dim, "bq");
  check_bias(w_.bk, kv_dim, "bk");
  check_bias(w_.bv, kv_dim, "bv");
  check_bias(w_.bo, c.d_model, "bo");
  check_bias(w_.sinks, c.heads, "sinks");
  if (c.rope) {
    EMBER_CHECK(c.rope->head_dim == c.head_dim, "StreamingAttention: rope head_dim {} != head_dim {}",
                c.rope->head_dim, c.head_dim);
    rope_.emplace(*c.rope);
  }
}

KVCache StreamingAttention::make_cache(int64_t batch, DType dtype) const {
  return KVCache(batch, config_.kv_heads, config_.cache_capacity, config_.head_dim, config_.head_dim,
                 config_.sink_tokens, dtype, w_.wq.device());
}

Tensor StreamingAttention::forward(const Tensor& x, KVCache& cache, int64_t start_pos,
                                   const std::optional<Tensor>& sinks,
                                   const BiasProvider& bias) const {
  const auto& c = config_;
  EMBER_CHECK(x.ndim() == 3 && x.dim(2) == c.d_model,
              "StreamingAttention: x must be [B, T, {}], got {}", c.d_model, x.shape().str());
  Tensor q = project_heads(x, w_.wq, w_.bq, c.heads, c.head_dim);
  Tensor k = project_heads(x, w_.wk, w_.bk, c.kv_heads, c.head_dim);
  Tensor v = project_heads(x, w_.wv, w_.bv, c.kv_heads, c.head_dim);
  if (rope_) {
    q = rope_->apply(q, start_pos, 2);
    k = rope_->apply(k, start_pos, 2);
  }
  StreamingOptions o;
  o.window = c.window;
  o.causal_within_chunk = c.causal_within_chunk;
  o.sinks = sinks ? sinks : w_.sinks;
  o.bias = bias;
  Tensor a = streaming_attention(q, k, v, cache, start_pos, o);  // [B, H, T, D]
  a = a.permute({0, 2, 1, 3}).reshape({x.dim(0), x.dim(1), c.heads * c.head_dim});
  return linear(a, w_.wo, w_.bo);
}

CrossAttention::CrossAttention(int64_t d_model, int64_t heads, int64_t kv_heads,
                               AttentionWeights weights)
    : heads_(heads), kv_heads_(kv_heads == 0 ? heads : kv_heads), w_(std::move(weights)) {
  EMBER_CHECK(heads > 0 && d_model > 0 && heads_ % kv_heads_ == 0,
              "CrossAttention: heads {} must be positive and divisible by kv_heads {}", heads,
              kv_heads_);
  EMBER_CHECK(w_.wq.defined() && w_.wq.ndim() == 2 && w_.wq.dim(1) == d_model &&
                  w_.wq.dim(0) % heads == 0,
              "CrossAttention: wq must be [heads * head_dim, {}]", d_model);
  head_dim_ = w_.wq.dim(0) / heads;
  EMBER_CHECK(w_.wk.defined() && w_.wk.ndim() == 2 && w_.wk.dim(0) == kv_heads_ * head_dim_,
              "CrossAttention: wk must be [{}, d_context]", kv_heads_ * head_dim_);
  check_linear(w_.wv, kv_heads_ * head_dim_, w_.wk.dim(1), "wv");
  check_linear(w_.wo, d_model, heads * head_dim_, "wo");
}

void CrossAttention::set_context(const Tensor& context, const std::optional<Tensor>& context_mask) {
  EMBER_CHECK(context.ndim() == 3 && context.dim(2) == w_.wk.dim(1),
              "CrossAttention: context must be [B, S, {}], got {}", w_.wk.dim(1),
              context.shape().str());
  k_ = project_heads(context, w_.wk, w_.bk, kv_heads_, head_dim_).contiguous();
  v_ = project_heads(context, w_.wv, w_.bv, kv_heads_, head_dim_).contiguous();
  mask_ = Tensor();
  if (context_mask) {
    EMBER_CHECK(context_mask->dtype() == DType::Bool &&
                    context_mask->shape() == (Shape{context.dim(0), context.dim(1)}),
                "CrossAttention: context_mask must be bool [{}, {}]", context.dim(0), context.dim(1));
    mask_ = context_mask->view({context.dim(0), 1, 1, context.dim(1)});
  }
}

Tensor CrossAttention::forward(const Tensor& x) const {
  EMBER_CHECK(has_context(), "CrossAttention: forward before set_context");
  EMBER_CHECK(x.ndim() == 3 && x.dim(0) == k_.dim(0), "CrossAttention: x must be [{}, T, d_model]",
              k_.dim(0));
  Tensor q = project_heads(x, w_.wq, w_.bq, heads_, head_dim_);
  AttentionOptions o;
  if (mask_.defined()) o.mask = mask_;
  Tensor a = scaled_dot_product_attention(q, k_, v_, o);
  a = a.permute({0, 2, 1, 3}).reshape({x.dim(0), x.dim(1), heads_ * head_dim_});
  return linear(a, w_.wo, w_.bo);
}

}  // namespace ember::nn
