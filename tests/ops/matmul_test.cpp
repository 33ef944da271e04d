// matmul, linear and MXFP4 on every device against double-precision references.
#include <gtest/gtest.h>

#include <cmath>

#include "ember/ops.h"
#include "test_util.h"

namespace ember {
namespace {

class Matmul : public testing::TestWithParam<Device> {};

// C[b] = op(A[b]) op(B[b]) with A [B, M, K] (or [B, K, M]) etc., in double.
std::vector<float> ref_matmul(const std::vector<float>& a, const std::vector<float>& b, int64_t Bt, int64_t M,
                              int64_t K, int64_t N, bool ta, bool tb, bool bcast_b) {
  std::vector<float> c(size_t(Bt * M * N));
  for (int64_t z = 0; z < Bt; ++z)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k) {
          double x = ta ? a[size_t(z * K * M + k * M + i)] : a[size_t(z * M * K + i * K + k)];
          int64_t zb = bcast_b ? 0 : z;
          double y = tb ? b[size_t(zb * N * K + j * K + k)] : b[size_t(zb * K * N + k * N + j)];
          s += x * y;
        }
        c[size_t(z * M * N + i * N + j)] = float(s);
      }
  return c;
}

TEST_P(Matmul, AllTransposesBatchedAndBroadcast) {
  Device d = GetParam();
  for (int64_t M : {1, 3, 17}) {
    const int64_t Bt = 2, K = 19, N = 13;
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (bool bc : {false, true}) {
          auto av = test::random_floats(size_t(Bt * M * K), 1 + M);
          auto bv = test::random_floats(size_t((bc ? 1 : Bt) * K * N), 2 + M);
          Tensor a = Tensor::from_vector(av, ta ? Shape{Bt, K, M} : Shape{Bt, M, K}).to(d);
          Tensor b = bc ? Tensor::from_vector(bv, tb ? Shape{N, K} : Shape{K, N}).to(d)
                        : Tensor::from_vector(bv, tb ? Shape{Bt, N, K} : Shape{Bt, K, N}).to(d);
          Tensor c = matmul(a, b, ta, tb);
          EXPECT_EQ(c.shape(), (Shape{Bt, M, N}));
          EXPECT_TRUE(test::all_close(c, ref_matmul(av, bv, Bt, M, K, N, ta, tb, bc), 1e-5f, 1e-5f))
              << M << ta << tb << bc;
        }
  }
}

TEST_P(Matmul, TransposedViewsNeedNoFlag) {
  Device d = GetParam();
  auto av = test::random_floats(6 * 5, 3), bv = test::random_floats(5 * 4, 4);
  Tensor a = Tensor::from_vector(av, {6, 5}).to(d), b = Tensor::from_vector(bv, {5, 4}).to(d);
  Tensor ref = matmul(a, b);
  Tensor at = a.transpose(0, 1).contiguous().transpose(0, 1);  // column-major view of a
  Tensor bt = b.transpose(0, 1).contiguous().transpose(0, 1);
  EXPECT_TRUE(test::all_close(matmul(at, bt), ref.to_vector<float>(), 1e-6f, 1e-6f));
  EXPECT_TRUE(test::all_close(matmul(b.transpose(0, 1), a.transpose(0, 1)).transpose(0, 1).contiguous(),
                              ref.to_vector<float>(), 1e-6f, 1e-6f));
}

TEST_P(Matmul, MixedPrecisionWeights) {
  Device d = GetParam();
  for (int64_t M : {1, 4, 33}) {
    const int64_t K = 70, N = 45;
    auto xv = test::random_floats(size_t(M * K), 7);
    auto wv = test::random_floats(size_t(N * K), 8);
    Tensor x = Tensor::from_vector(xv, {M, K}).to(d);
    for (DType wt : {DType::BF16, DType::F16}) {
      Tensor w = Tensor::from_vector(wv, {N, K}).to(d).to(wt);
      auto wr = w.to_vector<float>();  // the rounded weights are the reference's weights
      auto ref = ref_matmul(xv, wr, 1, M, K, N, false, true, true);
      Tensor y = linear(x, w);
      EXPECT_EQ(y.dtype(), DType::F32);
      EXPECT_TRUE(test::all_close(y, ref, 1e-5f, 1e-5f)) << M << dtype_name(wt);
      // Both 16-bit: the result keeps the dtype (f32 accumulation, one rounding).
      Tensor y16 = matmul(x.to(wt), w, false, true);
      EXPECT_EQ(y16.dtype(), wt);
      auto xr = x.to(wt).to_vector<float>();
      EXPECT_TRUE(test::all_close(y16, ref_matmul(xr, wr, 1, M, K, N, false, true, true), 1e-2f, 1e-2f));
    }
  }
}

