// Fused attention on the CPU: one pass over the visible keys per query row with an online
// (streaming) softmax, in blocks of keys so scores, max and rescaling stay in registers/L1.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "ember/core/thread_pool.h"

namespace ember::backend {

namespace {

constexpr int64_t kKeyBlock = 64;

float dot(const float* a, const float* b, int64_t n) {
  // Eight independent partial sums: lets the compiler vectorise without -ffast-math.
  float s[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) s[k] += a[i + k] * b[i + k];
  float tail = 0;
  for (; i < n; ++i) tail += a[i] * b[i];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) + tail;
}

}  // namespace

void CpuBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& sinks,
                           const Tensor& bias, const Tensor& mask, const Tensor& q_positions,
                           const Tensor& key_positions,
                           const AttentionParams& p, const Tensor& out) {
  const int64_t B = q.dim(0), Hq = q.dim(1), Tq = q.dim(2), D = q.dim(3);
  const int64_t Hkv = k.dim(1), Tk = k.dim(2), Dv = v.dim(3);
  const int64_t group = Hq / Hkv;
  const float* qp = q.data<float>();
  const float* kp = k.data<float>();
  const float* vp = v.data<float>();
  const float* sp = sinks.defined() ? sinks.data<float>() : nullptr;
  const float* bp = bias.defined() ? bias.data<float>() : nullptr;
  const uint8_t* mp = mask.defined() ? static_cast<const uint8_t*>(mask.raw_data()) : nullptr;
  const int64_t* pos = key_positions.defined() ? key_positions.data<int64_t>() : nullptr;
  const int64_t* qpositions = q_positions.defined() ? q_positions.data<int64_t>() : nullptr;
  float* op = out.data<float>();
  const Shape qs = q.strides(), ks = k.strides(), vs = v.strides();
  const Shape bs = bias.defined() ? bias.strides() : Shape{0, 0, 0, 0};
  const Shape ms = mask.defined() ? mask.strides() : Shape{0, 0, 0, 0};
  const float ninf = -std::numeric_limits<float>::infinity();

  parallel_for(B * Hq * Tq, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> acc(static_cast<size_t>(Dv)), scores(kKeyBlock);
    std::vector<int64_t> idx(kKeyBlock);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / (Hq * Tq), h = (row / Tq) % Hq, i = row % Tq;
      const int64_t kvh = h / group;
      const float* qrow = qp + b * qs[0] + h * qs[1] + i * qs[2];
      const float* kbase = kp + b * ks[0] + kvh * ks[1];
      const float* vbase = vp + b * vs[0] + kvh * vs[1];
      const int64_t qpos = qpositions ? qpositions[i] : p.q_offset + i;
      // Keys to scan: with implicit positions (key j at j) only the window and the sinks.
      int64_t lo = 0, hi = Tk;
      if (!pos) {
        if (p.causal) hi = std::clamp<int64_t>(qpos + 1, 0, Tk);
        if (p.window > 0) lo = std::clamp<int64_t>(qpos - p.window + 1, 0, hi);
      }
      float m = ninf, l = 0;
      std::fill(acc.begin(), acc.end(), 0.f);
      auto visible = [&](int64_t j) {
        const int64_t kpos = pos ? pos[j] : j;
        if (kpos < 0) return false;
        if (p.causal && kpos > qpos) return false;
        if (p.window > 0 && kpos <= qpos - p.window && kpos >= p.sink_positions) return false;
        if (mp && mp[b * ms[0] + h * ms[1] + i * ms[2] + j * ms[3]]) return false;
        return true;
      };
      auto scan = [&](int64_t from, int64_t to) {
        for (int64_t j0 = from; j0 < to; j0 += kKeyBlock) {
          int64_t n = 0;
          float block_max = ninf;
          for (int64_t j = j0; j < std::min(to, j0 + kKeyBlock); ++j) {
            if (!visible(j)) continue;
            float s = dot(qrow, kbase + j * ks[2], D) * p.scale;
            if (bp) s += bp[b * bs[0] + h * bs[1] + i * bs[2] + j * bs[3]];
            if (s == ninf) continue;
            scores[size_t(n)] = s;
            idx[size_t(n)] = j;
            block_max = std::max(block_max, s);
            ++n;
          }
          if (n == 0) continue;
          if (block_max > m) {  // rescale what has been accumulated to the new maximum
            const float r = m == ninf ? 0.f : std::exp(m - block_max);
            l *= r;
            for (int64_t d = 0; d < Dv; ++d) acc[size_t(d)] *= r;
            m = block_max;
          }
          for (int64_t t = 0; t < n; ++t) {
            const float w = std::exp(scores[size_t(t)] - m);
            l += w;
            const float* vrow = vbase + idx[size_t(t)] * vs[2];
            for (int64_t d = 0; d < Dv; ++d) acc[size_t(d)] += w * vrow[d];
          }
        }
      };
      if (!pos && p.window > 0 && p.sink_positions > 0) scan(0, std::min(p.sink_positions, lo));
      scan(lo, hi);
      float* orow = op + row * Dv;
      if (l == 0) {  // no visible key: zeros, never NaN
        std::fill(orow, orow + Dv, 0.f);
        continue;
      }
      // Learned sink / quiet softmax: extra logits in the denominator only.
      float extra = 0;
      if (sp) {
        float s = sp[h];
        if (s > m) {
          const float r = std::exp(m - s);
          l *= r;
          for (int64_t d = 0; d < Dv; ++d) acc[size_t(d)] *= r;
          m = s;
        }
        extra += std::exp(s - m);
      }
      if (p.quiet_softmax) {
        if (0.f > m) {
          const float r = std::exp(m);
          l *= r;
          for (int64_t d = 0; d < Dv; ++d) acc[size_t(d)] *= r;
          m = 0.f;
          if (sp) extra *= r;
        }
        extra += std::exp(-m);
      }
      const float inv = 1.0f / (l + extra);
      for (int64_t d = 0; d < Dv; ++d) orow[d] = acc[size_t(d)] * inv;
    }
  });
}

}  // namespace ember::backend
