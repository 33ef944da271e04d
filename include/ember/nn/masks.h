#pragma once
// 1D attention masks (bool, true = masked out) and ALiBi biases. See spec/primitives.md.
#include <vector>

#include "ember/core/tensor.h"

namespace ember::nn {

// [batch, max_len]: true where position >= lengths[b]. max_len <= 0 means max(lengths).
Tensor padding_mask(const std::vector<int64_t>& lengths, int64_t max_len = 0,
                    Device device = Device::cpu());

// [q_len, k_len] with queries at absolute positions q_start.. and keys at k_start..:
// masks key j when j > i (future).
Tensor causal_mask(int64_t q_len, int64_t k_len, int64_t q_start = 0, int64_t k_start = 0,
                   Device device = Device::cpu());
// Causal plus a window of w (i - w < j <= i visible) and `sinks` leading positions always visible.
Tensor windowed_causal_mask(int64_t len, int64_t window, int64_t sinks = 0,
                            Device device = Device::cpu());
// Chunked causal (Conformer style): row i sees columns from
// max(0, chunk(i) - num_left_chunks) * chunk_size up to i (spec/primitives.md); a negative
// num_left_chunks means unlimited. causal_within_chunk = false instead shows the whole of the
// query's own chunk, as WeNet's subsequent_chunk_mask does.
Tensor chunked_causal_mask(int64_t len, int64_t chunk_size, int64_t num_left_chunks = -1,
                           bool causal_within_chunk = true, Device device = Device::cpu());

// The general form, from absolute positions (a rolling cache's slots may be out of order):
// key j is visible to query i when (!causal || kp <= qp) && (window <= 0 || kp > qp - window ||
// kp < sinks). Negative key positions mark empty slots and are always masked.
struct PositionMaskOptions {
  bool causal = true;
  int64_t window = 0;  // <= 0: no window
  int64_t sinks = 0;   // positions < sinks are always visible (subject to causality)
};
Tensor position_mask(const std::vector<int64_t>& q_positions, const std::vector<int64_t>& k_positions,
                     const PositionMaskOptions& options, Device device = Device::cpu());

// Either mask: a | b with broadcasting.
Tensor combine_masks(const Tensor& a, const Tensor& b);
// Bool mask -> additive f32 mask (0 or -inf).
Tensor mask_to_additive(const Tensor& mask);

// ALiBi slopes for `heads` heads (Press et al.; the non-power-of-two interpolation of the
// reference implementation).
std::vector<float> alibi_slopes(int64_t heads);
// Additive bias [heads, q, k] = -slope_h * (q_pos - k_pos), f32, from absolute positions.
Tensor alibi_bias(const std::vector<float>& slopes, const std::vector<int64_t>& q_positions,
                  const std::vector<int64_t>& k_positions, Device device = Device::cpu());
Tensor alibi_bias(const std::vector<float>& slopes, int64_t q_start, int64_t q_len, int64_t k_start,
                  int64_t k_len, Device device = Device::cpu());

}  // namespace ember::nn
