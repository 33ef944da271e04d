#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "ember/models/gpt_oss.h"

namespace ember::models::gpt_oss {

namespace {
using json = nlohmann::json;

template <typename T>
void read(const json& j, const char* key, T& out, const std::string& where) {
  if (!j.contains(key)) return;  // the reference's default stays
  const json& v = j[key];
  if constexpr (std::is_integral_v<T>) {
    EMBER_CHECK(v.is_number_integer(), "{}: field '{}' must be an integer, got {}", where, key, v.dump());
    out = v.get<T>();
  } else {
    EMBER_CHECK(v.is_number(), "{}: field '{}' must be a number, got {}", where, key, v.dump());
    out = v.get<T>();
  }
}
}  // namespace

nn::RopeConfig Config::rope() const {
  return {.head_dim = head_dim,
          .theta = rope_theta,
          .layout = nn::RopeLayout::HalfSplit,
          .yarn = nn::YarnScaling{.factor = rope_scaling_factor,
                                  .ntk_alpha = rope_ntk_alpha,
                                  .ntk_beta = rope_ntk_beta,
                                  .original_context = initial_context_length}};
}

void Config::validate(const std::string& where) const {
  auto positive = [&](int64_t v, const char* name) { EMBER_CHECK(v > 0, "{}: {} must be positive, got {}", where, name, v); };
  positive(num_hidden_layers, "num_hidden_layers");
  positive(num_experts, "num_experts");
  positive(experts_per_token, "experts_per_token");
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(intermediate_size, "intermediate_size");
  positive(head_dim, "head_dim");
  positive(num_attention_heads, "num_attention_heads");
  positive(num_key_value_heads, "num_key_value_heads");
  positive(sliding_window, "sliding_window");
  positive(initial_context_length, "initial_context_length");
  EMBER_CHECK(experts_per_token <= num_experts, "{}: experts_per_token {} exceeds num_experts {}", where,
              experts_per_token, num_experts);
  EMBER_CHECK(num_attention_heads % num_key_value_heads == 0,
              "{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", where, num_attention_heads,
              num_key_value_heads);
  EMBER_CHECK(head_dim % 2 == 0, "{}: head_dim {} must be even (RoPE pairs)", where, head_dim);
  EMBER_CHECK(hidden_size % kMxfp4BlockSize == 0 && intermediate_size % kMxfp4BlockSize == 0,
              "{}: hidden_size {} and intermediate_size {} must be multiples of the MXFP4 block ({})", where,
              hidden_size, intermediate_size, kMxfp4BlockSize);
  EMBER_CHECK(rope_theta > 1, "{}: rope_theta must be > 1, got {}", where, rope_theta);
  EMBER_CHECK(swiglu_limit > 0, "{}: swiglu_limit must be positive, got {}", where, swiglu_limit);
  EMBER_CHECK(rms_norm_eps > 0, "{}: rms_norm_eps must be positive, got {}", where, rms_norm_eps);
  try {
    nn::rope_frequencies(rope());
  } catch (const Error& e) {
    throw_error("{}: {}", where, e.what());
  }
}

Config Config::from_json_text(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw_error("{}: not valid JSON: {}", where, e.what());
  }
  EMBER_CHECK(j.is_object(), "{}: must be a JSON object", where);
  Config c;
  const bool hf = j.contains("num_local_experts") || (j.contains("model_type") && j["model_type"] == "gpt_oss");
  read(j, "num_hidden_layers", c.num_hidden_layers, where);
  read(j, "vocab_size", c.vocab_size, where);
  read(j, "hidden_size", c.hidden_size, where);
  read(j, "intermediate_size", c.intermediate_size, where);
  read(j, "swiglu_limit", c.swiglu_limit, where);
  read(j, "head_dim", c.head_dim, where);
  read(j, "num_attention_heads", c.num_attention_heads, where);
  read(j, "num_key_value_heads", c.num_key_value_heads, where);
  read(j, "sliding_window", c.sliding_window, where);
  read(j, "rope_theta", c.rope_theta, where);
  if (!hf) {
    read(j, "num_experts", c.num_experts, where);
    read(j, "experts_per_token", c.experts_per_token, where);
    read(j, "initial_context_length", c.initial_context_length, where);
    read(j, "rope_scaling_factor", c.rope_scaling_factor, where);
    read(j, "rope_ntk_alpha", c.rope_ntk_alpha, where);
    read(j, "rope_ntk_beta", c.rope_ntk_beta, where);
  } else {
    // transformers' GptOssConfig names (configuration_gpt_oss.py). YaRN parameters sit in
    // rope_scaling (the published checkpoints, transformers 4.x) or rope_parameters (5.x, which
    // also moves rope_theta there).
    read(j, "num_local_experts", c.num_experts, where);
    read(j, "num_experts_per_tok", c.experts_per_token, where);
    read(j, "rms_norm_eps", c.rms_norm_eps, where);
    const char* rope_key = j.contains("rope_parameters") ? "rope_parameters" : "rope_scaling";
    if (j.contains(rope_key) && !j[rope_key].is_null()) {
      const json& rs = j[rope_key];
      const std::string w = where + " " + rope_key;
      EMBER_CHECK(rs.is_object(), "{}: must be an object", w);
      read(rs, "rope_theta", c.rope_theta, w);
      const std::string type = rs.value("rope_type", rs.value("type", std::string("default")));
      if (type == "default") {
        c.rope_scaling_factor = 1.0;
      } else {
        EMBER_CHECK(type == "yarn", "{}: rope_type '{}' is not supported (gpt-oss uses yarn)", w, type);
        read(rs, "factor", c.rope_scaling_factor, w);
        read(rs, "beta_fast", c.rope_ntk_beta, w);
        read(rs, "beta_slow", c.rope_ntk_alpha, w);
        read(rs, "original_max_position_embeddings", c.initial_context_length, w);
        // transformers rounds the YaRN ramp's ends to integers unless truncate is false (its
        // default is true); gpt-oss (model.py) never rounds, and its configs say false.
        EMBER_CHECK(rs.contains("truncate") && rs["truncate"] == false,
                    "{}: field 'truncate' must be false (gpt-oss's unrounded YaRN ramp), got {}", w,
                    rs.contains("truncate") ? rs["truncate"].dump() : "nothing (transformers then rounds)");
        for (const char* key : {"attention_factor", "mscale", "mscale_all_dim"})
          EMBER_CHECK(!rs.contains(key) || rs[key].is_null(), "{}: field '{}' is not supported (gpt-oss's YaRN "
                      "concentration is 0.1 ln(factor) + 1)", w, key);
        // transformers derives the factor from max_position_embeddings / original_max_position_embeddings
        // when both are given: they must agree with factor.
        if (j.contains("max_position_embeddings") && j["max_position_embeddings"].is_number()) {
          const double mpe = j["max_position_embeddings"].get<double>();
          EMBER_CHECK(std::abs(mpe - double(c.initial_context_length) * c.rope_scaling_factor) < 0.5,
                      "{}: max_position_embeddings {} is not original_max_position_embeddings {} x factor {}", where,
                      mpe, c.initial_context_length, c.rope_scaling_factor);
        }
      }
    }
    EMBER_CHECK(!j.contains("tie_word_embeddings") || j["tie_word_embeddings"] != true,
                "{}: field 'tie_word_embeddings' is true; gpt-oss has a separate lm_head", where);
    if (j.contains("quantization_config") && !j["quantization_config"].is_null()) {
      const json& q = j["quantization_config"];
      const std::string method = q.is_object() ? q.value("quant_method", std::string()) : std::string();
      EMBER_CHECK(method == "mxfp4", "{}: quantization_config.quant_method '{}' is not supported (mxfp4 is)", where,
                  method);
    }
    if (j.contains("layer_types") && j["layer_types"].is_array()) {
      const auto& lt = j["layer_types"];
      EMBER_CHECK(int64_t(lt.size()) == c.num_hidden_layers, "{}: layer_types has {} entries for {} layers", where,
                  lt.size(), c.num_hidden_layers);
      for (size_t i = 0; i < lt.size(); ++i)
        EMBER_CHECK(lt[i] == (i % 2 == 0 ? "sliding_attention" : "full_attention"),
                    "{}: layer_types[{}] is {}; ember follows gpt-oss (sliding on even layers)", where, i, lt[i].dump());
    }
  }
  c.validate(where);
  return c;
}

Config Config::from_json_file(const std::string& path) {
  std::ifstream in(path);
  EMBER_CHECK(in.good(), "{}: cannot read", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return from_json_text(ss.str(), path);
}

}  // namespace ember::models::gpt_oss
