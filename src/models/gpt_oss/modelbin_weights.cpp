// gpt-oss from OpenAI's Metal model.bin: the configuration from its header, the weights as views of
// the mapped file. q/k rows are copied once to undo the export's QKV transform (interleaved RoPE
// pairs, q x 0.5, k x 0.25: a permutation and powers of two, so exact), and the MXFP4 scales to
// remove the +14 offset; everything else (embedding, experts' blocks, biases) stays mapped.
#include <cmath>
#include <cstring>

#include "ember/formats/modelbin.h"
#include "ember/models/gpt_oss.h"

namespace ember::models::gpt_oss {

namespace {

namespace mb = formats::modelbin;

// The simplest decimal that reproduces a value stored as f32 (1e-5 rather than 9.99999975e-06),
// found by rounding `approx` to 1..17 significant digits; `approx` itself when none does.
double simplest(double approx, const std::function<bool(double)>& reproduces) {
  for (int digits = 1; digits <= 17; ++digits) {
    const double v = std::stod(fmt::format("{:.{}g}", approx, digits));
    if (reproduces(v)) return v;
  }
  return approx;
}

}  // namespace

Config config_from_modelbin(const mb::ModelHeader& m, uint32_t vocabulary_size) {
  Config c;
  c.num_hidden_layers = m.num_blocks;
  c.num_experts = m.num_experts;
  c.experts_per_token = m.num_active_experts;
  c.vocab_size = vocabulary_size;
  c.hidden_size = m.embedding_dim;
  c.intermediate_size = m.mlp_dim;
  c.swiglu_limit = simplest(m.swiglu_limit, [&](double v) { return float(v) == m.swiglu_limit; });
  c.head_dim = m.head_dim;
  c.num_attention_heads = m.num_heads;
  c.num_key_value_heads = m.num_kv_heads;
  c.sliding_window = m.attention_window;
  c.rope_theta = simplest(m.rope_theta, [&](double v) { return float(v) == m.rope_theta; });
  c.rms_norm_eps = simplest(m.rmsnorm_epsilon, [&](double v) { return float(v) == m.rmsnorm_epsilon; });
  // The header stores YaRN's derived terms; recover the config values that produce them exactly.
  c.rope_scaling_factor = simplest(1.0 / m.interpolation_scale, [&](double s) {
    return float(1.0 / s) == m.interpolation_scale && float(0.1 * std::log(s) + 1.0) == m.yarn_multiplier;
  });
  c.initial_context_length = std::llround(double(m.context_length) / c.rope_scaling_factor);
  EMBER_CHECK(c.initial_context_length > 0 &&
                  int64_t(double(c.initial_context_length) * c.rope_scaling_factor) == int64_t(m.context_length),
              "model.bin: context_length {} is not initial_context_length x rope scaling factor {}", m.context_length,
              c.rope_scaling_factor);
  // low = -offset/scale, high = low + 1/scale; low = (d/2) ln(L0 / (beta 2 pi)) / ln(theta), alike for alpha.
  const double low = -double(m.yarn_offset) / double(m.yarn_scale), high = low + 1.0 / double(m.yarn_scale);
  const double half = double(m.head_dim) / 2, ln_theta = std::log(c.rope_theta);
  auto ntk = [&](double edge) { return double(c.initial_context_length) / (2 * M_PI * std::exp(edge * ln_theta / half)); };
  auto matches = [&](double alpha, double beta) {
    mb::ConfigValues v{};
    v.head_dim = c.head_dim, v.initial_context_length = c.initial_context_length, v.rope_theta = c.rope_theta;
    v.rope_scaling_factor = c.rope_scaling_factor, v.rope_ntk_alpha = alpha, v.rope_ntk_beta = beta;
    const auto h = mb::model_header_for(v);
    return h.yarn_offset == m.yarn_offset && h.yarn_scale == m.yarn_scale;
  };
  const double beta0 = ntk(low), alpha0 = ntk(high);
  c.rope_ntk_alpha = simplest(alpha0, [&](double a) { return matches(a, simplest(beta0, [&](double b) { return matches(a, b); })); });
  c.rope_ntk_beta = simplest(beta0, [&](double b) { return matches(c.rope_ntk_alpha, b); });
  c.validate("model.bin header");
  return c;
}

Model Model::load_modelbin(const std::string& path, Device device) {
  const auto file = mb::File::open(path);
  const auto& m = file.model_header();
  const Config c = config_from_modelbin(m, file.tokenizer_header().vocabulary_size());
  const auto& L = file.layout();
  // One borrowed storage over the whole mapping; tensors are views into it.
  auto storage = Storage::borrow(const_cast<uint8_t*>(file.data()), file.size(), Device::cpu(), file.keepalive());
  auto view = [&](const std::string& name) {
    const auto& s = L.section(name);
    const DType dt = s.dtype == "U8" ? DType::U8 : DType::BF16;
    const Shape shape(s.shape);
    Shape strides = shape;
    int64_t step = 1;
    for (int i = shape.size() - 1; i >= 0; --i) strides[i] = step, step *= shape[i];
    return Tensor(storage, shape, strides, int64_t(s.offset / dtype_size(dt)), dt).to(device);
  };
  // Expert tensors: records `stride` bytes apart become a leading [E] dim with that stride.
  auto experts = [&](const std::string& name) {
    const auto& s = L.section(name);
    const DType dt = s.dtype == "U8" ? DType::U8 : DType::BF16;
    const int64_t es = int64_t(dtype_size(dt));
    Shape shape(s.shape), strides(s.shape);
    int64_t step = 1;
    for (int i = shape.size() - 1; i >= 0; --i) strides[i] = step, step *= shape[i];
    shape.insert(0, int64_t(s.count));
    strides.insert(0, int64_t(s.stride) / es);
    return Tensor(storage, shape, strides, int64_t(s.offset) / es, dt);
  };
  auto scales = [&](const std::string& name) {  // u8 minus the export's +14
    const auto& s = L.section(name);
    std::vector<uint8_t> v(s.count * s.size);
    for (uint64_t e = 0; e < s.count; ++e) {
      const uint8_t* p = file.bytes(s, e);
      for (uint64_t i = 0; i < s.size; ++i) v[e * s.size + i] = uint8_t(p[i] - mb::kUe8Offset);
    }
    Shape shape(s.shape);
    shape.insert(0, int64_t(s.count));
    return Tensor::from_vector(v, shape).to(device);
  };
  const int64_t Q = c.num_attention_heads * c.head_dim, KV = c.num_key_value_heads * c.head_dim, H = c.hidden_size;
  std::vector<Block> blocks;
  for (int64_t n = 0; n < c.num_hidden_layers; ++n) {
    const std::string p = "block." + std::to_string(n) + ".";
    Block b;
    b.attn_norm = view(p + "attn.norm.scale");
    Tensor qkv[2];
    for (int k = 0; k < 2; ++k) {
      const auto& s = L.section(p + (k == 0 ? "attn.qkv.weight" : "attn.qkv.bias"));
      std::vector<uint16_t> in(s.size / 2), out(s.size / 2);
      std::memcpy(in.data(), file.bytes(s), s.size);
      mb::qkv_transform(in.data(), out.data(), c.num_attention_heads, c.num_key_value_heads, c.head_dim,
                        k == 0 ? H : 1, true);
      qkv[k] = Tensor::from_data(out.data(), Shape(s.shape), DType::BF16).to(device);
    }
    b.q_weight = qkv[0].narrow(0, 0, Q), b.q_bias = qkv[1].narrow(0, 0, Q);
    b.k_weight = qkv[0].narrow(0, Q, KV), b.k_bias = qkv[1].narrow(0, Q, KV);
    b.v_weight = qkv[0].narrow(0, Q + KV, KV), b.v_bias = qkv[1].narrow(0, Q + KV, KV);
    b.sinks = view(p + "attn.sinks");
    b.out_weight = view(p + "attn.out.weight");
    b.out_bias = view(p + "attn.out.bias");
    b.mlp_norm = view(p + "mlp.norm.scale");
    b.gate_weight = view(p + "mlp.gate.weight");
    b.gate_bias = view(p + "mlp.gate.bias");
    b.mlp1_weight = {Mxfp4Tensor::from_parts(experts(p + "mlp.mlp1_weight.blocks").to(device),
                                             scales(p + "mlp.mlp1_weight.scales"), p + "mlp.mlp1_weight")};
    b.mlp1_bias = experts(p + "mlp.mlp1_bias").to(device);
    b.mlp2_weight = {Mxfp4Tensor::from_parts(experts(p + "mlp.mlp2_weight.blocks").to(device),
                                             scales(p + "mlp.mlp2_weight.scales"), p + "mlp.mlp2_weight")};
    b.mlp2_bias = experts(p + "mlp.mlp2_bias").to(device);
    blocks.push_back(std::move(b));
  }
  return Model(c, std::move(blocks), view("embedding.weight"), view("norm.scale"), view("unembedding.weight"), device);
}

}  // namespace ember::models::gpt_oss
