#include "ember/nn/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "ember/ops.h"
#include "test_util.h"

namespace ember::nn {
namespace {

struct Case {
  int64_t B = 2, Hq = 6, Hkv = 2, Tq = 9, Tk = 9, D = 16, Dv = 16;
};

// Explicit reference in double: materialised scores, softmax with the extra columns, weighted V.
std::vector<float> reference(const Case& c, const std::vector<float>& q, const std::vector<float>& k,
                             const std::vector<float>& v, const AttentionOptions& o,
                             const std::vector<float>& sinks, const std::vector<float>& bias,
                             const std::vector<uint8_t>& mask, const std::vector<int64_t>& kpos) {
  std::vector<float> out(size_t(c.B * c.Hq * c.Tq * c.Dv));
  const double scale = o.scale ? *o.scale : 1.0 / std::sqrt(double(c.D));
  const int64_t q_offset = o.q_offset ? *o.q_offset : c.Tk - c.Tq;
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.Hq; ++h)
      for (int64_t i = 0; i < c.Tq; ++i) {
        const int64_t kvh = h / (c.Hq / c.Hkv), qp = q_offset + i;
        std::vector<double> s(size_t(c.Tk), -INFINITY);
        double m = -INFINITY;
        for (int64_t j = 0; j < c.Tk; ++j) {
          int64_t kp = kpos.empty() ? j : kpos[size_t(j)];
          size_t bi = size_t(((b * c.Hq + h) * c.Tq + i) * c.Tk + j);
          bool vis = kp >= 0 && (!o.causal || kp <= qp) &&
                     (o.window <= 0 || kp > qp - o.window || kp < o.sink_positions) &&
                     (mask.empty() || !mask[bi]);
          if (!vis) continue;
          double dot = 0;
          for (int64_t d = 0; d < c.D; ++d)
            dot += double(q[size_t(((b * c.Hq + h) * c.Tq + i) * c.D + d)]) *
                   k[size_t(((b * c.Hkv + kvh) * c.Tk + j) * c.D + d)];
          s[size_t(j)] = dot * scale + (bias.empty() ? 0.0 : bias[bi]);
          m = std::max(m, s[size_t(j)]);
        }
        if (m == -INFINITY) continue;  // zeros
        std::vector<double> extra;
        if (!sinks.empty()) extra.push_back(sinks[size_t(h)]);
        if (o.quiet_softmax) extra.push_back(0.0);
        for (double e : extra) m = std::max(m, e);
        double den = 0;
        for (double x : s) den += std::exp(x - m);
        for (double e : extra) den += std::exp(e - m);
        for (int64_t d = 0; d < c.Dv; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < c.Tk; ++j)
            acc += std::exp(s[size_t(j)] - m) * v[size_t(((b * c.Hkv + kvh) * c.Tk + j) * c.Dv + d)];
          out[size_t(((b * c.Hq + h) * c.Tq + i) * c.Dv + d)] = float(acc / den);
        }
      }
  return out;
}

class Attention : public testing::TestWithParam<Device> {
 protected:
  void check(const Case& c, AttentionOptions o, bool with_sinks, bool with_bias, bool with_mask,
             std::vector<int64_t> kpos = {}) {
    Device dev = GetParam();
    auto q = test::random_floats(size_t(c.B * c.Hq * c.Tq * c.D), 1, -2, 2);
    auto k = test::random_floats(size_t(c.B * c.Hkv * c.Tk * c.D), 2, -2, 2);
    auto v = test::random_floats(size_t(c.B * c.Hkv * c.Tk * c.Dv), 3);
    std::vector<float> sinks, bias;
    std::vector<uint8_t> mask;
    if (with_sinks) {
      sinks = test::random_floats(size_t(c.Hq), 4, -1, 3);
      o.sinks = Tensor::from_vector(sinks, {c.Hq}).to(dev);
    }
    if (with_bias) {  // per head and position pair, broadcast over batch
      auto hb = test::random_floats(size_t(c.Hq * c.Tq * c.Tk), 5);
      o.bias = Tensor::from_vector(hb, {c.Hq, c.Tq, c.Tk}).to(dev);
      bias.resize(size_t(c.B * c.Hq * c.Tq * c.Tk));
      for (size_t i = 0; i < bias.size(); ++i) bias[i] = hb[i % hb.size()];
    }
    if (with_mask) {  // random key padding per batch, broadcast over heads and queries
      std::vector<bool> km(size_t(c.B * c.Tk));
      for (size_t i = 0; i < km.size(); ++i) km[i] = (i * 7) % 5 == 1;
      o.mask = Tensor::from_vector(km, {c.B, 1, 1, c.Tk}).to(dev);
      mask.resize(size_t(c.B * c.Hq * c.Tq * c.Tk));
      for (int64_t b = 0; b < c.B; ++b)
        for (int64_t r = 0; r < c.Hq * c.Tq; ++r)
          for (int64_t j = 0; j < c.Tk; ++j)
            mask[size_t((b * c.Hq * c.Tq + r) * c.Tk + j)] = km[size_t(b * c.Tk + j)];
    }
    if (!kpos.empty()) o.key_positions = Tensor::from_vector(kpos, {c.Tk}).to(dev);
    Tensor tq = Tensor::from_vector(q, {c.B, c.Hq, c.Tq, c.D}).to(dev);
    Tensor tk = Tensor::from_vector(k, {c.B, c.Hkv, c.Tk, c.D}).to(dev);
    Tensor tv = Tensor::from_vector(v, {c.B, c.Hkv, c.Tk, c.Dv}).to(dev);
    Tensor out = scaled_dot_product_attention(tq, tk, tv, o);
    EXPECT_EQ(out.shape(), (Shape{c.B, c.Hq, c.Tq, c.Dv}));
    EXPECT_TRUE(test::all_close(out, reference(c, q, k, v, o, sinks, bias, mask, kpos), 1e-5f, 1e-6f));
  }
};

