// gpt-oss on tiny checkpoints against OpenAI's torch reference run in float32
// (tests/golden/gpt_oss_golden.py made tests/data/gpt_oss/*).
#include "ember/models/gpt_oss.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ember/core/thread_pool.h"
#include "ember/generate/sampler.h"
#include "ember/ops.h"
#include "test_util.h"

namespace ember::models::gpt_oss {
namespace {

std::string data_dir(const std::string& name) { return std::string(EMBER_TEST_DATA_DIR) + "/gpt_oss/" + name; }

struct Case {
  std::string name;
};

class GptOss : public testing::TestWithParam<std::tuple<Device, std::string>> {
 protected:
  void SetUp() override {
    auto [device, name] = GetParam();
    dir_ = data_dir(name);
    model_.emplace(Model::load(dir_, device));
    golden_.emplace(formats::safetensors::File::open(dir_ + "/golden.safetensors"));
    auto t = golden_->get("tokens").to_vector<int64_t>();
    tokens_.assign(t.begin(), t.end());
  }
  std::string dir_;
  std::optional<Model> model_;
  std::optional<formats::safetensors::File> golden_;
  std::vector<int32_t> tokens_;
};

TEST_P(GptOss, LogitsMatchTheTorchReference) {
  Tensor logits = model_->forward(tokens_);
  auto ours = logits.to_vector<float>();
  auto ref = golden_->get("logits").to_vector<float>();
  ASSERT_EQ(ours.size(), ref.size());
  float max_ref = 0, max_diff = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    max_ref = std::max(max_ref, std::fabs(ref[i]));
    max_diff = std::max(max_diff, std::fabs(ours[i] - ref[i]));
  }
  EXPECT_LE(max_diff, 5e-3f * max_ref) << "max |dlogit| " << max_diff << " vs max |logit| " << max_ref;
  const int64_t V = logits.dim(1);
  for (int64_t t = 0; t < logits.dim(0); ++t) {
    std::span<const float> a(ours.data() + t * V, size_t(V)), b(ref.data() + t * V, size_t(V));
    EXPECT_EQ(generate::argmax(a), generate::argmax(b)) << "position " << t;
  }
}

TEST_P(GptOss, CachedDecodingEqualsRecomputationAndGreedyMatches) {
  const Tensor full = model_->forward(tokens_);
  for (int64_t chunk : {1, 7, 16}) {
    auto caches = model_->make_caches(128, chunk);
    std::vector<Tensor> parts;
    for (size_t s = 0; s < tokens_.size(); s += size_t(chunk)) {
      const size_t n = std::min(size_t(chunk), tokens_.size() - s);
      parts.push_back(model_->forward({tokens_.begin() + long(s), tokens_.begin() + long(s + n)}, int64_t(s), &caches));
    }
    // Different chunk sizes take different GEMM paths: rounding differs at ~1e-5 of the logit scale.
    EXPECT_TRUE(test::all_close(cat(parts, 0), full.to_vector<float>(), 1e-4f, 1e-3f)) << "chunk " << chunk;
  }
  // Greedy continuation with the cache, token for token as the reference's recomputation.
  auto expected = golden_->get("greedy").to_vector<int64_t>();
  auto caches = model_->make_caches(128, 16);
  Tensor last;
  for (size_t s = 0; s < tokens_.size(); s += 16)
    last = model_->forward({tokens_.begin() + long(s), tokens_.begin() + long(std::min(s + 16, tokens_.size()))},
                           int64_t(s), &caches, true);
  std::vector<int64_t> got;
  int64_t pos = int64_t(tokens_.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    const int32_t next = generate::argmax(last.to_vector<float>());
    got.push_back(next);
    last = model_->forward({next}, pos++, &caches, true);
  }
  EXPECT_EQ(got, expected);
}

INSTANTIATE_TEST_SUITE_P(Tiny, GptOss,
                         testing::Combine(testing::ValuesIn(test::test_devices()), testing::Values("tiny_a", "tiny_b")),
                         [](const auto& info) {
                           return std::get<1>(info.param) + "_" +
                                  (std::get<0>(info.param).is_cpu() ? std::string("cpu") : "cuda");
                         });

TEST(GptOssConfig, ReadsBothLayoutsAndNamesBadFields) {
  const Config orig = Config::from_json_text(
      R"({"num_hidden_layers": 24, "num_experts": 32, "experts_per_token": 4, "vocab_size": 201088,
          "hidden_size": 2880, "intermediate_size": 2880, "swiglu_limit": 7.0, "head_dim": 64,
          "num_attention_heads": 64, "num_key_value_heads": 8, "sliding_window": 128,
          "initial_context_length": 4096, "rope_theta": 150000, "rope_scaling_factor": 32.0,
          "rope_ntk_alpha": 1.0, "rope_ntk_beta": 32.0})",
      "20b");
  EXPECT_EQ(orig.num_experts, 32);
  EXPECT_EQ(orig.context_length(), 131072);
  const Config hf = Config::from_json_text(
      R"({"model_type": "gpt_oss", "num_hidden_layers": 2, "num_local_experts": 32, "num_experts_per_tok": 4,
          "vocab_size": 201088, "hidden_size": 2880, "intermediate_size": 2880, "head_dim": 64,
          "num_attention_heads": 64, "num_key_value_heads": 8, "sliding_window": 128, "rope_theta": 150000,
          "rope_scaling": {"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
                           "original_max_position_embeddings": 4096},
          "layer_types": ["sliding_attention", "full_attention"]})",
      "hf");
  EXPECT_EQ(hf.num_experts, 32);
  EXPECT_EQ(hf.experts_per_token, 4);
  EXPECT_EQ(hf.rope_ntk_beta, 32.0);
  auto msg = [](const std::string& text) {
    try {
      Config::from_json_text(text, "cfg.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(msg(R"({"num_attention_heads": 6, "num_key_value_heads": 4})").find("num_key_value_heads"), std::string::npos);
  EXPECT_NE(msg(R"({"hidden_size": 100})").find("MXFP4"), std::string::npos);
  EXPECT_NE(msg(R"({"head_dim": "64"})").find("'head_dim'"), std::string::npos);
  EXPECT_NE(msg(R"({"experts_per_token": 9, "num_experts": 8})").find("experts_per_token"), std::string::npos);
  EXPECT_NE(msg("[1]").find("object"), std::string::npos);
  EXPECT_NE(msg("{").find("JSON"), std::string::npos);
}

TEST(GptOssLoad, MissingOrWrongTensorsAreNamed) {
  test::TempDir dir;
  const std::string src = data_dir("tiny_a");
  std::filesystem::copy_file(src + "/config.json", dir.file("config.json"));
  auto ckpt = formats::safetensors::File::open(src + "/model.safetensors");
  std::vector<std::pair<std::string, Tensor>> ts;
  for (const auto& t : ckpt.tensors())
    if (t.name != "block.2.attn.sinks") ts.emplace_back(t.name, ckpt.get(t.name));
  formats::safetensors::write(dir.file("model.safetensors"), ts);
  try {
    Model::load(dir.path());
    ADD_FAILURE() << "loaded a checkpoint without block.2.attn.sinks";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("block.2.attn.sinks"), std::string::npos) << e.what();
  }
  ts.emplace_back("block.2.attn.sinks", zeros({3}, DType::BF16));  // wrong shape
  formats::safetensors::write(dir.file("model.safetensors"), ts);
  try {
    Model::load(dir.path());
    ADD_FAILURE() << "loaded a wrong shape";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("block.2.attn.sinks"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Model::load(dir.file("nowhere")), Error);
}

}  // namespace
}  // namespace ember::models::gpt_oss

