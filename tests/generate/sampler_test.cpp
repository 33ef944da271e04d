#include "ember/generate/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <random>

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

// The definitions top-p and min-p follow (transformers': a stable sort of every token), written
// out plainly; the library ranks in O(n) and must keep exactly the same tokens.
std::vector<double> softmax_ref(const std::vector<float>& l) {
  double m = -INFINITY;
  for (float x : l) m = std::max(m, double(x));
  std::vector<double> p(l.size());
  double sum = 0;
  for (size_t i = 0; i < l.size(); ++i) sum += p[i] = std::exp(double(l[i]) - m);
  for (auto& x : p) x /= sum;
  return p;
}
std::vector<float> top_p_ref(std::vector<float> l, float p, int64_t keep) {
  std::vector<size_t> order(l.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return l[a] < l[b]; });
  std::vector<float> sorted;
  for (size_t i : order) sorted.push_back(l[i]);
  const auto probs = softmax_ref(sorted);
  double cum = 0;  // torch.cumsum on the CPU: f32 values accumulated in double
  std::vector<bool> remove(l.size());
  for (size_t i = 0; i < l.size(); ++i) remove[i] = float(cum += double(float(probs[i]))) <= 1.0f - p;
  for (size_t i = l.size() - std::min(l.size(), size_t(keep)); i < l.size(); ++i) remove[i] = false;
  for (size_t i = 0; i < l.size(); ++i)
    if (remove[i]) l[order[i]] = -kInf;
  return l;
}
std::vector<float> min_p_ref(std::vector<float> l, float min_p, int64_t keep) {
  const auto probs = softmax_ref(l);
  const double threshold = min_p * *std::max_element(probs.begin(), probs.end());
  std::vector<size_t> order(l.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return probs[a] > probs[b]; });
  std::vector<bool> kept(l.size());
  for (size_t r = 0; r < order.size(); ++r) kept[order[r]] = r < size_t(keep) || probs[order[r]] >= threshold;
  for (size_t i = 0; i < l.size(); ++i)
    if (!kept[i]) l[i] = -kInf;
  return l;
}

TEST(Processors, TopPAndMinPKeepWhatAFullStableSortKeeps) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 200; ++trial) {
    const size_t n = 1 + rng() % 3000;
    std::vector<float> l(n);
    std::normal_distribution<float> nd(0.f, 1.f + float(trial % 7));
    for (auto& x : l) {
      const uint32_t r = rng() % 100;
      // ties, signed zeros, -inf (tokens already filtered), large and tiny values
      x = r < 10 ? std::round(nd(rng)) : r < 13 ? (r == 11 ? -0.0f : 0.0f) : r < 16 ? -kInf : nd(rng);
    }
    if (std::all_of(l.begin(), l.end(), [](float x) { return std::isinf(x); })) l[0] = 1.0f;
    const float p = std::uniform_real_distribution<float>(0.01f, 1.0f)(rng);
    const int64_t keep = 1 + int64_t(rng() % 4);
    auto a = l;
    apply_top_p(a, p, keep);
    ASSERT_EQ(a, top_p_ref(l, p, keep)) << "top_p " << p << " keep " << keep << " trial " << trial;
    auto b = l;
    apply_min_p(b, p, keep);
    ASSERT_EQ(b, min_p_ref(l, p, keep)) << "min_p " << p << " keep " << keep << " trial " << trial;
  }
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