TEST_P(Attention, PlainAndCausal) {
  check({}, {}, false, false, false);
  check({}, {.causal = true}, false, false, false);
}

TEST_P(Attention, GqaWindowSinksBiasMask) {
  for (int64_t hkv : {1, 2, 6}) {  // MQA, GQA, MHA
    Case c{.Hkv = hkv, .Tq = 21, .Tk = 21};
    check(c, {.causal = true, .window = 5}, true, false, false);
    check(c, {.causal = true, .window = 4, .sink_positions = 2}, true, true, true);
    check(c, {.causal = false}, false, true, true);
  }
}

TEST_P(Attention, DecodeAgainstALongerCacheAndQuietSoftmax) {
  Case c{.Tq = 3, .Tk = 130, .Dv = 8};  // more keys than one kernel block
  check(c, {.causal = true, .window = 70, .sink_positions = 3}, true, false, false);
  check(c, {.causal = true, .quiet_softmax = true}, false, false, false);
  check(c, {.causal = true, .window = 9, .quiet_softmax = true}, true, true, false);
  check(c, {.scale = 0.3f, .causal = true, .q_offset = 50}, false, false, false);
}

TEST_P(Attention, RollingCacheKeyPositions) {
  // 8 slots holding positions out of order (a ring after wrap-around), one empty slot.
  Case c{.Tq = 2, .Tk = 8};
  std::vector<int64_t> kpos{0, 1, 17, 18, 11, 12, -1, 16};
  check(c, {.causal = true, .window = 6, .sink_positions = 2, .q_offset = 17}, true, false, false,
        kpos);
}

TEST_P(Attention, FullyMaskedRowsGiveZeros) {
  Device dev = GetParam();
  Generator g(1);
  Tensor q = randn({1, 2, 3, 8}, g, DType::F32, dev), k = randn({1, 2, 3, 8}, g, DType::F32, dev);
  std::vector<bool> all(9, true);
  Tensor m = Tensor::from_vector(all, {3, 3}).to(dev);
  auto out = scaled_dot_product_attention(q, k, k, {.mask = m}).to_vector<float>();
  for (float x : out) ASSERT_EQ(x, 0.f);
}

TEST_P(Attention, StridedInputsAndBf16) {
  Device dev = GetParam();
  Generator g(5);
  // A [B, T, H, D] buffer seen as [B, H, T, D] without a copy.
  Tensor qb = randn({2, 7, 4, 16}, g, DType::F32, dev), kb = randn({2, 7, 2, 16}, g, DType::F32, dev);
  Tensor q = qb.permute({0, 2, 1, 3}), k = kb.permute({0, 2, 1, 3});
  Tensor a = scaled_dot_product_attention(q, k, k, {.causal = true});
  Tensor b = scaled_dot_product_attention(q.contiguous(), k.contiguous(), k.contiguous(), {.causal = true});
  EXPECT_TRUE(test::all_close(a, b.to_vector<float>(), 0, 0));
  Tensor c = scaled_dot_product_attention(q.to(DType::BF16), k, k, {.causal = true});
  EXPECT_EQ(c.dtype(), DType::BF16);
  EXPECT_TRUE(test::all_close(c, b.to_vector<float>(), 2e-2f, 2e-2f));
}

TEST_P(Attention, BadArgumentsAreNamed) {
  Device dev = GetParam();
  Tensor q = zeros({1, 6, 3, 8}, DType::F32, dev), k = zeros({1, 4, 3, 8}, DType::F32, dev);
  auto msg = [&](auto fn) {
    try {
      fn();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg([&] { scaled_dot_product_attention(q, k, k); }).find("not divisible"), std::string::npos);
  Tensor k2 = zeros({1, 2, 3, 4}, DType::F32, dev);
  EXPECT_NE(msg([&] { scaled_dot_product_attention(q, k2, k2); }).find("head_dim"), std::string::npos);
  Tensor k3 = zeros({1, 2, 3, 8}, DType::F32, dev);
  EXPECT_NE(msg([&] { scaled_dot_product_attention(q, k3, k3, {.sinks = zeros({5}, DType::F32, dev)}); })
                .find("sinks"),
            std::string::npos);
  EXPECT_NE(msg([&] { scaled_dot_product_attention(q, k3, k3, {.bias = zeros({2, 3, 3}, DType::F32, dev)}); })
                .find("bias"),
            std::string::npos);
  EXPECT_THROW(scaled_dot_product_attention(q.view({6, 3, 8}), k3, k3), Error);
}

EMBER_INSTANTIATE_DEVICES(Attention);

}  // namespace
}  // namespace ember::nn