TEST_P(Matmul, LinearWithBiasAndErrors) {
  Device d = GetParam();
  Tensor x = ones({2, 3, 4}, DType::F32, d), w = full({5, 4}, 0.5, DType::F32, d);
  Tensor y = linear(x, w, arange(0, 5, 1, DType::F32, d));
  EXPECT_EQ(y.shape(), (Shape{2, 3, 5}));
  EXPECT_EQ(y.select(0, 1).select(0, 2).to_vector<float>(), (std::vector<float>{2, 3, 4, 5, 6}));
  EXPECT_THROW(linear(x, zeros({5, 3}, DType::F32, d)), Error);
  EXPECT_THROW(linear(x, w, zeros({4}, DType::F32, d)), Error);
  EXPECT_THROW(matmul(zeros({2, 3}, DType::F32, d), zeros({4, 2}, DType::F32, d)), Error);
  EXPECT_THROW(matmul(zeros({2, 3}, DType::I32, d), zeros({3, 2}, DType::I32, d)), Error);
}

TEST_P(Matmul, Mxfp4DequantizeKnownBytes) {
  Device d = GetParam();
  // One row of 32 values: byte j holds value 2j (low nibble) and 2j+1 (high nibble).
  std::vector<uint8_t> blocks(16);
  for (int j = 0; j < 16; ++j) blocks[size_t(j)] = uint8_t(j | ((15 - j) << 4));
  std::vector<uint8_t> scales{127 + 2};  // x4
  auto w = Mxfp4Tensor::from_parts(Tensor::from_vector(blocks, {1, 1, 16}).to(d),
                                   Tensor::from_vector(scales, {1, 1}).to(d));
  EXPECT_EQ(w.shape, (Shape{1, 32}));
  auto v = mxfp4_dequantize(w).to_vector<float>();
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(v[size_t(2 * j)], kFp4Values[j] * 4) << j;
    EXPECT_EQ(v[size_t(2 * j + 1)], kFp4Values[15 - j] * 4) << j;
  }
  // Scale 127 is 1; scale 0 is 2^-127 (a subnormal f32), as torch.ldexp gives.
  scales = {0};
  blocks.assign(16, 0x22);  // 1.0 everywhere
  auto tiny = Mxfp4Tensor::from_parts(Tensor::from_vector(blocks, {1, 1, 16}).to(d), Tensor::from_vector(scales, {1, 1}).to(d));
  EXPECT_EQ(mxfp4_dequantize(tiny).to_vector<float>()[0], std::ldexp(1.0f, -127));
  EXPECT_EQ(mxfp4_dequantize(tiny, DType::BF16).dtype(), DType::BF16);
  EXPECT_THROW(Mxfp4Tensor::from_parts(Tensor::from_vector(blocks, {1, 16}), Tensor::from_vector(scales, {1})), Error);
  EXPECT_THROW(Mxfp4Tensor::from_parts(Tensor::from_vector(blocks, {1, 1, 16}), Tensor::from_vector(scales, {1, 1}).to(DType::I32)), Error);
}

TEST_P(Matmul, Mxfp4LinearEqualsDequantizedProduct) {
  Device d = GetParam();
  const int64_t N = 37, K = 96;
  Generator g(12);
  // Random codes and scales around 127 (values of a realistic magnitude).
  auto codes = rand({N, K / 32, 16}, g).to_vector<float>();
  std::vector<uint8_t> bb, ss;
  for (float c : codes) bb.push_back(uint8_t(c * 256));
  for (float c : rand({N, K / 32}, g).to_vector<float>()) ss.push_back(uint8_t(120 + c * 10));
  auto w = Mxfp4Tensor::from_parts(Tensor::from_vector(bb, {N, K / 32, 16}).to(d), Tensor::from_vector(ss, {N, K / 32}).to(d));
  auto wd = mxfp4_dequantize(w).to_vector<float>();
  Tensor bias = randn({N}, g, DType::BF16, d);
  auto bv = bias.to_vector<float>();
  for (int64_t M : {1, 5, 12}) {
    auto xv = test::random_floats(size_t(M * K), 30 + M);
    auto ref = ref_matmul(xv, wd, 1, M, K, N, false, true, true);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) ref[size_t(m * N + n)] += bv[size_t(n)];
    Tensor y = mxfp4_linear(Tensor::from_vector(xv, {M, K}).to(d), w, bias);
    EXPECT_TRUE(test::all_close(y, ref, 1e-5f, 1e-5f)) << M;
  }
  EXPECT_THROW(mxfp4_linear(zeros({2, K + 32}, DType::F32, d), w), Error);
}

TEST_P(Matmul, Mxfp4QuantizeRoundTrip) {
  Device d = GetParam();
  // Values that E2M1 times a power of two represents exactly survive unchanged.
  std::vector<float> v;
  for (int i = 0; i < 64; ++i) v.push_back(kFp4Values[i % 16] * (i < 32 ? 0.25f : 8.f));
  auto q = Mxfp4Tensor::quantize(Tensor::from_vector(v, {2, 32}).to(d));
  EXPECT_EQ(mxfp4_dequantize(q).to_vector<float>(), v);
  EXPECT_THROW(Mxfp4Tensor::quantize(zeros({2, 30}, DType::F32, d)), Error);
}

EMBER_INSTANTIATE_DEVICES(Matmul);

}  // namespace
}  // namespace ember
