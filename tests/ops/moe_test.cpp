// moe_mxfp4 against a scalar reference of model.py's MLPBlock (after the router), on every device.
#include <gtest/gtest.h>

#include <cmath>

#include "ember/ops.h"
#include "test_util.h"

namespace ember {
namespace {

class MoeMxfp4 : public testing::TestWithParam<Device> {};

std::vector<float> reference(const std::vector<float>& x, const std::vector<int64_t>& idx, const std::vector<float>& wts,
                             const std::vector<float>& w1, const std::vector<float>& b1, const std::vector<float>& w2,
                             const std::vector<float>& b2, int64_t T, int64_t k, int64_t H, int64_t I, float limit) {
  std::vector<float> out(size_t(T * H), 0.f);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t s = 0; s < k; ++s) {
      const int64_t e = idx[size_t(t * k + s)];
      std::vector<float> act(static_cast<size_t>(I));
      for (int64_t j = 0; j < I; ++j) {
        double g = b1[size_t(e * 2 * I + 2 * j)], l = b1[size_t(e * 2 * I + 2 * j + 1)];
        for (int64_t h = 0; h < H; ++h) {
          g += double(w1[size_t((e * 2 * I + 2 * j) * H + h)]) * x[size_t(t * H + h)];
          l += double(w1[size_t((e * 2 * I + 2 * j + 1) * H + h)]) * x[size_t(t * H + h)];
        }
        g = std::min(g, double(limit));
        l = std::clamp(l, -double(limit), double(limit));
        act[size_t(j)] = float(g / (1.0 + std::exp(-1.702 * g)) * (l + 1.0));
      }
      for (int64_t n = 0; n < H; ++n) {
        double y = b2[size_t(e * H + n)];
        for (int64_t j = 0; j < I; ++j) y += double(w2[size_t((e * H + n) * I + j)]) * act[size_t(j)];
        out[size_t(t * H + n)] += float(wts[size_t(t * k + s)] * y);
      }
    }
  return out;
}

TEST_P(MoeMxfp4, MatchesScalarReference) {
  const Device d = GetParam();
  const int64_t E = 6, H = 96, I = 64, k = 3;
  for (int64_t T : {1, 5}) {
    Mxfp4Tensor w1 = Mxfp4Tensor::quantize(Tensor::from_vector(test::random_floats(size_t(E * 2 * I * H), 1, -2, 2), {E, 2 * I, H}));
    Mxfp4Tensor w2 = Mxfp4Tensor::quantize(Tensor::from_vector(test::random_floats(size_t(E * H * I), 2, -2, 2), {E, H, I}));
    auto b1 = test::round_bf16(test::random_floats(size_t(E * 2 * I), 3)), b2 = test::round_bf16(test::random_floats(size_t(E * H), 4));
    auto x = test::random_floats(size_t(T * H), 5);
    std::vector<int64_t> idx;
    std::vector<float> wts;
    for (int64_t t = 0; t < T; ++t)
      for (int64_t s = 0; s < k; ++s) idx.push_back((t * 5 + s * 2) % E), wts.push_back(0.2f + 0.1f * float(s));
    auto ref = reference(x, idx, wts, mxfp4_dequantize(w1).to_vector<float>(), b1, mxfp4_dequantize(w2).to_vector<float>(), b2,
                         T, k, H, I, 7.0f);
    Tensor out = moe_mxfp4(Tensor::from_vector(x, {T, H}).to(d), Tensor::from_vector(idx, {T, k}).to(d),
                           Tensor::from_vector(wts, {T, k}).to(d), w1.to(d),
                           Tensor::from_vector(b1, {E, 2 * I}).to(DType::BF16).to(d), w2.to(d),
                           Tensor::from_vector(b2, {E, H}).to(DType::BF16).to(d), 7.0f);
    EXPECT_TRUE(test::all_close(out.to(Device::cpu()), ref, 1e-4f, 1e-3f)) << "T=" << T;
  }
}

TEST_P(MoeMxfp4, RejectsMismatchedShapes) {
  const Device d = GetParam();
  Mxfp4Tensor w1 = Mxfp4Tensor::quantize(zeros({2, 64, 32})).to(d), w2 = Mxfp4Tensor::quantize(zeros({2, 32, 32})).to(d);
  Tensor x = zeros({1, 32}, DType::F32, d), idx = zeros({1, 1}, DType::I64, d), w = ones({1, 1}, DType::F32, d);
  Tensor b1 = zeros({2, 64}, DType::F32, d), b2 = zeros({2, 32}, DType::F32, d);
  EXPECT_NO_THROW(moe_mxfp4(x, idx, w, w1, b1, w2, b2, 7.0f));
  EXPECT_THROW(moe_mxfp4(zeros({1, 64}, DType::F32, d), idx, w, w1, b1, w2, b2, 7.0f), Error);
  EXPECT_THROW(moe_mxfp4(x, zeros({1, 1}, DType::F32, d), w, w1, b1, w2, b2, 7.0f), Error);
  EXPECT_THROW(moe_mxfp4(x, idx, ones({1, 2}, DType::F32, d), w1, b1, w2, b2, 7.0f), Error);
  EXPECT_THROW(moe_mxfp4(x, idx, w, w1, zeros({2, 32}, DType::F32, d), w2, b2, 7.0f), Error);
}

EMBER_INSTANTIATE_DEVICES(MoeMxfp4);

}  // namespace
}  // namespace ember
