#include "ember/core/generator.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

namespace ember {
namespace {

// The batch functions (AVX2 where available) give the scalar functions' bits, including across
// a carry into the counter's high word and for counts that are not a multiple of the vector width.
TEST(Philox, ManyEqualsOneAtATime) {
  for (uint64_t first : {uint64_t(0), uint64_t(0xFFFFFFFBull), uint64_t(123456789012345ull)}) {
    for (uint64_t count : {uint64_t(1), uint64_t(7), uint64_t(8), uint64_t(29), uint64_t(600)}) {
      const uint64_t key = 0x9E3779B97F4A7C15ull ^ first;
      std::vector<uint32_t> words(4 * count);
      philox4x32_many(key, first, count, words.data());
      std::vector<float> normals(count);
      philox_normal_many(key, first, count, normals.data());
      for (uint64_t i = 0; i < count; ++i) {
        const auto r = philox4x32(key, first + i);
        for (int k = 0; k < 4; ++k) ASSERT_EQ(words[4 * i + uint64_t(k)], r[size_t(k)]) << first << "+" << i;
        const float z = philox_normal(key, first + i);
        ASSERT_EQ(std::memcmp(&normals[i], &z, sizeof z), 0) << first << "+" << i;
      }
    }
  }
}

// Known-answer vectors of Philox4x32-10 from the Random123 distribution (kat_vectors).
TEST(Philox, KnownAnswers) {
  auto zero = philox4x32(0, 0, 0);
  EXPECT_EQ(zero[0], 0x6627e8d5u);
  EXPECT_EQ(zero[1], 0xe169c58du);
  EXPECT_EQ(zero[2], 0xbc57ac4cu);
  EXPECT_EQ(zero[3], 0x9b00dbd8u);

  auto ones = philox4x32(~0ull, ~0ull, ~0ull);
  EXPECT_EQ(ones[0], 0x408f276du);
  EXPECT_EQ(ones[1], 0x41c83b0eu);
  EXPECT_EQ(ones[2], 0xa20bc7c6u);
  EXPECT_EQ(ones[3], 0x6d5451fdu);

  // counter {243f6a88 85a308d3 13198a2e 03707344}, key {a4093822 299f31d0} (digits of pi)
  auto pi = philox4x32(0x299f31d0a4093822ull, 0x85a308d3243f6a88ull, 0x0370734413198a2eull);
  EXPECT_EQ(pi[0], 0xd16cfe09u);
  EXPECT_EQ(pi[1], 0x94fdccebu);
  EXPECT_EQ(pi[2], 0x5001e420u);
  EXPECT_EQ(pi[3], 0x24126ea1u);
}

TEST(Generator, StreamsAreCounterBased) {
  Generator g(42);
  float a = g.uniform(), b = g.uniform();
  EXPECT_EQ(g.offset(), 2u);
  EXPECT_EQ(a, philox_uniform(42, 0));
  EXPECT_EQ(b, philox_uniform(42, 1));
  EXPECT_NE(a, b);
  Generator h(42);
  h.set_offset(1);
  EXPECT_EQ(h.uniform(), b);
}

TEST(Generator, UniformAndNormalMoments) {
  const int n = 200000;
  double su = 0, sn = 0, sn2 = 0;
  for (int i = 0; i < n; ++i) {
    float u = philox_uniform(7, i);
    ASSERT_GE(u, 0.f);
    ASSERT_LT(u, 1.f);
    su += u;
    float z = philox_normal(7, i);
    ASSERT_TRUE(std::isfinite(z));
    sn += z;
    sn2 += double(z) * z;
  }
  // Standard errors: uniform mean 0.29/sqrt(n) ~ 6.5e-4; normal mean 2.2e-3, var ~3.2e-3.
  EXPECT_NEAR(su / n, 0.5, 4e-3);
  EXPECT_NEAR(sn / n, 0.0, 1.2e-2);
  EXPECT_NEAR(sn2 / n, 1.0, 1.6e-2);
}

}  // namespace
}  // namespace ember
