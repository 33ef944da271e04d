#include "ember/generate/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>

#include "test_util.h"

namespace ember::generate {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(Processors, RepetitionPenaltyDividesPositivesAndMultipliesNegatives) {
  std::vector<float> l{2.f, -2.f, 1.f, 0.5f};
  std::vector<int32_t> h{0, 1, 1};
  apply_repetition_penalty(l, h, 2.f);
  EXPECT_EQ(l, (std::vector<float>{1.f, -4.f, 1.f, 0.5f}));
  std::vector<int32_t> bad{4};
  EXPECT_THROW(apply_repetition_penalty(l, bad, 2.f), Error);
}

TEST(Processors, FrequencyAndPresence) {
  std::vector<float> l{1.f, 1.f, 1.f};
  std::vector<int32_t> h{0, 0, 0, 2};
  apply_frequency_presence(l, h, 0.5f, 0.25f);
  EXPECT_EQ(l, (std::vector<float>{1.f - 1.5f - 0.25f, 1.f, 1.f - 0.5f - 0.25f}));
}

TEST(Processors, TopKKeepsTiesAndMinTokens) {
  std::vector<float> l{1, 5, 3, 5, 2};
  apply_top_k(l, 2);
  EXPECT_EQ(l, (std::vector<float>{-kInf, 5, -kInf, 5, -kInf}));
  std::vector<float> m{1, 5, 3, 4, 2};
  apply_top_k(m, 1, 3);
  EXPECT_EQ(m, (std::vector<float>{-kInf, 5, 3, 4, -kInf}));
}

TEST(Processors, TopPAndMinP) {
  // probs ~ softmax: keep the smallest set whose mass exceeds p.
  std::vector<float> l{std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  auto a = l;
  apply_top_p(a, 0.7f);
  EXPECT_TRUE(std::isfinite(a[0]) && std::isfinite(a[1]));
  EXPECT_TRUE(std::isinf(a[2]) && std::isinf(a[3]));
  auto b = l;
  apply_min_p(b, 0.4f);  // threshold 0.2: keeps 0.5 and 0.3
  EXPECT_TRUE(std::isfinite(b[1]) && std::isinf(b[2]));
  auto c = l;
  apply_min_p(c, 0.9f, 2);
  EXPECT_TRUE(std::isfinite(c[1]) && std::isinf(c[2]));
}

TEST(Sampler, GreedyIsArgmaxAfterPenalties) {
  Sampler s({.temperature = 0.f, .repetition_penalty = 4.f});
  std::vector<int32_t> h{1};
  EXPECT_EQ(s.sample(std::vector<float>{1.f, 2.f, 1.5f}, h), 2);  // 2/4 < 1.5
  EXPECT_EQ(argmax(std::vector<float>{3.f, 3.f}), 0);
}

TEST(Sampler, SeededSamplingIsReproducibleAndFollowsTheDistribution) {
  std::vector<float> logits{std::log(0.6f), std::log(0.3f), std::log(0.1f)};
  Sampler a({.temperature = 1.f}, 42), b({.temperature = 1.f}, 42);
  std::map<int32_t, int> counts;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    int32_t t = a.sample(logits, {});
    ASSERT_EQ(t, b.sample(logits, {}));
    counts[t]++;
  }
  // Binomial standard deviation ~ sqrt(n p (1-p)) <= 70; allow 5 sigma.
  EXPECT_NEAR(counts[0], 0.6 * n, 350);
  EXPECT_NEAR(counts[1], 0.3 * n, 350);
  EXPECT_NEAR(counts[2], 0.1 * n, 350);
  Sampler c({.temperature = 1.f}, 43);
  int diff = 0;
  Sampler a2({.temperature = 1.f}, 42);
  for (int i = 0; i < 100; ++i) diff += a2.sample(logits, {}) != c.sample(logits, {});
  EXPECT_GT(diff, 10);
}

TEST(Sampler, TopKOneIsGreedyAndAllFilteredIsAnError) {
  Sampler s({.temperature = 0.8f, .top_k = 1}, 3);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(s.sample(std::vector<float>{0.f, 3.f, 2.9f}, {}), 1);
  Sampler t({.temperature = 1.f}, 3);
  EXPECT_THROW(t.sample(std::vector<float>{-kInf, -kInf}, {}), Error);
}

TEST(Sampler, ConfigValidationNamesTheField) {
  auto msg = [](SamplingConfig c) {
    try {
      c.validate();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(msg({.temperature = -1.f}).find("temperature"), std::string::npos);
  EXPECT_NE(msg({.top_p = 0.f}).find("top_p"), std::string::npos);
  EXPECT_NE(msg({.min_p = 2.f}).find("min_p"), std::string::npos);
  EXPECT_NE(msg({.top_k = -3}).find("top_k"), std::string::npos);
  EXPECT_NE(msg({.repetition_penalty = 0.f}).find("repetition_penalty"), std::string::npos);
}

}  // namespace
}  // namespace ember::generate

// Against transformers' logits processors (tests/golden/primitives_golden.py).
#include "ember/formats/safetensors.h"

namespace ember::generate {
namespace {

TEST(Processors, MatchTransformersGolden) {
  auto f = formats::safetensors::File::open(std::string(EMBER_TEST_DATA_DIR) + "/nn/primitives_golden.safetensors");
  auto logits = f.get("sampler.logits").to_vector<float>();
  auto hist64 = f.get("sampler.history").to_vector<int64_t>();
  std::vector<int32_t> history(hist64.begin(), hist64.end());
  auto x = logits;
  apply_repetition_penalty(x, history, 1.3f);
  EXPECT_TRUE(test::all_close(x, f.get("sampler.after_repetition").to_vector<float>(), 1e-6f, 0));
  apply_temperature(x, 0.7f);
  EXPECT_TRUE(test::all_close(x, f.get("sampler.after_temperature").to_vector<float>(), 1e-6f, 0));
  apply_top_k(x, 20);
  EXPECT_TRUE(test::all_close(x, f.get("sampler.after_top_k").to_vector<float>(), 1e-6f, 0));
  apply_top_p(x, 0.8f);
  EXPECT_TRUE(test::all_close(x, f.get("sampler.after_top_p").to_vector<float>(), 1e-6f, 0));
  apply_min_p(x, 0.05f);
  EXPECT_TRUE(test::all_close(x, f.get("sampler.after_min_p").to_vector<float>(), 1e-6f, 0));
  auto y = logits;
  apply_min_p(y, 0.2f, 3);
  EXPECT_TRUE(test::all_close(y, f.get("sampler.min_p_only").to_vector<float>(), 1e-6f, 0));
  auto z = logits;
  apply_top_p(z, 0.3f, 2);
  EXPECT_TRUE(test::all_close(z, f.get("sampler.top_p_only").to_vector<float>(), 1e-6f, 0));
}

}  // namespace
}  // namespace ember::generate
