// Sampling on the device (backends/cuda/sampling.h) against the host Sampler: the kernel on random
// rows (ties, -inf, signed zeros, extreme temperatures, vocabularies of one and of many blocks),
// then the fused gpt-oss runtime's sampled generation (CausalLM::sample, generate::run) against
// the host path over the same runtime's logits, on tiny synthetic checkpoints. Tokens must be
// equal: the two differ only where a double sum lands within ~1e-11 of a boundary (sampling.h),
// which these seeds do not hit.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>

#include "ember/generate/runner.h"
#include "ember/generate/sampler.h"
#include "ember/models/gpt_oss.h"
#include "test_util.h"

#if EMBER_HAS_CUDA
#include "backends/cuda/sampling.h"
#include "backends/cuda/stream.h"
#include "generate/sampling_params.h"
#endif

namespace ember {
namespace {

using generate::SamplingConfig;

struct NamedConfig {
  const char* name;
  SamplingConfig config;
};

std::vector<NamedConfig> configs() {
  return {
      {"temperature", {.temperature = 0.8f}},
      {"top_p", {.temperature = 1.0f, .top_p = 0.9f}},
      {"top_k_top_p", {.temperature = 0.9f, .top_k = 40, .top_p = 0.95f}},
      {"min_p", {.temperature = 1.0f, .min_p = 0.05f}},
      {"penalties", {.temperature = 0.9f, .top_p = 0.95f, .repetition_penalty = 1.3f, .frequency_penalty = 0.2f,
                     .presence_penalty = 0.1f}},
      {"min_tokens_to_keep", {.temperature = 1.2f, .top_k = 3, .top_p = 0.3f, .min_p = 0.5f, .min_tokens_to_keep = 7}},
      {"greedy_penalised", {.temperature = 0.0f, .top_p = 0.8f, .repetition_penalty = 1.5f, .presence_penalty = 0.3f}},
      {"cold", {.temperature = 0.05f, .top_p = 0.5f}},
      {"hot", {.temperature = 4.0f, .top_k = 1000, .min_p = 0.01f, .min_tokens_to_keep = 50}},
  };
}

#if EMBER_HAS_CUDA

using generate::to_sampling_params;

// A row with what makes ranking hard: runs of exactly equal values, -0/+0, -inf, a few outliers.
std::vector<float> random_row(std::mt19937& rng, size_t n, float scale) {
  std::normal_distribution<float> nd(0.f, scale);
  std::vector<float> l(n);
  for (auto& x : l) {
    const uint32_t r = rng() % 100;
    x = r < 20 ? std::round(nd(rng)) : r < 23 ? (r == 21 ? -0.0f : 0.0f)
        : r < 26 ? -std::numeric_limits<float>::infinity() : r < 27 ? 4 * scale + nd(rng) : nd(rng);
  }
  return l;
}

class DeviceSamplerTest : public testing::TestWithParam<int64_t> {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device visible";
  }
};

TEST_P(DeviceSamplerTest, PicksWhatTheHostSamplerPicks) {
  const int64_t V = GetParam();
  const int kRows = 24;
  backend::cuda::DeviceSampler sampler(0, V);
  cudaStream_t stream = backend::cuda::stream_for(0);
  std::mt19937 rng{uint32_t(V)};
  std::vector<std::vector<float>> rows;
  for (int r = 0; r < kRows; ++r) rows.push_back(random_row(rng, size_t(V), 1.0f + float(r % 5)));
  std::vector<int32_t> history;
  for (int i = 0; i < 40; ++i) history.push_back(int32_t(rng() % uint32_t(V)));
  std::vector<float> flat;
  for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  const Tensor dev_rows = Tensor::from_vector(flat, {kRows, V}).to(Device::cuda(0));
  for (const auto& [name, config] : configs()) {
    const uint64_t seed = 1234 + uint64_t(V), offset = 17;
    generate::Sampler host(config, seed);
    host.generator().set_offset(offset);
    std::vector<int32_t> h = history, want;
    for (const auto& r : rows) {
      want.push_back(host.sample(r, h));
      h.push_back(want.back());
    }
    sampler.configure(to_sampling_params(config, seed, offset), history, stream);
    Tensor tokens = Tensor::empty({kRows}, DType::I32, Device::cuda(0));
    for (int r = 0; r < kRows; ++r)
      sampler.sample(static_cast<const float*>(dev_rows.raw_data()) + int64_t(r) * V,
                     static_cast<int32_t*>(tokens.raw_data()) + r, stream);
    sampler.enqueue_status(stream);
    const auto got = tokens.to(Device::cpu()).to_vector<int32_t>();
    EXPECT_EQ(sampler.offset(stream), host.generator().offset()) << name;
    EXPECT_NO_THROW(sampler.check()) << name;
    EXPECT_EQ(got, want) << name << ", vocabulary " << V << " over " << sampler.blocks() << " blocks";
  }
}

TEST_P(DeviceSamplerTest, EveryTokenFilteredOutIsAnError) {
  const int64_t V = GetParam();
  backend::cuda::DeviceSampler sampler(0, V);
  cudaStream_t stream = backend::cuda::stream_for(0);
  const Tensor row = Tensor::from_vector(std::vector<float>(size_t(V), -std::numeric_limits<float>::infinity()), {V})
                         .to(Device::cuda(0));
  Tensor token = Tensor::empty({1}, DType::I32, Device::cuda(0));
  sampler.configure(to_sampling_params({.temperature = 1.0f, .top_p = 0.5f}, 3, 0), {}, stream);
  sampler.sample(static_cast<const float*>(row.raw_data()), static_cast<int32_t*>(token.raw_data()), stream);
  sampler.enqueue_status(stream);
  (void)sampler.offset(stream);  // synchronises
  EXPECT_THROW(sampler.check(), Error);
  // Greedy has no draw to fail: argmax's first index, as on the host.
  sampler.configure(to_sampling_params({.temperature = 0.0f}, 3, 0), {}, stream);
  sampler.sample(static_cast<const float*>(row.raw_data()), static_cast<int32_t*>(token.raw_data()), stream);
  sampler.enqueue_status(stream);
  EXPECT_EQ(token.to(Device::cpu()).to_vector<int32_t>()[0], 0);
  EXPECT_NO_THROW(sampler.check());
  const std::vector<int32_t> bad{int32_t(V)};
  EXPECT_THROW(sampler.configure(to_sampling_params({.repetition_penalty = 1.2f}, 3, 0), bad, stream), Error);
  EXPECT_THROW(sampler.configure(to_sampling_params({.top_p = 0.0f}, 3, 0), {}, stream), Error);
}

// One block (512), a few (3001: six chunks, the last partial) and gpt-oss's vocabulary.
INSTANTIATE_TEST_SUITE_P(Vocabularies, DeviceSamplerTest, testing::Values(int64_t(512), int64_t(3001), int64_t(201088)));

#endif  // EMBER_HAS_CUDA

namespace gpt_oss = models::gpt_oss;

// The model without its own sample(): generate::CausalModel's host loop over the same runtime.
class HostSampled : public generate::CausalModel {
 public:
  explicit HostSampled(gpt_oss::CausalLM& lm) : lm_(lm) {}
  int64_t vocab_size() const override { return lm_.vocab_size(); }
  int64_t max_context() const override { return lm_.max_context(); }
  Tensor forward(std::span<const int32_t> tokens, int64_t start_pos, bool all_logits) override {
    return lm_.forward(tokens, start_pos, all_logits);
  }
  void reset() override { lm_.reset(); }

