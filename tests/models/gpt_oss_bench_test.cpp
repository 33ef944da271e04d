// The `ember bench` code path (models::gpt_oss::bench) on the tiny reference checkpoint.
#include <gtest/gtest.h>

#include <string>

#include "ember/generate/sampler.h"
#include "ember/models/gpt_oss.h"
#include "test_util.h"

namespace ember::models::gpt_oss {
namespace {

const std::string kTinyA = std::string(EMBER_TEST_DATA_DIR) + "/gpt_oss/tiny_a";

TEST(GptOssBench, TimesPrefillAndDecodeOfTheGreedyContinuation) {
  BenchOptions o;
  o.prompt_tokens = 12;
  o.decode_tokens = 5;
  o.seed = 3;
  std::vector<std::string> phases;
  uint64_t load_done = 0, load_total = 0, decode_steps = 0;
  o.progress = [&](const char* phase, uint64_t done, uint64_t total) {
    if (phases.empty() || phases.back() != phase) phases.push_back(phase);
    if (phases.back() == "load") load_done = done, load_total = total;
    if (phases.back() == "decode") {
      decode_steps = done;
      EXPECT_EQ(total, 5u);
    }
  };
  const BenchResult r = bench(kTinyA, o);
  EXPECT_EQ(phases, (std::vector<std::string>{"load", "prefill", "decode"}));
  EXPECT_GT(load_total, 0u);
  EXPECT_EQ(load_done, load_total);
  EXPECT_EQ(decode_steps, 5u);
  EXPECT_EQ(r.prompt_tokens, 12);
  EXPECT_EQ(r.decode_tokens, 5);
  ASSERT_EQ(r.prompt.size(), 12u);
  ASSERT_EQ(r.generated.size(), 6u);
  for (int32_t t : r.prompt) EXPECT_TRUE(t >= 0 && t < r.config.vocab_size);
  EXPECT_GT(r.load_seconds, 0);
  EXPECT_GT(r.prefill_seconds, 0);
  EXPECT_GE(r.time_to_first_token, r.prefill_seconds);
  EXPECT_GT(r.decode_seconds, 0);
  EXPECT_GT(r.prefill_tokens_per_second(), 0);
  EXPECT_GT(r.decode_tokens_per_second(), 0);
  EXPECT_GT(r.memory.peak_resident, 0u);
  EXPECT_GE(r.memory.peak_resident, r.memory.resident);
  EXPECT_GE(r.prefill_cpu_seconds, 0);
  EXPECT_GE(r.decode_cpu_seconds, 0);

  // The same tokens as greedy decoding by recomputing the whole sequence (no cache).
  const Model model = Model::load(kTinyA);
  std::vector<int32_t> seq = r.prompt;
  for (size_t i = 0; i < r.generated.size(); ++i) {
    const Tensor logits = model.forward(seq);
    const auto all = logits.to_vector<float>();
    const int64_t V = logits.dim(1);
    const int32_t next = generate::argmax(std::span<const float>(all).subspan(size_t((logits.dim(0) - 1) * V)));
    EXPECT_EQ(r.generated[i], next) << "token " << i;
    seq.push_back(next);
  }

  // Seeded: the same prompt again, another for another seed.
  o.progress = nullptr;
  o.decode_tokens = 0;
  const BenchResult again = bench(kTinyA, o);
  EXPECT_EQ(again.prompt, r.prompt);
  EXPECT_EQ(again.generated.size(), 1u);
  EXPECT_EQ(again.decode_tokens_per_second(), 0);
  o.seed = 4;
  EXPECT_NE(bench(kTinyA, o).prompt, r.prompt);
}

// With a sampling config the decode steps draw from a host Sampler's stream (seeded by the bench
// seed) after the prefill's argmax; recomputed here from scratch with the full sequence.
TEST(GptOssBench, SampledDecodeDrawsWhatTheSamplerDraws) {
  BenchOptions o;
  o.prompt_tokens = 10;
  o.decode_tokens = 6;
  o.seed = 5;
  o.sampling = generate::SamplingConfig{.temperature = 1.5f, .top_p = 0.95f};
  const BenchResult r = bench(kTinyA, o);
  ASSERT_EQ(r.generated.size(), 7u);
  const Model model = Model::load(kTinyA);
  generate::Sampler sampler(*o.sampling, o.seed);
  std::vector<int32_t> seq = r.prompt, picked;
  for (size_t i = 0; i < r.generated.size(); ++i) {
    const Tensor logits = model.forward(seq);
    const Tensor last = logits.select(0, logits.dim(0) - 1);
    const int32_t next = i == 0 ? generate::argmax(last.to_vector<float>()) : sampler.sample(last, picked);
    if (i > 0) picked.push_back(next);
    EXPECT_EQ(r.generated[i], next) << "token " << i;
    seq.push_back(next);
  }
  // Not the greedy continuation (this seed and temperature leave it at step 1 or later).
  o.sampling.reset();
  EXPECT_NE(bench(kTinyA, o).generated, r.generated);
}

TEST(GptOssBench, RejectsBadCounts) {
  BenchOptions o;
  o.prompt_tokens = 0;
  EXPECT_THROW(bench(kTinyA, o), Error);
  o.prompt_tokens = 4;
  o.decode_tokens = -1;
  EXPECT_THROW(bench(kTinyA, o), Error);
  o.decode_tokens = 1'000'000;  // beyond the context length
  EXPECT_THROW(bench(kTinyA, o), Error);
}

// The arithmetic: a 20b decode step reads ~3.7 GB (attention 1.27 GB bf16, four experts a
// layer 1.27 GB at 4.25 bits a weight, unembedding 1.16 GB), a 120b step ~5.0 GB; the K/V of the
// context come on top (bf16 on the fused runtime, f32 on the ops path).
TEST(GptOssBench, DecodeBytesFollowTheBandwidthArithmetic) {
  const Config c20 = preset("20b"), c120 = preset("120b");
  EXPECT_NEAR(decode_bytes_per_token(c20, 0) / 1e9, 3.71, 0.02);
  EXPECT_NEAR(decode_bytes_per_token(c120, 0) / 1e9, 5.0, 0.1);
  // 32k context: 12 full-attention layers read 32769 keys and values, 12 windowed ones 128.
  const double kv = (12.0 * 32769 + 12.0 * 128) * 2 * 8 * 64 * 2;
  EXPECT_NEAR(decode_bytes_per_token(c20, 32768) - decode_bytes_per_token(c20, 0), kv - 24.0 * 2 * 8 * 64 * 2, 1.0);
  EXPECT_NEAR(decode_bytes_per_token(c20, 100, 4) - decode_bytes_per_token(c20, 100, 2),
              decode_bytes_per_token(c20, 100, 2) - decode_bytes_per_token(c20, 100, 0), 1.0);
}

TEST(ProcessMemory, ReportsResidentBytes) {
  const ProcessMemory m = process_memory();
  EXPECT_GT(m.peak_resident, 0u);
#ifdef __linux__
  EXPECT_GT(m.resident, 0u);
  EXPECT_GE(m.peak_resident, m.resident);
  EXPECT_GT(m.resident_anon, 0u);
#endif
  EXPECT_GT(process_cpu_seconds(), 0);
}

}  // namespace
}  // namespace ember::models::gpt_oss
