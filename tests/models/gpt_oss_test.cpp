// gpt-oss on tiny checkpoints against OpenAI's torch reference run in float32
// (tests/golden/gpt_oss_golden.py made tests/data/gpt_oss/tiny_a|tiny_b), and against transformers'
// GptOssForCausalLM in float32 on their Hugging Face layout copies (tests/golden/gpt_oss_hf_golden.py
// made tests/data/gpt_oss/*_hf and the goldens of *_hf_bf16).
#include "ember/models/gpt_oss.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <variant>
#include <sstream>

#include "ember/core/thread_pool.h"
#include "ember/generate/sampler.h"
#include "ember/ops.h"
#include "test_util.h"

namespace ember::models::gpt_oss {
namespace {

std::string data_dir(const std::string& name) { return std::string(EMBER_TEST_DATA_DIR) + "/gpt_oss/" + name; }

// FNV-1a (64 bit) over every tensor's name and bytes in name order, as gpt_oss_hf_golden.py's
// weights_fnv1a64 (hex).
std::string weights_fnv1a64(const formats::safetensors::File& file) {
  std::vector<const formats::safetensors::TensorInfo*> infos;
  for (const auto& t : file.tensors()) infos.push_back(&t);
  std::sort(infos.begin(), infos.end(), [](auto* a, auto* b) { return a->name < b->name; });
  uint64_t h = 14695981039346656037ull;
  auto mix = [&h](const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  };
  for (const auto* t : infos) {
    mix(reinterpret_cast<const uint8_t*>(t->name.data()), t->name.size());
    mix(file.raw(*t), t->nbytes());
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

// tests/data/gpt_oss/<x>_hf_bf16 holds config.json and golden.safetensors only: its weights (3x
// the MXFP4 copy's size) are made here from <x>_hf the way gpt_oss_hf_golden.py made the ones
// transformers ran: experts dequantized to bf16 (exact) and transposed to [E, in, out], the other
// tensors copied. The golden's weights_fnv1a64 proves they are the same bytes.
std::string make_hf_bf16(const std::string& name, const test::TempDir& dir) {
  const std::string src = data_dir(name.substr(0, name.size() - std::string("_bf16").size()));
  auto ckpt = formats::safetensors::Checkpoint::open(src);
  std::vector<std::pair<std::string, Tensor>> ts;
  for (const auto& n : ckpt.names()) {
    if (n.ends_with("_scales")) continue;
    if (n.ends_with("_blocks")) {
      const std::string base = n.substr(0, n.size() - std::string("_blocks").size());
      const auto w = Mxfp4Tensor::from_parts(ckpt.get(n), ckpt.get(base + "_scales"), base);  // [E, out, in]
      ts.emplace_back(base, mxfp4_dequantize(w, DType::BF16).transpose(1, 2).contiguous());
    } else {
      ts.emplace_back(n, ckpt.get(n));
    }
  }
  formats::safetensors::write(dir.file("model.safetensors"), ts, {{"format", "pt"}});
  for (const char* f : {"config.json", "golden.safetensors"})
    std::filesystem::copy_file(data_dir(name) + "/" + f, dir.file(f));
  return dir.path();
}

class GptOss : public testing::TestWithParam<std::tuple<Device, std::string>> {
 protected:
  void SetUp() override {
    auto [device, name] = GetParam();
    dir_ = name.ends_with("_hf_bf16") ? make_hf_bf16(name, tmp_) : data_dir(name);
    golden_.emplace(formats::safetensors::File::open(dir_ + "/golden.safetensors"));
    if (name.ends_with("_hf_bf16")) {
      const auto& meta = golden_->header().metadata;
      const std::string made = weights_fnv1a64(formats::safetensors::File::open(dir_ + "/model.safetensors"));
      ASSERT_TRUE(meta.count("weights_fnv1a64")) << name << ": golden without weights_fnv1a64 (made: " << made << ")";
      ASSERT_EQ(made, meta.at("weights_fnv1a64")) << name << ": the bf16 weights made here differ from those transformers ran";
    }
    model_.emplace(Model::load(dir_, device));
    auto t = golden_->get("tokens").to_vector<int64_t>();
    tokens_.assign(t.begin(), t.end());
  }
  test::TempDir tmp_;
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
  RecordProperty("max_abs_dlogit", testing::PrintToString(max_diff));
  RecordProperty("max_abs_logit", testing::PrintToString(max_ref));
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
                         testing::Combine(testing::ValuesIn(test::test_devices()), testing::Values("tiny_a", "tiny_b", "tiny_a_hf", "tiny_b_hf",
                                                                                "tiny_a_hf_bf16", "tiny_b_hf_bf16")),
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
                           "original_max_position_embeddings": 4096, "truncate": false},
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

// The same weights in three layouts: the original (MXFP4), HF with MXFP4 experts (the same bytes,
// the same kernels: bit-identical logits) and HF with dequantized bf16 experts (dense products:
// rounding differs at the last bits).
TEST(GptOssHf, LoadsTheSameModelAsTheOriginalLayout) {
  for (const std::string name : {"tiny_a", "tiny_b"}) {
    test::TempDir tmp;
    const Model orig = Model::load(data_dir(name));
    const Model hf = Model::load(data_dir(name + "_hf"));
    const Model bf16 = Model::load(make_hf_bf16(name + "_hf_bf16", tmp));
    // Experts stay as stored: MXFP4 packed, or the mapped bf16 [E, in, out] (no dequantization or
    // conversion at load).
    for (const Block& b : hf.blocks()) {
      ASSERT_TRUE(std::holds_alternative<Mxfp4Tensor>(b.mlp1_weight.w));
      ASSERT_TRUE(std::holds_alternative<Mxfp4Tensor>(b.mlp2_weight.w));
      EXPECT_EQ(std::get<Mxfp4Tensor>(b.mlp1_weight.w).blocks.dtype(), DType::U8);
    }
    const Config& c = bf16.config();
    for (const Block& b : bf16.blocks()) {
      ASSERT_TRUE(std::holds_alternative<Tensor>(b.mlp1_weight.w));
      ASSERT_TRUE(std::holds_alternative<Tensor>(b.mlp2_weight.w));
      const Tensor& up = std::get<Tensor>(b.mlp1_weight.w);
      const Tensor& down = std::get<Tensor>(b.mlp2_weight.w);
      EXPECT_EQ(up.dtype(), DType::BF16);
      EXPECT_EQ(down.dtype(), DType::BF16);
      EXPECT_EQ(up.shape(), (Shape{c.num_experts, c.hidden_size, 2 * c.intermediate_size}));
      EXPECT_EQ(down.shape(), (Shape{c.num_experts, c.intermediate_size, c.hidden_size}));
    }
    auto ckpt = formats::safetensors::Checkpoint::open(data_dir(name + "_hf"));
    EXPECT_EQ(Model::detect_layout(ckpt), CheckpointLayout::HuggingFace);
    EXPECT_EQ(Model::detect_layout(formats::safetensors::Checkpoint::open(data_dir(name))), CheckpointLayout::Original);
    auto g = formats::safetensors::File::open(data_dir(name) + "/golden.safetensors").get("tokens").to_vector<int64_t>();
    const std::vector<int32_t> tokens(g.begin(), g.end());
    const auto a = orig.forward(tokens).to_vector<float>();
    EXPECT_EQ(hf.forward(tokens).to_vector<float>(), a) << name;
    const Tensor lb = bf16.forward(tokens);
    const auto b = lb.to_vector<float>();
    float max_ref = 0, max_diff = 0;
    for (size_t i = 0; i < a.size(); ++i)
      max_ref = std::max(max_ref, std::fabs(a[i])), max_diff = std::max(max_diff, std::fabs(a[i] - b[i]));
    EXPECT_LE(max_diff, 1e-4f * max_ref) << name << ": bf16 experts vs MXFP4, max |dlogit| " << max_diff;
    const int64_t V = lb.dim(1);
    for (int64_t t = 0; t < lb.dim(0); ++t)
      EXPECT_EQ(generate::argmax(std::span<const float>(a.data() + t * V, size_t(V))),
                generate::argmax(std::span<const float>(b.data() + t * V, size_t(V))))
          << name << " position " << t;
    RecordProperty(name + "_bf16_vs_mxfp4_max_abs_dlogit", testing::PrintToString(max_diff));
  }
}

// Loads a copy of tiny_a_hf (one file) with `edit` applied to its tensors; returns the error text.
std::string hf_load_error(const std::function<void(std::map<std::string, Tensor>&)>& edit,
                          const std::string& config_text = "") {
  test::TempDir dir;
  const std::string src = data_dir("tiny_a_hf");
  if (config_text.empty())
    std::filesystem::copy_file(src + "/config.json", dir.file("config.json"));
  else
    std::ofstream(dir.file("config.json")) << config_text;
  auto ckpt = formats::safetensors::Checkpoint::open(src);
  std::map<std::string, Tensor> ts;
  for (const auto& n : ckpt.names()) ts.emplace(n, ckpt.get(n));
  edit(ts);
  formats::safetensors::write(dir.file("model.safetensors"), {ts.begin(), ts.end()});
  try {
    Model::load(dir.path());
  } catch (const Error& e) {
    return e.what();
  }
  return "loaded";
}

TEST(GptOssHf, LoadErrorsNameTheTensor) {
  const std::string L = "model.layers.";
  auto expect_names = [](const std::string& msg, const std::string& tensor, const std::string& also = "") {
    EXPECT_NE(msg.find("'" + tensor + "'"), std::string::npos) << msg;
    if (!also.empty()) {
      EXPECT_NE(msg.find(also), std::string::npos) << msg;
    }
  };
  // missing
  for (const std::string& n : std::vector<std::string>{L + "2.self_attn.sinks", L + "1.self_attn.k_proj.bias", L + "3.mlp.router.weight",
                              L + "0.mlp.experts.down_proj_bias", "lm_head.weight", "model.norm.weight"})
    expect_names(hf_load_error([&](auto& ts) { ts.erase(n); }), n, "missing");
  expect_names(hf_load_error([&](auto& ts) { ts.erase(L + "1.mlp.experts.gate_up_proj_scales"); }),
               L + "1.mlp.experts.gate_up_proj_scales", "missing");
  {  // no experts at all: both accepted names
    const std::string msg = hf_load_error([&](auto& ts) {
      ts.erase(L + "2.mlp.experts.down_proj_blocks"), ts.erase(L + "2.mlp.experts.down_proj_scales");
    });
    expect_names(msg, L + "2.mlp.experts.down_proj_blocks");
    expect_names(msg, L + "2.mlp.experts.down_proj");
  }
  // wrong shape
  expect_names(hf_load_error([&](auto& ts) { ts[L + "1.self_attn.q_proj.weight"] = zeros({32, 64}, DType::BF16); }),
               L + "1.self_attn.q_proj.weight", "shape");
  expect_names(hf_load_error([&](auto& ts) {
                 ts[L + "0.mlp.experts.gate_up_proj_blocks"] = zeros({8, 128, 2, 8}, DType::U8);
               }),
               L + "0.mlp.experts.gate_up_proj_blocks", "[8, 128, 2, 16]");
  // dequantized experts stored [E, out, in] (not transposed): named, with the expected [E, in, out]
  expect_names(hf_load_error([&](auto& ts) {
                 ts.erase(L + "3.mlp.experts.gate_up_proj_blocks"), ts.erase(L + "3.mlp.experts.gate_up_proj_scales");
                 ts[L + "3.mlp.experts.gate_up_proj"] = zeros({8, 128, 64}, DType::BF16);
               }),
               L + "3.mlp.experts.gate_up_proj", "expected [8, 64, 128]");
  // wrong dtype
  expect_names(hf_load_error([&](auto& ts) { ts[L + "2.self_attn.sinks"] = zeros({4}, DType::I32); }),
               L + "2.self_attn.sinks", "dtype");
  expect_names(hf_load_error([&](auto& ts) {
                 ts[L + "0.mlp.experts.down_proj_scales"] = zeros({8, 64, 2}, DType::BF16);
               }),
               L + "0.mlp.experts.down_proj_scales", "U8");
  expect_names(hf_load_error([&](auto& ts) {
                 ts.erase(L + "1.mlp.experts.down_proj_blocks"), ts.erase(L + "1.mlp.experts.down_proj_scales");
                 ts[L + "1.mlp.experts.down_proj"] = zeros({8, 64, 64}, DType::U8);
               }),
               L + "1.mlp.experts.down_proj", "dtype");
  // neither layout
  EXPECT_NE(hf_load_error([](auto& ts) {
              std::map<std::string, Tensor> other{{"foo.weight", ts.begin()->second}};
              ts.swap(other);
            }).find("neither"),
            std::string::npos);
}

TEST(GptOssHf, ConfigFieldsOfTransformers) {
  // transformers 5.x writes rope_parameters (rope_theta inside); the Hub's configs rope_scaling.
  const std::string v5 = R"({"model_type": "gpt_oss", "num_hidden_layers": 2, "num_local_experts": 8,
      "num_experts_per_tok": 2, "vocab_size": 300, "hidden_size": 64, "intermediate_size": 64, "head_dim": 16,
      "num_attention_heads": 4, "num_key_value_heads": 2, "sliding_window": 8, "rms_norm_eps": 1e-06,
      "max_position_embeddings": 65536, "tie_word_embeddings": false,
      "rope_parameters": {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 16.0, "beta_fast": 16.0,
                          "beta_slow": 2.0, "original_max_position_embeddings": 4096, "truncate": false},
      "quantization_config": {"quant_method": "mxfp4"}})";
  const Config c = Config::from_json_text(v5, "v5");
  EXPECT_EQ(c.num_experts, 8);
  EXPECT_EQ(c.experts_per_token, 2);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rope_scaling_factor, 16.0);
  EXPECT_EQ(c.rope_ntk_beta, 16.0);
  EXPECT_EQ(c.rope_ntk_alpha, 2.0);
  EXPECT_EQ(c.initial_context_length, 4096);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.context_length(), 65536);
  const Config hub = Config::from_json_file(data_dir("tiny_b_hf") + "/config.json");
  const Config orig = Config::from_json_file(data_dir("tiny_b") + "/config.json");
  const Config v5_written = Config::from_json_file(data_dir("tiny_b_hf_bf16") + "/config.json");
  for (const Config* x : {&hub, &v5_written}) {
    EXPECT_EQ(x->num_experts, orig.num_experts);
    EXPECT_EQ(x->head_dim, orig.head_dim);
    EXPECT_EQ(x->rope_theta, orig.rope_theta);
    EXPECT_EQ(x->rope_scaling_factor, orig.rope_scaling_factor);
    EXPECT_EQ(x->initial_context_length, orig.initial_context_length);
    EXPECT_EQ(x->sliding_window, orig.sliding_window);
  }
  auto msg = [&](const std::string& from, const std::string& to) {
    std::string text = v5;
    const size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
    try {
      Config::from_json_text(text, "cfg.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(msg(R"("truncate": false)", R"("truncate": true)").find("'truncate'"), std::string::npos);
  EXPECT_NE(msg(R"(, "truncate": false)", "").find("'truncate'"), std::string::npos);
  EXPECT_NE(msg(R"("max_position_embeddings": 65536)", R"("max_position_embeddings": 131072)")
                .find("max_position_embeddings"),
            std::string::npos);
  EXPECT_NE(msg(R"("rope_type": "yarn")", R"("rope_type": "llama3")").find("llama3"), std::string::npos);
  EXPECT_NE(msg(R"("tie_word_embeddings": false)", R"("tie_word_embeddings": true)").find("tie_word_embeddings"),
            std::string::npos);
  EXPECT_NE(msg(R"("quant_method": "mxfp4")", R"("quant_method": "fp8")").find("fp8"), std::string::npos);
  EXPECT_NE(msg(R"("truncate": false)", R"("truncate": false, "attention_factor": 1.5)").find("attention_factor"),
            std::string::npos);
  EXPECT_NE(msg(R"("rms_norm_eps": 1e-06)", R"("rms_norm_eps": "small")").find("rms_norm_eps"), std::string::npos);
}

TEST(GptOssHf, ResolvesAHuggingFaceDownload) {
  test::TempDir dl;
  std::filesystem::copy(data_dir("tiny_a_hf"), dl.path(), std::filesystem::copy_options::recursive);
  EXPECT_EQ(resolve_checkpoint_dir(dl.path()), dl.path());  // HF layout alone: loaded as such
  EXPECT_EQ(Model::load(resolve_checkpoint_dir(dl.path())).config().num_experts, 8);
  std::filesystem::copy(data_dir("tiny_a"), dl.file("original"), std::filesystem::copy_options::recursive);
  EXPECT_EQ(resolve_checkpoint_dir(dl.path()), dl.file("original"));  // original/ preferred
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
