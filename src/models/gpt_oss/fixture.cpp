#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "ember/core/generator.h"
#include "ember/models/gpt_oss.h"

namespace ember::models::gpt_oss {

Config preset(const std::string& name) {
  Config c;  // the reference defaults are gpt-oss-120b
  if (name == "120b") return c;
  if (name == "20b") {
    c.num_hidden_layers = 24;
    c.num_experts = 32;
    return c;
  }
  if (name == "tiny") {
    c.num_hidden_layers = 4;
    c.num_experts = 8;
    c.vocab_size = 512;
    c.hidden_size = 128;
    c.intermediate_size = 128;
    c.head_dim = 32;
    c.num_attention_heads = 8;
    c.num_key_value_heads = 2;
    c.sliding_window = 16;
    return c;
  }
  throw_error("unknown preset '{}' (tiny, 20b, 120b)", name);
}

namespace {

using formats::safetensors::ByteSink;
using formats::safetensors::TensorSource;

uint64_t name_key(const std::string& name, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;  // FNV-1a of the name, mixed with the seed
  for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ull;
  return h;
}

// bf16 values ~ N(0, sigma) (or 1 + N(0, sigma) for norm scales), from counters of the name.
TensorSource bf16_tensor(const std::string& name, std::vector<int64_t> shape, float sigma, float mean, uint64_t seed) {
  return {name, "BF16", shape, [name, shape, sigma, mean, seed](const ByteSink& sink) {
            uint64_t n = 1;
            for (int64_t d : shape) n *= uint64_t(d);
            const uint64_t key = name_key(name, seed);
            std::vector<uint16_t> buf(1 << 19);
            for (uint64_t i = 0; i < n;) {
              const uint64_t m = std::min<uint64_t>(buf.size(), n - i);
              for (uint64_t j = 0; j < m; ++j) buf[j] = f32_to_bf16(mean + sigma * philox_normal(key, i + j));
              sink(buf.data(), m * 2);
              i += m;
            }
          }};
}

// u8 values uniform in [lo, hi].
TensorSource u8_tensor(const std::string& name, std::vector<int64_t> shape, int lo, int hi, uint64_t seed) {
  return {name, "U8", shape, [name, shape, lo, hi, seed](const ByteSink& sink) {
            uint64_t n = 1;
            for (int64_t d : shape) n *= uint64_t(d);
            const uint64_t key = name_key(name, seed);
            std::vector<uint8_t> buf(1 << 20);
            for (uint64_t i = 0; i < n;) {
              const uint64_t m = std::min<uint64_t>(buf.size(), n - i);
              for (uint64_t j = 0; j < m; j += 4) {  // four bytes a Philox call
                const auto r = philox4x32(key, (i + j) / 4);
                for (uint64_t k = 0; k < 4 && j + k < m; ++k)
                  buf[j + k] = uint8_t(lo + int(r[k] % uint32_t(hi - lo + 1)));
              }
              sink(buf.data(), m);
              i += m;
            }
          }};
}

}  // namespace

void write_fixture(const Config& c, const std::string& dir, uint64_t seed,
                   const std::function<void(uint64_t, uint64_t)>& progress) {
  c.validate("fixture config");
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  const int64_t H = c.hidden_size, I = c.intermediate_size, E = c.num_experts, V = c.vocab_size;
  const int64_t Q = c.num_attention_heads * c.head_dim, KV = c.num_key_value_heads * c.head_dim;
  const float sH = float(1.0 / std::sqrt(double(H)));
  std::vector<TensorSource> ts;
  ts.push_back(bf16_tensor("embedding.weight", {V, H}, 1.0f, 0, seed));
  ts.push_back(bf16_tensor("norm.scale", {H}, 0.1f, 1.0f, seed));
  ts.push_back(bf16_tensor("unembedding.weight", {V, H}, sH, 0, seed));
  for (int64_t n = 0; n < c.num_hidden_layers; ++n) {
    const std::string p = "block." + std::to_string(n) + ".";
    ts.push_back(bf16_tensor(p + "attn.norm.scale", {H}, 0.1f, 1.0f, seed));
    ts.push_back(bf16_tensor(p + "attn.qkv.weight", {Q + 2 * KV, H}, sH, 0, seed));
    ts.push_back(bf16_tensor(p + "attn.qkv.bias", {Q + 2 * KV}, 0.1f, 0, seed));
    ts.push_back(bf16_tensor(p + "attn.sinks", {c.num_attention_heads}, 1.0f, 0, seed));
    ts.push_back(bf16_tensor(p + "attn.out.weight", {H, Q}, float(1.0 / std::sqrt(double(Q))), 0, seed));
    ts.push_back(bf16_tensor(p + "attn.out.bias", {H}, 0.1f, 0, seed));
    ts.push_back(bf16_tensor(p + "mlp.norm.scale", {H}, 0.1f, 1.0f, seed));
    ts.push_back(bf16_tensor(p + "mlp.gate.weight", {E, H}, sH, 0, seed));
    ts.push_back(bf16_tensor(p + "mlp.gate.bias", {E}, 0.1f, 0, seed));
    ts.push_back(u8_tensor(p + "mlp.mlp1_weight.blocks", {E, 2 * I, H / 32, 16}, 0, 255, seed));
    ts.push_back(u8_tensor(p + "mlp.mlp1_weight.scales", {E, 2 * I, H / 32}, 120, 124, seed));
    ts.push_back(bf16_tensor(p + "mlp.mlp1_bias", {E, 2 * I}, 0.1f, 0, seed));
    ts.push_back(u8_tensor(p + "mlp.mlp2_weight.blocks", {E, H, I / 32, 16}, 0, 255, seed));
    ts.push_back(u8_tensor(p + "mlp.mlp2_weight.scales", {E, H, I / 32}, 120, 124, seed));
    ts.push_back(bf16_tensor(p + "mlp.mlp2_bias", {E, H}, 0.1f, 0, seed));
  }
  uint64_t total = 0, done = 0;
  for (const auto& t : ts) {
    uint64_t n = uint64_t(formats::safetensors::dtype_bits(t.dtype) / 8);
    for (int64_t d : t.shape) n *= uint64_t(d);
    total += n;
  }
  if (progress) {
    for (auto& t : ts) {
      auto inner = t.write;
      t.write = [inner, &done, total, &progress](const ByteSink& sink) {
        inner([&](const void* data, size_t size) {
          sink(data, size);
          done += size;
          progress(done, total);
        });
      };
    }
  }
  formats::safetensors::write_streaming((fs::path(dir) / "model.safetensors").string(), std::move(ts),
                                        {{"producer", "ember fixture"}, {"seed", std::to_string(seed)}});
  nlohmann::ordered_json j = {{"num_hidden_layers", c.num_hidden_layers},
                              {"num_experts", c.num_experts},
                              {"experts_per_token", c.experts_per_token},
                              {"vocab_size", c.vocab_size},
                              {"hidden_size", c.hidden_size},
                              {"intermediate_size", c.intermediate_size},
                              {"swiglu_limit", c.swiglu_limit},
                              {"head_dim", c.head_dim},
                              {"num_attention_heads", c.num_attention_heads},
                              {"num_key_value_heads", c.num_key_value_heads},
                              {"sliding_window", c.sliding_window},
                              {"initial_context_length", c.initial_context_length},
                              {"rope_theta", c.rope_theta},
                              {"rope_scaling_factor", c.rope_scaling_factor},
                              {"rope_ntk_alpha", c.rope_ntk_alpha},
                              {"rope_ntk_beta", c.rope_ntk_beta}};
  const std::string cfg = (fs::path(dir) / "config.json").string(), tmp = cfg + ".tmp";
  {
    std::ofstream out(tmp);
    out << j.dump(2) << "\n";
    EMBER_CHECK(out.good(), "{}: write failed", tmp);
  }
  fs::rename(tmp, cfg);
}

}  // namespace ember::models::gpt_oss
