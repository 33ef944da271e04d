#include <cmath>
#include <filesystem>
#include <fstream>
#include <future>

#include <nlohmann/json.hpp>

#include "ember/core/generator.h"
#include "ember/core/thread_pool.h"
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

uint64_t element_count(const std::vector<int64_t>& shape) {
  uint64_t n = 1;
  for (int64_t d : shape) n *= uint64_t(d);
  return n;
}

// Streams `bytes` bytes in pieces of 8 MiB: `fill(piece, first_byte, piece_bytes)` fills one piece
// on ember's threads while a writer thread hands the previous piece to the sink, so generation and
// writing overlap. Every byte depends only on its index, so any thread count writes the same file.
void stream_pieces(uint64_t bytes, const std::function<void(uint8_t*, uint64_t, uint64_t)>& fill,
                   const ByteSink& sink) {
  constexpr uint64_t kPiece = 8u << 20;  // a multiple of every element/group size used below
  std::vector<uint8_t> buffers[2] = {std::vector<uint8_t>(std::min(kPiece, bytes)),
                                     std::vector<uint8_t>(std::min(kPiece, bytes))};
  std::future<void> writing;  // destroyed (joined) before the buffers
  int k = 0;
  for (uint64_t at = 0; at < bytes; at += kPiece, k ^= 1) {
    const uint64_t m = std::min(kPiece, bytes - at);
    fill(buffers[k].data(), at, m);
    if (writing.valid()) writing.get();
    writing = std::async(std::launch::async, [&sink, data = buffers[k].data(), m] { sink(data, m); });
  }
  if (writing.valid()) writing.get();
}

// bf16 values ~ N(0, sigma) (or mean + N(0, sigma) for norm scales), element i from counter i.
TensorSource bf16_tensor(const std::string& name, std::vector<int64_t> shape, float sigma, float mean, uint64_t seed) {
  return {name, "BF16", shape, [name, shape, sigma, mean, seed](const ByteSink& sink) {
            const uint64_t key = name_key(name, seed);
            stream_pieces(element_count(shape) * 2, [&](uint8_t* out, uint64_t at, uint64_t bytes) {
              uint16_t* v = reinterpret_cast<uint16_t*>(out);
              const uint64_t first = at / 2;
              parallel_for(int64_t(bytes / 2), 1 << 14, [&](int64_t b, int64_t e) {
                float z[1024];
                for (int64_t j = b; j < e; j += 1024) {
                  const int64_t n = std::min<int64_t>(1024, e - j);
                  philox_normal_many(key, first + uint64_t(j), uint64_t(n), z);
                  for (int64_t t = 0; t < n; ++t) v[j + t] = f32_to_bf16(mean + sigma * z[t]);
                }
              });
            }, sink);
          }};
}

// u8 values uniform in [lo, hi]: element i is lane i % 4 of Philox counter i / 4.
TensorSource u8_tensor(const std::string& name, std::vector<int64_t> shape, int lo, int hi, uint64_t seed) {
  return {name, "U8", shape, [name, shape, lo, hi, seed](const ByteSink& sink) {
            const uint64_t key = name_key(name, seed);
            const uint32_t range = uint32_t(hi - lo + 1);
            stream_pieces(element_count(shape), [&](uint8_t* out, uint64_t at, uint64_t bytes) {
              const int64_t groups = int64_t((bytes + 3) / 4);
              parallel_for(groups, 1 << 12, [&](int64_t b, int64_t e) {
                uint32_t r[4 * 256];
                for (int64_t g = b; g < e; g += 256) {
                  const int64_t n = std::min<int64_t>(256, e - g);
                  philox4x32_many(key, at / 4 + uint64_t(g), uint64_t(n), r);
                  const uint64_t j = uint64_t(g) * 4, m = std::min<uint64_t>(uint64_t(n) * 4, bytes - j);
                  if (range == 256)
                    for (uint64_t k = 0; k < m; ++k) out[j + k] = uint8_t(lo + int(r[k] & 0xff));
                  else
                    for (uint64_t k = 0; k < m; ++k) out[j + k] = uint8_t(lo + int(r[k] % range));
                }
              });
            }, sink);
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
  for (const auto& t : ts) total += uint64_t(formats::safetensors::dtype_bits(t.dtype) / 8) * element_count(t.shape);
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