namespace ember::models::gpt_oss {
namespace {

TEST(GptOssFixture, WritesALoadableDeterministicCheckpoint) {
  test::TempDir a, b, c;
  Config cfg = preset("tiny");
  uint64_t last_done = 0, last_total = 0;
  write_fixture(cfg, a.path(), 7, [&](uint64_t done, uint64_t total) { last_done = done, last_total = total; });
  EXPECT_EQ(last_done, last_total);
  write_fixture(cfg, b.path(), 7);
  write_fixture(cfg, c.path(), 8);
  Model m = Model::load(a.path());
  EXPECT_EQ(m.config().num_experts, 8);
  Tensor logits = m.forward({1, 2, 3, 4});
  EXPECT_EQ(logits.shape(), (Shape{4, 512}));
  for (float v : logits.to_vector<float>()) ASSERT_TRUE(std::isfinite(v));
  auto fa = formats::safetensors::File::open(a.file("model.safetensors"));
  auto fb = formats::safetensors::File::open(b.file("model.safetensors"));
  auto fc = formats::safetensors::File::open(c.file("model.safetensors"));
  EXPECT_EQ(fa.get("block.3.mlp.mlp2_weight.scales").to_vector<uint8_t>(),
            fb.get("block.3.mlp.mlp2_weight.scales").to_vector<uint8_t>());
  EXPECT_NE(fa.get("embedding.weight").to_vector<float>(), fc.get("embedding.weight").to_vector<float>());
  for (uint8_t s : fa.get("block.0.mlp.mlp1_weight.scales").to_vector<uint8_t>()) ASSERT_TRUE(s >= 120 && s <= 124);
  EXPECT_THROW(preset("7b"), Error);
  cfg.hidden_size = 100;
  EXPECT_THROW(write_fixture(cfg, a.path(), 1), Error);
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(GptOssFixture, SameBytesForAnyThreadCount) {
  // Tensors larger than the writer's 8 MiB pieces (embedding 8.7 MB bf16, mlp1 blocks 8.9 MB u8),
  // so piece boundaries are crossed as well as thread chunk boundaries.
  Config cfg = preset("tiny");
  cfg.num_hidden_layers = 1;
  cfg.vocab_size = 17000;
  cfg.hidden_size = 256;
  cfg.intermediate_size = 544;
  cfg.num_experts = 64;
  test::TempDir one, three;
  const int before = num_threads();
  set_num_threads(1);
  write_fixture(cfg, one.path(), 11);
  set_num_threads(3);
  write_fixture(cfg, three.path(), 11);
  set_num_threads(before);
  const std::string a = file_bytes(one.file("model.safetensors")), b = file_bytes(three.file("model.safetensors"));
  EXPECT_GT(a.size(), 30'000'000u);
  EXPECT_TRUE(a == b) << "the 1-thread and 3-thread fixtures differ";
  EXPECT_EQ(file_bytes(one.file("config.json")), file_bytes(three.file("config.json")));
}

}  // namespace
}  // namespace ember::models::gpt_oss
