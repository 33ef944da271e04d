// The building blocks against goldens produced by the public reference code (gpt-oss torch
// RotaryEmbedding and sdpa, Wan's rope_apply, torch conv/conv_transpose, transformers' ALiBi);
// tests/golden/primitives_golden.py made tests/data/nn/primitives_golden.safetensors.
#include <gtest/gtest.h>

#include "ember/formats/safetensors.h"
#include "ember/nn/attention.h"
#include "ember/nn/linear_attention.h"
#include "ember/nn/masks.h"
#include "ember/nn/patch.h"
#include "ember/nn/rope.h"
#include "ember/ops.h"
#include "test_util.h"

namespace ember::nn {
namespace {

const formats::safetensors::File& golden() {
  static const auto f = formats::safetensors::File::open(std::string(EMBER_TEST_DATA_DIR) + "/nn/primitives_golden.safetensors");
  return f;
}
Tensor g(const std::string& name) { return golden().get(name); }

class Golden : public testing::TestWithParam<Device> {};

TEST_P(Golden, YarnFrequenciesTablesAndApplication) {
  Device d = GetParam();
  Rope rope({.head_dim = 64, .theta = 150000.0, .layout = RopeLayout::HalfSplit, .yarn = YarnScaling{}});
  EXPECT_TRUE(test::all_close(rope.frequencies().inv_freq, g("yarn.inv_freq").to_vector<float>(), 1e-6f, 0));
  EXPECT_NEAR(rope.frequencies().concentration, g("yarn.concentration").item<float>(), 1e-7);
  auto [c, s] = rope.tables(g("yarn.rows").to_vector<int64_t>(), d);
  // Rows 0..15 hold positions 0..15: within 1e-5. Rows 16.. hold positions 1000..4199: there torch's
  // f32 pow (SLEEF, 1 ulp) and glibc's powf give inv_freq 1-2 ulp apart, which the position
  // multiplies into ~3e-5 of angle; those rows get an absolute 1e-4.
  auto cv = c.to_vector<float>(), sv = s.to_vector<float>();
  auto gc = g("yarn.cos").to_vector<float>(), gs = g("yarn.sin").to_vector<float>();
  const size_t near = 16 * 32;
  EXPECT_TRUE(test::all_close({cv.begin(), cv.begin() + near}, {gc.begin(), gc.begin() + near}, 1e-5f, 1e-6f));
  EXPECT_TRUE(test::all_close({sv.begin(), sv.begin() + near}, {gs.begin(), gs.begin() + near}, 1e-5f, 1e-6f));
  EXPECT_TRUE(test::all_close(cv, gc, 0, 1e-4f));
  EXPECT_TRUE(test::all_close(sv, gs, 0, 1e-4f));
  // q [T, kv, mult, 64] and k [T, kv, 64] at positions 0..T-1, tokens on dim 0.
  EXPECT_TRUE(test::all_close(rope.apply(g("yarn.q").to(d), 0, 0), g("yarn.q_out").to_vector<float>(), 1e-5f, 1e-6f));
  EXPECT_TRUE(test::all_close(rope.apply(g("yarn.k").to(d), 0, 0), g("yarn.k_out").to_vector<float>(), 1e-5f, 1e-6f));
}

TEST_P(Golden, PlainRope) {
  Rope rope({.head_dim = 32, .theta = 10000.0});
  EXPECT_TRUE(test::all_close(rope.frequencies().inv_freq, g("plain.inv_freq").to_vector<float>(), 1e-6f, 0));
  EXPECT_TRUE(test::all_close(rope.apply(g("plain.x").to(GetParam()), 0, 0), g("plain.x_out").to_vector<float>(),
                              1e-5f, 1e-6f));
}

TEST_P(Golden, Rope3dMatchesWan) {
  Rope3d rope({.head_dim = 48});
  Tensor out = rope.apply(g("rope3d.x").to(GetParam()), 3, 4, 5, 0, 0);
  EXPECT_TRUE(test::all_close(out, g("rope3d.out").to_vector<float>(), 1e-5f, 1e-6f));
}

TEST_P(Golden, SdpaWithSinksWindowAndGqaMatchesGptOss) {
  Device d = GetParam();
  // gpt-oss layout: q [T, kv, mult, D], k/v [T, kv, D] -> ours [1, kv*mult, T, D] and [1, kv, T, D].
  const int64_t T = 24, KV = 2, M = 3, D = 16;
  Tensor q = g("sdpa.q").to(d).view({T, KV * M, D}).permute({1, 0, 2}).unsqueeze(0);
  Tensor k = g("sdpa.k").to(d).permute({1, 0, 2}).unsqueeze(0);
  Tensor v = g("sdpa.v").to(d).permute({1, 0, 2}).unsqueeze(0);
  Tensor sinks = g("sdpa.sinks").to(d);
  for (int64_t window : {0, 5}) {
    Tensor o = scaled_dot_product_attention(q, k, v, {.scale = 0.25f, .causal = true, .window = window, .sinks = sinks});
    Tensor flat = o.squeeze(0).permute({1, 0, 2}).reshape({T, KV * M * D});
    EXPECT_TRUE(test::all_close(flat, g(window ? "sdpa.out_window5" : "sdpa.out_full").to_vector<float>(), 1e-5f, 1e-6f))
        << window;
  }
  // Window 5 plus an additive bias per head and position pair.
  Tensor o = scaled_dot_product_attention(
      q, k, v, {.scale = 0.25f, .causal = true, .window = 5, .sinks = sinks, .bias = g("sdpa.bias").to(d)});
  EXPECT_TRUE(test::all_close(o.squeeze(0).permute({1, 0, 2}).reshape({T, KV * M * D}),
                              g("sdpa.out_window5_bias").to_vector<float>(), 1e-5f, 1e-6f));
}

TEST_P(Golden, AlibiSlopesMatchTransformers) {
  for (int heads : {5, 8, 12, 16, 24, 64})
    EXPECT_TRUE(test::all_close(alibi_slopes(heads), g("alibi.slopes" + std::to_string(heads)).to_vector<float>(), 1e-6f, 0))
        << heads;
}

TEST_P(Golden, PatchingMatchesTorchConvolutions) {
  Device d = GetParam();
  PatchEmbed p2(g("patch2d.w").to(d), g("patch2d.b").to(d));
  EXPECT_TRUE(test::all_close(p2.forward(g("patch2d.x").to(d)), g("patch2d.out").to_vector<float>(), 1e-5f, 1e-5f));
  Unpatchify u2(g("unpatch2d.w").to(d), g("unpatch2d.b").to(d));
  EXPECT_TRUE(test::all_close(u2.forward(g("unpatch2d.tokens").to(d), {2, 3}), g("unpatch2d.out").to_vector<float>(), 1e-5f, 1e-5f));
  PatchEmbed p3(g("patch3d.w").to(d), g("patch3d.b").to(d));
  EXPECT_TRUE(test::all_close(p3.forward(g("patch3d.x").to(d)), g("patch3d.out").to_vector<float>(), 1e-5f, 1e-5f));
  Unpatchify u3(g("unpatch3d.w").to(d), g("unpatch3d.b").to(d));
  EXPECT_TRUE(test::all_close(u3.forward(g("unpatch3d.tokens").to(d), {2, 2, 2}), g("unpatch3d.out").to_vector<float>(), 1e-5f, 1e-5f));
}

TEST_P(Golden, LinearAttentionMatchesExplicitTorch) {
  Device d = GetParam();
  Tensor q = g("linattn.q").to(d), k = g("linattn.k").to(d), v = g("linattn.v").to(d);
  Tensor pad = g("linattn.pad").to(DType::Bool).to(d);
  for (auto [name, fm] : {std::pair{"elu", FeatureMap::EluPlusOne}, std::pair{"relu", FeatureMap::Relu}})
    for (bool causal : {false, true}) {
      Tensor out = linear_attention(q, k, v, {.causal = causal, .feature_map = fm, .padding_mask = pad});
      EXPECT_TRUE(test::all_close(out, g(std::string("linattn.") + name + (causal ? ".causal" : ".full")).to_vector<float>(),
                                  1e-5f, 1e-6f))
          << name << causal;
    }
}

EMBER_INSTANTIATE_DEVICES(Golden);

}  // namespace
}  // namespace ember::nn