 private:
  gpt_oss::CausalLM& lm_;
};

class GptOssCudaSampling : public testing::TestWithParam<uint64_t> {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device (the fused runtime runs on CUDA only)";
    gpt_oss::write_fixture(gpt_oss::preset("tiny"), tmp_.path(), GetParam());
    gpu_.emplace(gpt_oss::Model::load(tmp_.path(), Device::cuda(0)));
    const int64_t V = gpu_->config().vocab_size;
    for (int64_t i = 0; i < 16; ++i) prompt_.push_back(int32_t((i * 7919 + 13) % V));
  }
  test::TempDir tmp_;
  std::optional<gpt_oss::Model> gpu_;
  std::vector<int32_t> prompt_;
};

TEST_P(GptOssCudaSampling, DeviceSamplingMatchesTheHostSamplerFor64Tokens) {
  gpt_oss::CausalLM lm(*gpu_, 256, 16, gpt_oss::Engine::Fused);
  ASSERT_TRUE(lm.fused());
  for (const auto& [name, config] : configs()) {
    const uint64_t seed = 99 + GetParam();
    lm.reset();
    Tensor logits = lm.forward(prompt_, 0, false);
    Generator host_gen(seed);
    const auto want = lm.generate::CausalModel::sample(logits, 16, 64, config, host_gen, prompt_, nullptr);
    lm.reset();
    logits = lm.forward(prompt_, 0, false);
    Generator dev_gen(seed);
    const auto got = lm.sample(logits, 64, config, dev_gen, prompt_);
    EXPECT_EQ(got, want) << name;
    EXPECT_EQ(dev_gen.offset(), host_gen.offset()) << name;
    EXPECT_EQ(lm.position(), 16 + 63) << name;
    // Token by token with a callback: the same tokens, and it stops when told.
    lm.reset();
    logits = lm.forward(prompt_, 0, false);
    Generator step_gen(seed);
    std::vector<int32_t> seen;
    const auto some = lm.sample(logits, 64, config, step_gen, prompt_, [&](int32_t t) {
      seen.push_back(t);
      return seen.size() < 10;
    });
    EXPECT_EQ(some, std::vector<int32_t>(want.begin(), want.begin() + 10)) << name;
    EXPECT_EQ(seen, some) << name;
    EXPECT_EQ(lm.position(), 16 + 9) << name;
    EXPECT_EQ(step_gen.offset(), config.greedy() ? 0u : 10u) << name;
  }
}

