#include "ember/generate/sampler.h"

#include "generate/sampling_params.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>

#include "ember/core/error.h"

namespace ember::generate {

namespace {
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

void check_token(int32_t t, size_t vocab) {
  EMBER_CHECK(t >= 0 && size_t(t) < vocab, "sampler: history token {} outside the vocabulary of {}",
              t, vocab);
}

// Indices of `v` in ascending order of value, equal values in index order: what std::stable_sort
// with < gives (-0 and +0 equal; a NaN sorts above +inf, or below -inf with its sign bit set), in
// O(n): an LSD radix sort of order-preserving 32-bit keys, 11 bits a pass, passes in which every
// key has the same digit skipped. A vocabulary of 201,088 logits took ~30 ms a token with the
// comparison sort (this 2-core machine).
std::vector<uint32_t> ascending_order(std::span<const float> v) {
  const size_t n = v.size();
  std::vector<uint32_t> key(n), idx(n), key2(n), idx2(n);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t b = v[i] == 0.0f ? 0u : std::bit_cast<uint32_t>(v[i]);
    key[i] = b & 0x80000000u ? ~b : b | 0x80000000u;
    idx[i] = uint32_t(i);
  }
  constexpr int kBits = 11, kBuckets = 1 << kBits;
  for (int shift = 0; shift < 32; shift += kBits) {
    std::vector<size_t> start(kBuckets + 1, 0);
    for (uint32_t k : key) ++start[((k >> shift) & (kBuckets - 1)) + 1];
    if (std::any_of(start.begin() + 1, start.end(), [&](size_t c) { return c == n; })) continue;
    for (int b = 0; b < kBuckets; ++b) start[b + 1] += start[b];
    for (size_t i = 0; i < n; ++i) {
      const size_t at = start[(key[i] >> shift) & (kBuckets - 1)]++;
      key2[at] = key[i], idx2[at] = idx[i];
    }
    key.swap(key2), idx.swap(idx2);
  }
  return idx;
}

// softmax in double over finite entries
std::vector<double> probabilities(std::span<const float> logits) {
  double m = -INFINITY;
  for (float x : logits) m = std::max(m, double(x));
  std::vector<double> p(logits.size());
  if (m == -INFINITY) return p;
  double sum = 0;
  for (size_t i = 0; i < logits.size(); ++i) sum += p[i] = std::exp(double(logits[i]) - m);
  for (auto& x : p) x /= sum;
  return p;
}
}  // namespace

backend::SamplingParams to_sampling_params(const SamplingConfig& c, uint64_t seed, uint64_t offset) {
  backend::SamplingParams p;
  p.temperature = c.temperature, p.top_k = c.top_k, p.top_p = c.top_p, p.min_p = c.min_p;
  p.repetition_penalty = c.repetition_penalty, p.frequency_penalty = c.frequency_penalty;
  p.presence_penalty = c.presence_penalty, p.min_tokens_to_keep = c.min_tokens_to_keep;
  p.seed = seed, p.offset = offset;
  return p;
}

void SamplingConfig::validate() const { backend::validate(to_sampling_params(*this)); }

void apply_repetition_penalty(std::span<float> logits, std::span<const int32_t> history,
                              float penalty) {
  if (penalty == 1.0f) return;
  std::vector<bool> seen(logits.size());
  for (int32_t t : history) {
    check_token(t, logits.size());
    seen[size_t(t)] = true;
  }
  for (size_t i = 0; i < logits.size(); ++i)
    if (seen[i]) logits[i] = logits[i] < 0 ? logits[i] * penalty : logits[i] / penalty;
}

void apply_frequency_presence(std::span<float> logits, std::span<const int32_t> history,
                              float frequency_penalty, float presence_penalty) {
  if (frequency_penalty == 0 && presence_penalty == 0) return;
  std::unordered_map<int32_t, int64_t> count;
  for (int32_t t : history) {
    check_token(t, logits.size());
    ++count[t];
  }
  for (auto [t, c] : count)
    logits[size_t(t)] -= frequency_penalty * float(c) + presence_penalty;
}

void apply_temperature(std::span<float> logits, float temperature) {
  EMBER_CHECK(temperature > 0, "sampling: temperature must be > 0 to scale logits, got {}", temperature);
  if (temperature == 1.0f) return;
  for (auto& x : logits) x /= temperature;
}

