#include "ember/generate/runner.h"

#include <gtest/gtest.h>

#include "ember/generate/cache.h"
#include "ember/nn/streaming_attention.h"
#include "ember/ops.h"
#include "test_util.h"

namespace ember::generate {
namespace {

// next token = (last token * 3 + 1) % vocab, as a one-hot logit row; records every call.
class CountingModel : public CausalModel {
 public:
  int64_t vocab_size() const override { return 11; }
  int64_t max_context() const override { return ctx; }
  Tensor forward(std::span<const int32_t> tokens, int64_t start_pos, bool all) override {
    EXPECT_EQ(start_pos, pos);
    pos += int64_t(tokens.size());
    calls.push_back(int64_t(tokens.size()));
    std::vector<float> row(11, 0.f);
    row[size_t((tokens.back() * 3 + 1) % 11)] = 5.f;
    EXPECT_FALSE(all);
    return Tensor::from_vector(row, {1, 11});
  }
  void reset() override { pos = 0, calls.clear(); }
  int64_t ctx = 100, pos = 0;
  std::vector<int64_t> calls;
};

TEST(Runner, PrefillsInChunksThenDecodes) {
  CountingModel m;
  std::vector<int32_t> prompt(10, 2);
  auto r = run(m, prompt, {.max_tokens = 4, .prefill_chunk = 4, .sampling = {.temperature = 0.f}});
  EXPECT_EQ(m.calls, (std::vector<int64_t>{4, 4, 2, 1, 1, 1}));
  EXPECT_EQ(r.tokens, (std::vector<int32_t>{7, 0, 1, 4}));
  EXPECT_EQ(r.reason, StopReason::MaxTokens);
  EXPECT_EQ(r.prompt_tokens, 10);
}

TEST(Runner, StopTokensCallbackAndContext) {
  CountingModel m;
  std::vector<int32_t> prompt{2};
  auto r = run(m, prompt, {.max_tokens = 50, .stop_tokens = {1}, .sampling = {.temperature = 0.f}});
  EXPECT_EQ(r.tokens, (std::vector<int32_t>{7, 0, 1}));
  EXPECT_EQ(r.reason, StopReason::StopToken);
  std::vector<int32_t> seen;
  r = run(m, prompt, {.max_tokens = 50, .sampling = {.temperature = 0.f}, .on_token = [&](int32_t t) {
                        seen.push_back(t);
                        return seen.size() < 2;
                      }});
  EXPECT_EQ(r.reason, StopReason::Callback);
  EXPECT_EQ(seen, r.tokens);
  m.ctx = 5;
  r = run(m, std::vector<int32_t>{2, 2, 2}, {.max_tokens = 50, .sampling = {.temperature = 0.f}});
  EXPECT_EQ(r.reason, StopReason::ContextFull);
  EXPECT_EQ(r.tokens.size(), 3u);  // positions 3 and 4 fed back, the third token has no room
  EXPECT_THROW(run(m, std::vector<int32_t>(6, 1), {}), Error);
  EXPECT_THROW(run(m, std::vector<int32_t>{}, {}), Error);
  EXPECT_THROW(run(m, std::vector<int32_t>{11}, {}), Error);
}

// As CountingModel, with its own greedy loop (like the fused CUDA runtime's): counts its uses.
class GreedyModel : public CountingModel {
 public:
  std::vector<int32_t> decode_greedy(int32_t token, int64_t start_pos, int64_t count,
                                     const std::function<bool(int32_t)>& on_token) override {
    ++greedy_calls;
    EXPECT_EQ(start_pos, pos);
    std::vector<int32_t> out;
    for (int64_t i = 0; i < count; ++i) {
      ++pos;
      token = (token * 3 + 1) % 11;
      out.push_back(token);
      if (on_token && !on_token(token)) break;
    }
    return out;
  }
  int greedy_calls = 0;
};

TEST(Runner, PlainGreedyDecodesThroughTheModelsGreedyLoop) {
  GreedyModel m;
  std::vector<int32_t> prompt(3, 2);
  auto r = run(m, prompt, {.max_tokens = 4, .prefill_chunk = 4, .sampling = {.temperature = 0.f}});
  EXPECT_EQ(m.greedy_calls, 1);
  EXPECT_EQ(m.calls, (std::vector<int64_t>{3}));  // the prefill only
  EXPECT_EQ(r.tokens, (std::vector<int32_t>{7, 0, 1, 4}));
  EXPECT_EQ(r.reason, StopReason::MaxTokens);
  r = run(m, prompt, {.max_tokens = 50, .stop_tokens = {1}, .sampling = {.temperature = 0.f}});
  EXPECT_EQ(r.tokens, (std::vector<int32_t>{7, 0, 1}));
  EXPECT_EQ(r.reason, StopReason::StopToken);
  m.ctx = 5;
  r = run(m, prompt, {.max_tokens = 50, .sampling = {.temperature = 0.f}});
  EXPECT_EQ(r.reason, StopReason::ContextFull);
  EXPECT_EQ(r.tokens.size(), 3u);
  // Penalties change the argmax and sampling needs the logits: both stay on the generic loop.
  m.ctx = 100, m.greedy_calls = 0;
  (void)run(m, prompt, {.max_tokens = 4, .sampling = {.temperature = 0.f, .repetition_penalty = 1.3f}});
  (void)run(m, prompt, {.max_tokens = 4, .sampling = {.temperature = 0.7f}, .seed = 1});
  EXPECT_EQ(m.greedy_calls, 0);
}

// A one-layer attention model over the streaming primitives: chunked prefill with the
// windowed cache must give the logits of a full recomputation.
class TinyAttentionModel : public CausalModel {
 public:
  TinyAttentionModel(Device d, int64_t capacity) : dev(d) {
    Generator g(21);
    emb = randn({V, E}, g, DType::F32, d);
    unemb = randn({V, E}, g, DType::F32, d);
    nn::AttentionWeights w{randn({E, E}, g, DType::F32, d), randn({E / 2, E}, g, DType::F32, d),
                           randn({E / 2, E}, g, DType::F32, d), randn({E, E}, g, DType::F32, d)};
    w.sinks = randn({4}, g, DType::F32, d);
    cfg = {.d_model = E, .heads = 4, .kv_heads = 2, .window = nn::AttnWindow::of(6),
           .sink_tokens = 1, .cache_capacity = capacity,
           .rope = nn::RopeConfig{.head_dim = E / 4, .theta = 10000.0}};
    attn.emplace(cfg, w);
    reset();
  }
  int64_t vocab_size() const override { return V; }
  int64_t max_context() const override { return 64; }
  Tensor forward(std::span<const int32_t> tokens, int64_t start_pos, bool all) override {
    std::vector<int32_t> ids(tokens.begin(), tokens.end());
    Tensor x = embedding(emb, Tensor::from_vector(ids, {1, int64_t(ids.size())}).to(dev));
    Tensor h = add(x, attn->forward(x, *cache, start_pos));
    Tensor logits = linear(h, unemb).select(0, 0);
    return all ? logits : logits.narrow(0, logits.dim(0) - 1, 1).contiguous();
  }
  void reset() override { cache.emplace(attn->make_cache(1)); }
  static constexpr int64_t V = 13, E = 16;
  Device dev;
  Tensor emb, unemb;
  nn::StreamingAttentionConfig cfg;
  std::optional<nn::StreamingAttention> attn;
  std::optional<nn::KVCache> cache;
};

class RunnerDevice : public testing::TestWithParam<Device> {};

TEST_P(RunnerDevice, ChunkedGenerationEqualsFullRecomputation) {
  // Window 6, 1 sink, prefill chunks of 8: the smallest cache is 1 + 5 + 8 slots.
  TinyAttentionModel m(GetParam(), 1 + 5 + 8);
  std::vector<int32_t> prompt{1, 5, 2, 9, 3, 3, 7, 0, 12, 4, 6};
  auto r = run(m, prompt, {.max_tokens = 12, .prefill_chunk = 8, .sampling = {.temperature = 0.f}});
  ASSERT_EQ(r.tokens.size(), 12u);
  // Teacher-forced full recomputation: one chunk, a cache large enough to never evict.
  TinyAttentionModel full(GetParam(), 64);
  std::vector<int32_t> seq = prompt;
  seq.insert(seq.end(), r.tokens.begin(), r.tokens.end() - 1);
  Tensor logits = full.forward(seq, 0, true);
  for (size_t i = 0; i < r.tokens.size(); ++i) {
    auto row = logits.select(0, int64_t(prompt.size() - 1 + i)).to_vector<float>();
    EXPECT_EQ(argmax(row), r.tokens[i]) << "token " << i;
  }
  // And the last-position logits of the streamed model equal the full computation's.
  TinyAttentionModel again(GetParam(), 1 + 5 + 8);
  std::vector<Tensor> parts;
  for (size_t s = 0; s < seq.size(); s += 8) {
    size_t n = std::min<size_t>(8, seq.size() - s);
    parts.push_back(again.forward(std::span<const int32_t>(seq.data() + s, n), int64_t(s), true));
  }
  EXPECT_TRUE(test::all_close(cat(parts, 0), logits.to_vector<float>(), 1e-4f, 1e-4f));
}

EMBER_INSTANTIATE_DEVICES(RunnerDevice);

TEST(CacheManager, WindowPolicySizesLayers) {
  CacheManager cm({.layers = 4, .kv_heads = 2, .head_dim = 8, .max_context = 1000, .max_chunk = 32,
                   .sink_tokens = 0, .policy = WindowPolicy::every_other(128)});
  EXPECT_FALSE(cm.window(0).is_full());
  EXPECT_TRUE(cm.window(1).is_full());
  EXPECT_EQ(cm.capacity(0), 128 - 1 + 32);
  EXPECT_EQ(cm.capacity(1), 1000);
  EXPECT_EQ(cm.bytes(), size_t(2 * 2 * 8 * 4 * (159 * 2 + 1000 * 2)));
  EXPECT_THROW(cm.layer(4), Error);
  EXPECT_THROW(WindowPolicy::fixed(0), Error);
}

}  // namespace
}  // namespace ember::generate
