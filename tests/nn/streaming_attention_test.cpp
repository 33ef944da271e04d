#include "ember/nn/streaming_attention.h"

#include <gtest/gtest.h>

#include "ember/nn/masks.h"
#include "ember/ops.h"
#include "test_util.h"

namespace ember::nn {
namespace {

class Streaming : public testing::TestWithParam<Device> {
 protected:
  static constexpr int64_t B = 1, Hq = 4, Hkv = 2, D = 8, L = 150;
  void SetUp() override {
    Generator g(77);
    q_ = randn({B, Hq, L, D}, g, DType::F32, GetParam());
    k_ = randn({B, Hkv, L, D}, g, DType::F32, GetParam());
    v_ = randn({B, Hkv, L, D}, g, DType::F32, GetParam());
    sinks_ = randn({Hq}, g, DType::F32, GetParam());
  }
  // Streams the sequence in chunks through a cache and returns the concatenated outputs.
  Tensor stream(int64_t chunk, int64_t capacity, int64_t sink_tokens, AttnWindow window,
                bool causal_within_chunk = true) {
    KVCache cache(B, Hkv, capacity, D, D, sink_tokens, DType::F32, GetParam());
    std::vector<Tensor> outs;
    StreamingOptions o{.window = window, .causal_within_chunk = causal_within_chunk, .sinks = sinks_};
    for (int64_t t = 0; t < L; t += chunk) {
      int64_t n = std::min(chunk, L - t);
      outs.push_back(streaming_attention(q_.narrow(2, t, n), k_.narrow(2, t, n), v_.narrow(2, t, n),
                                         cache, t, o));
      // Evicted positions never come back: the cache holds sinks and the most recent positions.
      for (int64_t p : cache.positions()) {
        if (p < 0) continue;
        EXPECT_TRUE(p < sink_tokens || p >= t + n - (capacity - sink_tokens)) << p << " at " << t;
        EXPECT_LT(p, t + n);
      }
    }
    return cat(outs, 2);
  }
  Tensor full(int64_t window, int64_t sink_positions) {
    return scaled_dot_product_attention(
        q_, k_, v_, {.causal = true, .window = window, .sink_positions = sink_positions, .sinks = sinks_});
  }
  Tensor q_, k_, v_, sinks_;
};

TEST_P(Streaming, ChunkedEqualsFullForWindowWithSinksAcrossWrapAround) {
  const int64_t w = 16, s = 3;
  Tensor ref = full(w, s);
  for (int64_t chunk : {1, 7, 64}) {
    int64_t capacity = s + std::max(w - 1, chunk);  // smallest cache that keeps the invariant
    Tensor out = stream(chunk, capacity, s, AttnWindow::of(w));
    EXPECT_TRUE(test::all_close(out, ref.to_vector<float>(), 1e-5f, 1e-6f)) << "chunk " << chunk;
  }
}

TEST_P(Streaming, FullWindowWithoutEvictionEqualsCausal) {
  Tensor ref = full(0, 0);
  for (int64_t chunk : {1, 7, 64}) {
    Tensor out = stream(chunk, L, 0, AttnWindow::full());
    EXPECT_TRUE(test::all_close(out, ref.to_vector<float>(), 1e-5f, 1e-6f)) << "chunk " << chunk;
  }
}

TEST_P(Streaming, FullWindowWithEvictionKeepsSinksAndRecent) {
  // Token by token with capacity C and s sinks: each query sees the sinks and the C - s + 1 most
  // recent positions (itself included), StreamingLLM style.
  const int64_t C = 20, s = 4;
  Tensor out = stream(1, C, s, AttnWindow::full());
  EXPECT_TRUE(test::all_close(out, full(C - s + 1, s).to_vector<float>(), 1e-5f, 1e-6f));
}

TEST_P(Streaming, BidirectionalWithinChunkIsBlockCausal) {
  const int64_t c = 5, w = 12, s = 2;  // chunks of 5 frames' tokens, window 12, 2 sinks
  Tensor out = stream(c, s + w + c, s, AttnWindow::of(w), false);
  // Block-causal mask: a query in the block ending at e sees keys j <= e with j > e - w or j < s.
  std::vector<bool> m(size_t(L * L));
  for (int64_t i = 0; i < L; ++i) {
    int64_t e = std::min(L - 1, (i / c + 1) * c - 1);
    for (int64_t j = 0; j < L; ++j) m[size_t(i * L + j)] = !(j <= e && (j > e - w || j < s));
  }
  Tensor mask = Tensor::from_vector(m, {L, L}).to(GetParam());
  Tensor ref = scaled_dot_product_attention(q_, k_, v_, {.sinks = sinks_, .mask = mask});
  EXPECT_TRUE(test::all_close(out, ref.to_vector<float>(), 1e-5f, 1e-6f));
}

TEST_P(Streaming, ModuleMatchesExplicitComputationAndChecksArguments) {
  Device d = GetParam();
  Generator g(5);
  const int64_t dm = 12, heads = 4, kvh = 2, hd = 6, T = 10;
  AttentionWeights w{.wq = randn({heads * hd, dm}, g, DType::F32, d),
                     .wk = randn({kvh * hd, dm}, g, DType::F32, d),
                     .wv = randn({kvh * hd, dm}, g, DType::F32, d),
                     .wo = randn({dm, heads * hd}, g, DType::F32, d),
                     .bq = randn({heads * hd}, g, DType::F32, d),
                     .bk = {}, .bv = {}, .bo = randn({dm}, g, DType::F32, d),
                     .sinks = randn({heads}, g, DType::F32, d)};
  StreamingAttentionConfig cfg{.d_model = dm, .heads = heads, .kv_heads = kvh, .head_dim = hd,
                               .window = AttnWindow::of(4), .sink_tokens = 1, .cache_capacity = 8,
                               .rope = RopeConfig{.head_dim = hd, .theta = 10000.0}};
  StreamingAttention attn(cfg, w);
  Tensor x = randn({2, T, dm}, g, DType::F32, d);
  KVCache cache = attn.make_cache(2);
  Tensor a = cat({attn.forward(x.narrow(1, 0, 3), cache, 0), attn.forward(x.narrow(1, 3, 7), cache, 3)}, 1);
  // Explicit: project, rope, full attention with the window and sink, project out.
  Rope rope(*cfg.rope);
  auto heads_of = [&](const Tensor& y, int64_t h) { return y.view({2, T, h, hd}).permute({0, 2, 1, 3}); };
  Tensor q = rope.apply(heads_of(linear(x, w.wq, w.bq), heads), 0, 2);
  Tensor k = rope.apply(heads_of(linear(x, w.wk), kvh), 0, 2);
  Tensor v = heads_of(linear(x, w.wv), kvh);
  Tensor o = scaled_dot_product_attention(q, k, v, {.causal = true, .window = 4, .sink_positions = 1, .sinks = w.sinks});
  Tensor ref = linear(o.permute({0, 2, 1, 3}).reshape({2, T, heads * hd}), w.wo, w.bo);
  EXPECT_TRUE(test::all_close(a, ref.to_vector<float>(), 1e-4f, 1e-5f));

  EXPECT_THROW(attn.forward(x, cache, 0), Error);          // start_pos behind the cache
  KVCache small = attn.make_cache(2);
  EXPECT_THROW(attn.forward(x, small, 0), Error);          // chunk larger than capacity - sinks
  EXPECT_THROW(AttnWindow::of(0), Error);
  auto bad = w;
  bad.wk = randn({5, dm}, g, DType::F32, d);
  EXPECT_THROW(StreamingAttention(cfg, bad), Error);
}

TEST_P(Streaming, CrossAttentionUsesTheCachedContext) {
  Device d = GetParam();
  Generator g(8);
  const int64_t dm = 8, dc = 5, heads = 2, S = 6, T = 3;
  AttentionWeights w{.wq = randn({dm, dm}, g, DType::F32, d), .wk = randn({dm, dc}, g, DType::F32, d),
                     .wv = randn({dm, dc}, g, DType::F32, d), .wo = randn({dm, dm}, g, DType::F32, d)};
  CrossAttention xa(dm, heads, 0, w);
  EXPECT_THROW(xa.forward(randn({1, T, dm}, g, DType::F32, d)), Error);
  Tensor ctx = randn({1, S, dc}, g, DType::F32, d);
  std::vector<bool> pad{false, false, false, false, true, true};
  xa.set_context(ctx, Tensor::from_vector(pad, {1, S}).to(d));
  Tensor x = randn({1, T, dm}, g, DType::F32, d);
  // Padding keys are ignored: the same as attending to the first 4 context tokens only.
  CrossAttention xb(dm, heads, 0, w);
  xb.set_context(ctx.narrow(1, 0, 4));
  EXPECT_TRUE(test::all_close(xa.forward(x), xb.forward(x).to_vector<float>(), 1e-5f, 1e-6f));
}

EMBER_INSTANTIATE_DEVICES(Streaming);

}  // namespace
}  // namespace ember::nn