void apply_top_k(std::span<float> logits, int64_t k, int64_t min_tokens_to_keep) {
  if (k <= 0) return;
  k = std::min<int64_t>(std::max(k, min_tokens_to_keep), int64_t(logits.size()));
  std::vector<float> sorted(logits.begin(), logits.end());
  std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<float>());
  const float kth = sorted[size_t(k - 1)];
  for (auto& x : logits)  // ties with the k-th value survive, as in transformers
    if (x < kth) x = kNegInf;
}

void apply_top_p(std::span<float> logits, float p, int64_t min_tokens_to_keep) {
  if (p >= 1.0f) return;
  // transformers: sort ascending, cumulative softmax, drop tokens with cumprob <= 1 - top_p,
  // always keeping the last min_tokens_to_keep (highest) tokens.
  const size_t n = logits.size();
  const std::vector<uint32_t> order = ascending_order(logits);
  std::vector<float> sorted(n);
  for (size_t i = 0; i < n; ++i) sorted[i] = logits[order[i]];
  auto probs = probabilities(sorted);
  // The cumulative sum of the f32 probabilities as torch.cumsum gives it on the CPU: accumulated in
  // double (at::acc_type<float, false>), each value rounded to f32. Near-exact, so the device
  // sampler (backends/cuda/sampling.cu), which sums in another order, keeps the same tokens.
  double cum = 0;
  std::vector<bool> remove(n);
  for (size_t i = 0; i < n; ++i) {
    cum += double(float(probs[i]));
    remove[i] = float(cum) <= 1.0f - p;
  }
  for (size_t i = n - std::min<size_t>(n, size_t(min_tokens_to_keep)); i < n; ++i) remove[i] = false;
  for (size_t i = 0; i < n; ++i)
    if (remove[i]) logits[order[i]] = kNegInf;
}

void apply_min_p(std::span<float> logits, float min_p, int64_t min_tokens_to_keep) {
  if (min_p <= 0) return;
  auto probs = probabilities(logits);
  const double top = *std::max_element(probs.begin(), probs.end());
  const double threshold = min_p * top;
  // Keep at least the min_tokens_to_keep highest tokens (equal probabilities in index order, as a
  // stable sort would rank them); only those need ranking.
  std::vector<size_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  const size_t m = std::min(order.size(), size_t(min_tokens_to_keep));
  std::partial_sort(order.begin(), order.begin() + long(m), order.end(),
                    [&](size_t a, size_t b) { return probs[a] > probs[b] || (probs[a] == probs[b] && a < b); });
  std::vector<bool> keep(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) keep[i] = probs[i] >= threshold;
  for (size_t r = 0; r < m; ++r) keep[order[r]] = true;
  for (size_t i = 0; i < logits.size(); ++i)
    if (!keep[i]) logits[i] = kNegInf;
}

void process_logits(std::span<float> logits, std::span<const int32_t> history,
                    const SamplingConfig& c) {
  c.validate();
  apply_repetition_penalty(logits, history, c.repetition_penalty);
  apply_frequency_presence(logits, history, c.frequency_penalty, c.presence_penalty);
  if (!c.greedy()) apply_temperature(logits, c.temperature);
  apply_top_k(logits, c.top_k, c.min_tokens_to_keep);
  apply_top_p(logits, c.top_p, c.min_tokens_to_keep);
  apply_min_p(logits, c.min_p, c.min_tokens_to_keep);
}

int32_t argmax(std::span<const float> logits) {
  EMBER_CHECK(!logits.empty(), "argmax: empty logits");
  size_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best] || (std::isnan(logits[i]) && !std::isnan(logits[best]))) best = i;
  return int32_t(best);
}

Sampler::Sampler(SamplingConfig config, uint64_t seed) : config_(config), gen_(seed) {
  config_.validate();
}

int32_t Sampler::sample(const Tensor& logits, std::span<const int32_t> history) {
  EMBER_CHECK(logits.ndim() == 1 || (logits.ndim() == 2 && logits.dim(0) == 1),
              "sampler: logits must be one row [vocab], got {}", logits.shape().str());
  return sample(logits.to_vector<float>(), history);
}

int32_t Sampler::sample(std::vector<float> logits, std::span<const int32_t> history) {
  process_logits(logits, history, config_);
  if (config_.greedy()) return argmax(logits);
  auto probs = probabilities(logits);
  // Inverse CDF with one counter-based uniform draw: the same seed gives the same tokens.
  const double u = gen_.uniform();
  double cum = 0;
  int32_t last = -1;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] == 0) continue;
    last = int32_t(i);
    cum += probs[i];
    if (u < cum) return int32_t(i);
  }
  EMBER_CHECK(last >= 0, "sampler: every token was filtered out (all logits -inf or NaN)");
  return last;  // rounding left u just above the total
}

}  // namespace ember::generate
