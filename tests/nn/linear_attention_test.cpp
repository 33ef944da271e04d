#include "ember/nn/linear_attention.h"

#include <gtest/gtest.h>

#include <cmath>

#include "ember/ops.h"
#include "test_util.h"

namespace ember::nn {
namespace {

class LinearAttention : public testing::TestWithParam<Device> {};

float phi(float x, FeatureMap m) { return m == FeatureMap::Relu ? std::max(x, 0.f) : (x > 0 ? x + 1 : std::exp(x)); }

TEST_P(LinearAttention, MatchesTheDefinition) {
  Device d = GetParam();
  const int64_t B = 2, H = 2, T = 6, D = 4, Dv = 3;
  auto qv = test::random_floats(size_t(B * H * T * D), 1), kv = test::random_floats(size_t(B * H * T * D), 2),
       vv = test::random_floats(size_t(B * H * T * Dv), 3);
  std::vector<bool> pad(size_t(B * T), false);
  pad[size_t(T - 1)] = pad[size_t(2 * T - 2)] = pad[size_t(2 * T - 1)] = true;
  for (FeatureMap fm : {FeatureMap::EluPlusOne, FeatureMap::Relu})
    for (bool causal : {false, true}) {
      std::vector<float> ref;
      for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t i = 0; i < T; ++i) {
            std::vector<double> num(size_t(Dv), 0);
            double den = 0;
            for (int64_t j = 0; j < T; ++j) {
              if (causal && j > i) continue;
              if (pad[size_t(b * T + j)]) continue;
              double w = 0;
              for (int64_t e = 0; e < D; ++e)
                w += phi(qv[size_t(((b * H + h) * T + i) * D + e)], fm) * phi(kv[size_t(((b * H + h) * T + j) * D + e)], fm);
              den += w;
              for (int64_t e = 0; e < Dv; ++e) num[size_t(e)] += w * vv[size_t(((b * H + h) * T + j) * Dv + e)];
            }
            for (int64_t e = 0; e < Dv; ++e) ref.push_back(float(num[size_t(e)] / (den + 1e-6)));
          }
      Tensor out = linear_attention(Tensor::from_vector(qv, {B, H, T, D}).to(d), Tensor::from_vector(kv, {B, H, T, D}).to(d),
                                    Tensor::from_vector(vv, {B, H, T, Dv}).to(d),
                                    {.causal = causal, .feature_map = fm, .padding_mask = Tensor::from_vector(pad, {B, T}).to(d)});
      EXPECT_TRUE(test::all_close(out, ref, 1e-4f, 1e-5f)) << int(fm) << causal;
    }
}

TEST_P(LinearAttention, StreamingStateEqualsOneChunk) {
  Device d = GetParam();
  Generator g(4);
  Tensor q = randn({1, 3, 20, 8}, g, DType::F32, d), k = randn({1, 3, 20, 8}, g, DType::F32, d),
         v = randn({1, 3, 20, 5}, g, DType::F32, d);
  Tensor full = linear_attention(q, k, v, {.causal = true});
  LinearAttentionState st;
  std::vector<Tensor> parts;
  for (int64_t t = 0, n = 1; t < 20; t += n, n = std::min<int64_t>(n * 2, 20 - t))
    parts.push_back(linear_attention(q.narrow(2, t, n), k.narrow(2, t, n), v.narrow(2, t, n), {.causal = true}, &st));
  EXPECT_TRUE(test::all_close(cat(parts, 2), full.to_vector<float>(), 1e-4f, 1e-5f));
  EXPECT_THROW(linear_attention(q, k, v, {}, &st), Error);  // state needs causal
  EXPECT_THROW(linear_attention(q, k.narrow(3, 0, 4), v), Error);
}

EMBER_INSTANTIATE_DEVICES(LinearAttention);

}  // namespace
}  // namespace ember::nn
