#include "ember/nn/patch.h"

#include <gtest/gtest.h>

#include "ember/ops.h"
#include "test_util.h"

namespace ember::nn {
namespace {

class Patch : public testing::TestWithParam<Device> {};

// Direct convolution with kernel = stride, in double.
TEST_P(Patch, Embed2dMatchesDirectConvolution) {
  Device d = GetParam();
  const int64_t B = 2, C = 3, H = 6, W = 8, D = 5, p = 2;
  auto xs = test::random_floats(size_t(B * C * H * W), 1);
  auto ws = test::random_floats(size_t(D * C * p * p), 2);
  auto bs = test::random_floats(size_t(D), 3);
  PatchEmbed pe(Tensor::from_vector(ws, {D, C, p, p}).to(d), Tensor::from_vector(bs, {D}).to(d));
  Tensor out = pe.forward(Tensor::from_vector(xs, {B, C, H, W}).to(d));
  ASSERT_EQ(out.shape(), (Shape{B, (H / p) * (W / p), D}));
  std::vector<float> ref;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < H / p; ++i)
      for (int64_t j = 0; j < W / p; ++j)
        for (int64_t o = 0; o < D; ++o) {
          double acc = bs[size_t(o)];
          for (int64_t c = 0; c < C; ++c)
            for (int64_t a = 0; a < p; ++a)
              for (int64_t e = 0; e < p; ++e)
                acc += double(ws[size_t(((o * C + c) * p + a) * p + e)]) *
                       xs[size_t(((b * C + c) * H + i * p + a) * W + j * p + e)];
          ref.push_back(float(acc));
        }
  EXPECT_TRUE(test::all_close(out, ref, 1e-5f, 1e-5f));
}

TEST_P(Patch, UnpatchifyInvertsAnOrthogonalEmbedding) {
  // With weight = identity over (C, pt, ph, pw), embedding then unpatchify is the identity.
  Device d = GetParam();
  const int64_t C = 2, pt = 2, ph = 3, pw = 2, P = C * pt * ph * pw;
  std::vector<float> eye(size_t(P * P), 0.f);
  for (int64_t i = 0; i < P; ++i) eye[size_t(i * P + i)] = 1.f;
  Tensor w = Tensor::from_vector(eye, {P, C, pt, ph, pw}).to(d);
  PatchEmbed pe(w);
  Unpatchify up(w);
  Generator g(4);
  Tensor x = randn({2, C, 4, 6, 4}, g, DType::F32, d);
  auto grid = pe.grid(x.shape());
  EXPECT_EQ(grid, (std::vector<int64_t>{2, 2, 2}));
  Tensor y = up.forward(pe.forward(x), grid);
  EXPECT_TRUE(test::all_close(y, x.to_vector<float>(), 0, 1e-6f));
}

TEST_P(Patch, BadShapesAreErrors) {
  Device d = GetParam();
  PatchEmbed pe(zeros({4, 3, 2, 2}, DType::F32, d));
  EXPECT_THROW(pe.forward(zeros({1, 3, 5, 4}, DType::F32, d)), Error);  // 5 % 2
  EXPECT_THROW(pe.forward(zeros({1, 2, 4, 4}, DType::F32, d)), Error);  // channels
  EXPECT_THROW(PatchEmbed(zeros({4, 3}, DType::F32, d)), Error);
  EXPECT_THROW(PatchEmbed(zeros({4, 3, 2, 2}, DType::F32, d), zeros({3}, DType::F32, d)), Error);
  Unpatchify up(zeros({4, 3, 2, 2}, DType::F32, d));
  EXPECT_THROW(up.forward(zeros({1, 5, 4}, DType::F32, d), {2, 2}), Error);
}

EMBER_INSTANTIATE_DEVICES(Patch);

}  // namespace
}  // namespace ember::nn