TEST_P(GptOssCudaSampling, RunSamplesOnTheDeviceLikeTheHostLoop) {
  gpt_oss::CausalLM lm(*gpu_, 48, 16, gpt_oss::Engine::Fused);
  HostSampled host(lm);
  for (const auto& [name, config] : configs()) {
    generate::RunnerOptions o;
    o.sampling = config, o.seed = 5 + GetParam(), o.max_tokens = 40;
    const auto want = generate::run(host, prompt_, o);
    const auto got = generate::run(lm, prompt_, o);
    EXPECT_EQ(got.tokens, want.tokens) << name;
    EXPECT_EQ(got.reason, want.reason) << name;
    // A stop token (the 5th token sampled) and a context that fills (48 - 16 + 1 tokens at most).
    ASSERT_GE(want.tokens.size(), 5u);
    o.stop_tokens = {want.tokens[4]};
    const auto stop_want = generate::run(host, prompt_, o), stop_got = generate::run(lm, prompt_, o);
    EXPECT_EQ(stop_got.tokens, stop_want.tokens) << name;
    EXPECT_EQ(stop_got.reason, generate::StopReason::StopToken) << name;
    o.stop_tokens.clear(), o.max_tokens = 100;
    const auto full_want = generate::run(host, prompt_, o), full_got = generate::run(lm, prompt_, o);
    EXPECT_EQ(full_got.tokens, full_want.tokens) << name;
    EXPECT_EQ(full_got.reason, generate::StopReason::ContextFull) << name;
    EXPECT_EQ(full_got.tokens.size(), size_t(48 - 16 + 1)) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(TinyPreset, GptOssCudaSampling, testing::Values(7u, 11u, 23u));

}  // namespace
}  // namespace ember
