#include "ember/nn/masks.h"

#include <gtest/gtest.h>

#include <cmath>

#include "test_util.h"

namespace ember::nn {
namespace {

std::vector<uint8_t> bits(const Tensor& m) { return m.to_vector<uint8_t>(); }

class Masks : public testing::TestWithParam<Device> {};

TEST_P(Masks, PaddingAndCausal) {
  Device d = GetParam();
  Tensor p = padding_mask({3, 1, 0}, 4, d);
  EXPECT_EQ(p.shape(), (Shape{3, 4}));
  EXPECT_EQ(bits(p), (std::vector<uint8_t>{0, 0, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(padding_mask({2, 3}, 0, d).shape(), (Shape{2, 3}));
  EXPECT_THROW(padding_mask({5}, 4, d), Error);

  // 2 queries at positions 3, 4 against keys 0..4
  EXPECT_EQ(bits(causal_mask(2, 5, 3, 0, d)), (std::vector<uint8_t>{0, 0, 0, 0, 1, 0, 0, 0, 0, 0}));
}

TEST_P(Masks, WindowedCausalMatchesTheDefinition) {
  const int64_t L = 12, w = 4, s = 2;
  auto m = bits(windowed_causal_mask(L, w, s, GetParam()));
  for (int64_t i = 0; i < L; ++i)
    for (int64_t j = 0; j < L; ++j) {
      bool visible = j <= i && (j > i - w || j < s);
      ASSERT_EQ(m[size_t(i * L + j)], visible ? 0 : 1) << i << "," << j;
    }
  // Each row sees exactly min(i+1, w) recent positions plus the sinks before the window.
  for (int64_t i = 0; i < L; ++i) {
    int64_t seen = 0;
    for (int64_t j = 0; j < L; ++j) seen += m[size_t(i * L + j)] == 0;
    EXPECT_EQ(seen, std::min(i + 1, w) + std::clamp<int64_t>(i + 1 - w, 0, s));
  }
  EXPECT_THROW(windowed_causal_mask(4, 0), Error);
}

TEST_P(Masks, ChunkedCausal) {
  // chunk 3, one left chunk: row 7 (chunk 2) sees columns 3..7.
  auto m = bits(chunked_causal_mask(9, 3, 1, true, GetParam()));
  for (int64_t j = 0; j < 9; ++j) EXPECT_EQ(m[size_t(7 * 9 + j)], (j >= 3 && j <= 7) ? 0 : 1) << j;
  // WeNet's form sees its whole chunk; unlimited left context.
  auto w = bits(chunked_causal_mask(9, 3, -1, false, GetParam()));
  for (int64_t j = 0; j < 9; ++j) EXPECT_EQ(w[size_t(4 * 9 + j)], j <= 5 ? 0 : 1) << j;
  EXPECT_THROW(chunked_causal_mask(9, 0), Error);
}

TEST_P(Masks, PositionMaskEqualsWindowedMaskAndHandlesEmptySlots) {
  std::vector<int64_t> pos(10);
  for (int i = 0; i < 10; ++i) pos[size_t(i)] = i;
  auto a = bits(position_mask(pos, pos, {.causal = true, .window = 3, .sinks = 1}, GetParam()));
  EXPECT_EQ(a, bits(windowed_causal_mask(10, 3, 1, GetParam())));
  // A rolling cache: slots hold positions out of order, -1 is empty.
  auto b = bits(position_mask({9}, {8, 9, -1, 0, 7, 5}, {.causal = true, .window = 3, .sinks = 1},
                              GetParam()));
  EXPECT_EQ(b, (std::vector<uint8_t>{0, 0, 1, 0, 0, 1}));
}

TEST_P(Masks, CombineAndAdditive) {
  Device d = GetParam();
  Tensor m = combine_masks(causal_mask(3, 3, 0, 0, d), padding_mask({2}, 3, d));  // [3,3] | [1,3]
  EXPECT_EQ(bits(m), (std::vector<uint8_t>{0, 1, 1, 0, 0, 1, 0, 0, 1}));
  auto add = mask_to_additive(m).to_vector<float>();
  EXPECT_EQ(add[0], 0.f);
  EXPECT_TRUE(std::isinf(add[1]) && add[1] < 0);
}

TEST_P(Masks, AlibiBiasFromAbsolutePositions) {
  auto slopes = alibi_slopes(8);
  ASSERT_EQ(slopes.size(), 8u);
  for (int h = 0; h < 8; ++h) EXPECT_FLOAT_EQ(slopes[size_t(h)], std::pow(2.f, -(h + 1.f)));
  // 12 heads: the 8 power-of-two slopes, then every other slope of 16 heads.
  auto s12 = alibi_slopes(12);
  ASSERT_EQ(s12.size(), 12u);
  for (int h = 0; h < 4; ++h) EXPECT_FLOAT_EQ(s12[size_t(8 + h)], std::pow(2.f, -(2 * h + 1) / 2.f));
  Tensor b = alibi_bias({0.5f, 0.25f}, 10, 2, 8, 4, GetParam());  // q at 10, 11; k at 8..11
  EXPECT_EQ(b.shape(), (Shape{2, 2, 4}));
  auto v = b.to_vector<float>();
  EXPECT_FLOAT_EQ(v[0], -1.0f);   // head 0, q 10, k 8
  EXPECT_FLOAT_EQ(v[7], -0.0f);   // head 0, q 11, k 11
  EXPECT_FLOAT_EQ(v[8 + 4], -0.75f);  // head 1, q 11, k 8
}

EMBER_INSTANTIATE_DEVICES(Masks);

}  // namespace
}  // namespace ember::nn
