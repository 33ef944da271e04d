#include "ember/nn/kv_cache.h"

#include <algorithm>

#include "ember/ops.h"

namespace ember::nn {

KVCache::KVCache(int64_t batch, int64_t kv_heads, int64_t capacity, int64_t head_dim, int64_t v_dim,
                 int64_t sink_tokens, DType dtype, Device device)
    : capacity_(capacity), sink_tokens_(sink_tokens) {
  EMBER_CHECK(batch > 0 && kv_heads > 0 && head_dim > 0 && v_dim > 0,
              "KVCache: batch, kv_heads, head_dim and v_dim must be positive");
  EMBER_CHECK(capacity > 0, "KVCache: capacity must be positive, got {}", capacity);
  EMBER_CHECK(sink_tokens >= 0 && sink_tokens < capacity,
              "KVCache: sink_tokens {} must be in [0, capacity {})", sink_tokens, capacity);
  k_ = zeros({batch, kv_heads, capacity, head_dim}, dtype, device);
  v_ = zeros({batch, kv_heads, capacity, v_dim}, dtype, device);
  pos_.assign(size_t(capacity), -1);
}

int64_t KVCache::size() const {
  return int64_t(std::count_if(pos_.begin(), pos_.end(), [](int64_t p) { return p >= 0; }));
}

Tensor KVCache::positions_tensor() const {
  return Tensor::from_vector(pos_, {capacity_}).to(k_.device());
}

void KVCache::append(const Tensor& k, const Tensor& v, int64_t start_pos) {
  EMBER_CHECK(k.ndim() == 4 && v.ndim() == 4, "KVCache::append: k and v must be [B, Hkv, T, D]");
  EMBER_CHECK(k.dim(0) == k_.dim(0) && k.dim(1) == k_.dim(1) && k.dim(3) == k_.dim(3),
              "KVCache::append: k {} does not match the cache {}", k.shape().str(),
              k_.shape().str());
  EMBER_CHECK(v.dim(0) == v_.dim(0) && v.dim(1) == v_.dim(1) && v.dim(2) == k.dim(2) &&
                  v.dim(3) == v_.dim(3),
              "KVCache::append: v {} does not match k {} and the cache {}", v.shape().str(),
              k.shape().str(), v_.shape().str());
  const int64_t T = k.dim(2);
  EMBER_CHECK(T <= capacity_ - sink_tokens_,
              "KVCache::append: chunk of {} tokens exceeds capacity {} minus {} sink tokens", T,
              capacity_, sink_tokens_);
  EMBER_CHECK(start_pos == next_pos_, "KVCache::append: start_pos {} but the cache expects {}",
              start_pos, next_pos_);
  const int64_t ring = capacity_ - sink_tokens_;
  // Slot of position p: sinks in place; later positions cycle over the ring in arrival order.
  auto slot = [&](int64_t p) { return p < sink_tokens_ ? p : sink_tokens_ + (p - sink_tokens_) % ring; };
  // Copy runs of consecutive slots at once.
  int64_t t = 0;
  while (t < T) {
    const int64_t s0 = slot(start_pos + t);
    int64_t n = 1;
    while (t + n < T && slot(start_pos + t + n) == s0 + n) ++n;
    Tensor kd = k_.narrow(2, s0, n), vd = v_.narrow(2, s0, n);
    kd.copy_from(k.narrow(2, t, n));
    vd.copy_from(v.narrow(2, t, n));
    for (int64_t i = 0; i < n; ++i) pos_[size_t(s0 + i)] = start_pos + t + i;
    t += n;
  }
  next_pos_ = start_pos + T;
}

void KVCache::reset() {
  std::fill(pos_.begin(), pos_.end(), -1);
  next_pos_ = 0;
}

void KVCache::truncate(int64_t position) {
  EMBER_CHECK(position >= 0 && position <= next_pos_, "KVCache::truncate: position {} outside [0, {}]",
              position, next_pos_);
  for (auto& p : pos_)
    if (p >= position) p = -1;
  next_pos_ = position;
}

}  // namespace ember::nn
