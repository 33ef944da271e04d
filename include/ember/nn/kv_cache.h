#pragma once
// A rolling K/V cache of fixed capacity: the first `sink_tokens` positions of the stream stay
// forever in the leading slots; the rest live in a ring over the remaining slots, oldest evicted
// first. Every slot knows the absolute position it holds (-1 when empty).
#include <vector>

#include "ember/core/tensor.h"

namespace ember::nn {

class KVCache {
 public:
  // k: [batch, kv_heads, capacity, head_dim], v: [batch, kv_heads, capacity, v_dim].
  KVCache(int64_t batch, int64_t kv_heads, int64_t capacity, int64_t head_dim, int64_t v_dim,
          int64_t sink_tokens = 0, DType dtype = DType::F32, Device device = Device::cpu());

  int64_t capacity() const { return capacity_; }
  int64_t sink_tokens() const { return sink_tokens_; }
  int64_t size() const;                 // filled slots
  int64_t next_position() const { return next_pos_; }  // position the next append must start at
  const Tensor& keys() const { return k_; }
  const Tensor& values() const { return v_; }
  const std::vector<int64_t>& positions() const { return pos_; }
  Tensor positions_tensor() const;      // i64 [capacity] on the cache's device

  // Appends a chunk k [B, Hkv, T, D], v [B, Hkv, T, Dv] holding positions start_pos ..
  // start_pos+T-1. start_pos must equal next_position(); T <= capacity - sink_tokens.
  void append(const Tensor& k, const Tensor& v, int64_t start_pos);
  void reset();
  // Forgets every position >= position (e.g. rejected draft tokens). Positions the ring already
  // evicted do not come back: after truncating, the cache holds fewer old positions than a
  // stream fed straight to `position` would.
  void truncate(int64_t position);

 private:
  int64_t capacity_, sink_tokens_;
  Tensor k_, v_;
  std::vector<int64_t> pos_;
  int64_t next_pos_ = 0;
};

}  // namespace ember::nn
