#include "ember/nn/masks.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "ember/ops.h"

namespace ember::nn {

namespace {

// Builds a [rows, cols] bool mask on the host from a predicate, then moves it to `device`.
template <typename Masked>
Tensor host_mask(int64_t rows, int64_t cols, Device device, Masked masked) {
  std::vector<bool> m(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) m[size_t(i * cols + j)] = masked(i, j);
  return Tensor::from_vector(m, {rows, cols}).to(device);
}

}  // namespace

Tensor padding_mask(const std::vector<int64_t>& lengths, int64_t max_len, Device device) {
  EMBER_CHECK(!lengths.empty(), "padding_mask: lengths is empty");
  int64_t longest = 0;
  for (int64_t l : lengths) {
    EMBER_CHECK(l >= 0, "padding_mask: negative length {}", l);
    longest = std::max(longest, l);
  }
  if (max_len <= 0) max_len = longest;
  EMBER_CHECK(longest <= max_len, "padding_mask: length {} exceeds max_len {}", longest, max_len);
  return host_mask(int64_t(lengths.size()), max_len, device,
                   [&](int64_t b, int64_t t) { return t >= lengths[size_t(b)]; });
}

Tensor causal_mask(int64_t q_len, int64_t k_len, int64_t q_start, int64_t k_start, Device device) {
  EMBER_CHECK(q_len >= 0 && k_len >= 0, "causal_mask: negative length");
  return host_mask(q_len, k_len, device,
                   [&](int64_t i, int64_t j) { return k_start + j > q_start + i; });
}

Tensor windowed_causal_mask(int64_t len, int64_t window, int64_t sinks, Device device) {
  EMBER_CHECK(window > 0, "windowed_causal_mask: window must be positive, got {}", window);
  EMBER_CHECK(sinks >= 0, "windowed_causal_mask: sinks must be >= 0, got {}", sinks);
  return host_mask(len, len, device, [&](int64_t i, int64_t j) {
    return j > i || (j <= i - window && j >= sinks);
  });
}

Tensor chunked_causal_mask(int64_t len, int64_t chunk_size, int64_t num_left_chunks,
                           bool causal_within_chunk, Device device) {
  EMBER_CHECK(chunk_size > 0, "chunked_causal_mask: chunk_size must be positive, got {}",
              chunk_size);
  return host_mask(len, len, device, [&](int64_t i, int64_t j) {
    int64_t chunk = i / chunk_size;
    int64_t start = num_left_chunks < 0 ? 0 : std::max<int64_t>(0, chunk - num_left_chunks) * chunk_size;
    int64_t end = causal_within_chunk ? i + 1 : std::min(len, (chunk + 1) * chunk_size);
    return j < start || j >= end;
  });
}

Tensor position_mask(const std::vector<int64_t>& q_positions, const std::vector<int64_t>& k_positions,
                     const PositionMaskOptions& o, Device device) {
  return host_mask(int64_t(q_positions.size()), int64_t(k_positions.size()), device,
                   [&](int64_t i, int64_t j) {
                     int64_t qp = q_positions[size_t(i)], kp = k_positions[size_t(j)];
                     if (kp < 0) return true;
                     if (o.causal && kp > qp) return true;
                     if (o.window > 0 && kp <= qp - o.window && kp >= o.sinks) return true;
                     return false;
                   });
}

Tensor combine_masks(const Tensor& a, const Tensor& b) {
  EMBER_CHECK(a.dtype() == DType::Bool && b.dtype() == DType::Bool,
              "combine_masks: masks must be bool, got {} and {}", dtype_name(a.dtype()),
              dtype_name(b.dtype()));
  return binary(BinaryOp::Or, a, b);
}

Tensor mask_to_additive(const Tensor& mask) {
  EMBER_CHECK(mask.dtype() == DType::Bool, "mask_to_additive: mask must be bool, got {}",
              dtype_name(mask.dtype()));
  Tensor zero = zeros({}, DType::F32, mask.device());
  Tensor ninf = full({}, -std::numeric_limits<double>::infinity(), DType::F32, mask.device());
  return where(mask, ninf, zero);
}

std::vector<float> alibi_slopes(int64_t heads) {
  EMBER_CHECK(heads > 0, "alibi_slopes: heads must be positive, got {}", heads);
  // Press et al.: for a power of two n, slope_i = 2^(-8 (i+1) / n); otherwise the slopes of the
  // closest lower power of two p followed by every other slope of 2p.
  auto power_of_two = [](int64_t n) {
    std::vector<double> s(static_cast<size_t>(n));
    double start = std::pow(2.0, -std::pow(2.0, -(std::log2(double(n)) - 3)));
    for (int64_t i = 0; i < n; ++i) s[size_t(i)] = start * std::pow(start, double(i));
    return s;
  };
  std::vector<double> slopes;
  int64_t p = int64_t(1) << int64_t(std::floor(std::log2(double(heads))));
  slopes = power_of_two(p);
  if (p != heads) {
    std::vector<double> extra = power_of_two(2 * p);
    for (int64_t i = 0; i < heads - p; ++i) slopes.push_back(extra[size_t(2 * i)]);
  }
  return {slopes.begin(), slopes.end()};
}

Tensor alibi_bias(const std::vector<float>& slopes, const std::vector<int64_t>& q_positions,
                  const std::vector<int64_t>& k_positions, Device device) {
  const int64_t h = int64_t(slopes.size()), q = int64_t(q_positions.size()),
                k = int64_t(k_positions.size());
  std::vector<float> bias(static_cast<size_t>(h * q * k));
  for (int64_t a = 0; a < h; ++a)
    for (int64_t i = 0; i < q; ++i)
      for (int64_t j = 0; j < k; ++j)
        bias[size_t((a * q + i) * k + j)] =
            -slopes[size_t(a)] * float(q_positions[size_t(i)] - k_positions[size_t(j)]);
  return Tensor::from_vector(bias, {h, q, k}).to(device);
}

Tensor alibi_bias(const std::vector<float>& slopes, int64_t q_start, int64_t q_len, int64_t k_start,
                  int64_t k_len, Device device) {
  std::vector<int64_t> qp(static_cast<size_t>(q_len)), kp(static_cast<size_t>(k_len));
  for (int64_t i = 0; i < q_len; ++i) qp[size_t(i)] = q_start + i;
  for (int64_t j = 0; j < k_len; ++j) kp[size_t(j)] = k_start + j;
  return alibi_bias(slopes, qp, kp, device);
}

}  // namespace ember::nn
