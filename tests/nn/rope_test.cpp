#include "ember/nn/rope.h"

#include <gtest/gtest.h>

#include <cmath>

#include "ember/ops.h"
#include "test_util.h"

namespace ember::nn {
namespace {

RopeConfig gpt_oss_rope() {
  return {.head_dim = 64, .theta = 150000.0, .layout = RopeLayout::HalfSplit, .yarn = YarnScaling{}};
}

TEST(Rope, YarnFrequenciesFollowTheRamp) {
  auto f = rope_frequencies(gpt_oss_rope());
  ASSERT_EQ(f.inv_freq.size(), 32u);
  EXPECT_NEAR(f.concentration, 0.1 * std::log(32.0) + 1.0, 1e-6);
  // Below `low` (~8.09) the ramp is 0: pure extrapolation 1/freq (high frequencies kept); above
  // `high` (~17.4) pure interpolation 1/(32 freq).
  EXPECT_EQ(f.inv_freq[0], 1.0f);
  double freq31 = std::pow(150000.0, 62.0 / 64.0);
  EXPECT_NEAR(f.inv_freq[31], 1.0 / (32 * freq31), 1e-6 / (32 * freq31));
  for (size_t i = 1; i < 32; ++i) EXPECT_LT(f.inv_freq[i], f.inv_freq[i - 1]);
  EXPECT_THROW(rope_frequencies({.head_dim = 63}), Error);
  EXPECT_THROW(rope_frequencies({.head_dim = 4, .theta = 150000.0, .yarn = YarnScaling{}}), Error);
}

class RopeDevice : public testing::TestWithParam<Device> {};

TEST_P(RopeDevice, OffsetTablesAreSlicesOfTheFullTable) {
  Rope rope(gpt_oss_rope());
  auto [c_all, s_all] = rope.tables(0, 40, GetParam());
  auto [c, s] = rope.tables(25, 15, GetParam());
  EXPECT_EQ(c.to_vector<float>(), c_all.slice(0, 25, 40).contiguous().to_vector<float>());
  EXPECT_EQ(s.to_vector<float>(), s_all.slice(0, 25, 40).contiguous().to_vector<float>());
}

TEST_P(RopeDevice, RotationMatchesScalarFormulaForBothLayouts) {
  Device d = GetParam();
  const int64_t T = 5, H = 3, D = 16;
  auto xs = test::random_floats(size_t(T * H * D), 11);
  Tensor x = Tensor::from_vector(xs, {T, H, D}).to(d);
  for (RopeLayout layout : {RopeLayout::HalfSplit, RopeLayout::Interleaved}) {
    Rope rope({.head_dim = D, .theta = 10000.0, .layout = layout});
    auto inv = rope.frequencies().inv_freq;
    auto out = rope.apply(x, 7, 0).to_vector<float>();
    std::vector<float> ref(xs.size());
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < D / 2; ++i) {
          double a = double(float(7 + t) * inv[size_t(i)]);
          int64_t i1 = layout == RopeLayout::HalfSplit ? i : 2 * i;
          int64_t i2 = layout == RopeLayout::HalfSplit ? i + D / 2 : 2 * i + 1;
          size_t base = size_t((t * H + h) * D);
          double x1 = xs[base + size_t(i1)], x2 = xs[base + size_t(i2)];
          ref[base + size_t(i1)] = float(x1 * std::cos(a) - x2 * std::sin(a));
          ref[base + size_t(i2)] = float(x2 * std::cos(a) + x1 * std::sin(a));
        }
    EXPECT_TRUE(test::all_close(out, ref, 1e-5f, 1e-6f)) << int(layout);
  }
}

TEST_P(RopeDevice, TokenDimAndDtypeArePreserved) {
  Device d = GetParam();
  Rope rope(gpt_oss_rope());
  Generator gen(3);
  Tensor x = randn({2, 4, 6, 64}, gen, DType::F32, d);  // [batch, heads, tokens, dim]
  Tensor a = rope.apply(x, 10, 2);
  Tensor b = rope.apply(x.transpose(1, 2).contiguous(), 10, 1).transpose(1, 2);  // [b, t, h, d]
  EXPECT_TRUE(test::all_close(a, b.contiguous().to_vector<float>(), 0, 0));
  EXPECT_EQ(rope.apply(x.to(DType::BF16), 0, 2).dtype(), DType::BF16);
  EXPECT_THROW(rope.apply(x, 0, 3), Error);  // token_dim is the head dim
  EXPECT_THROW(rope.apply(x.narrow(-1, 0, 62), 0, 2), Error);
}

TEST_P(RopeDevice, Rope3dFrameOffsetShiftsFrames) {
  Device d = GetParam();
  Rope3d rope({.head_dim = 48});
  EXPECT_EQ(rope.split(), (std::array<int64_t, 3>{16, 16, 16}));
  const int64_t F = 5, H = 2, W = 3, hw = H * W;
  Generator gen(9);
  Tensor x = randn({F * hw, 2, 48}, gen, DType::F32, d);
  Tensor full = rope.apply(x, F, H, W, 0, 0);
  // The last 2 frames alone, streamed at frame offset 3, equal the full grid's last 2 frames.
  Tensor tail = rope.apply(x.slice(0, 3 * hw, F * hw), 2, H, W, 3, 0);
  EXPECT_TRUE(test::all_close(tail, full.slice(0, 3 * hw, F * hw).contiguous().to_vector<float>(),
                              0, 0));
  EXPECT_THROW(rope.apply(x, 4, H, W, 0, 0), Error);
  EXPECT_THROW(Rope3d({.head_dim = 48, .split = std::array<int64_t, 3>{16, 16, 14}}), Error);
}

EMBER_INSTANTIATE_DEVICES(RopeDevice);

}  // namespace
}  // namespace ember::nn
