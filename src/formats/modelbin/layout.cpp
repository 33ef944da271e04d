// model.bin layout: UUIDs, header derivation and every tensor's place, as create-local-model.py
// writes them and gpt_oss/metal/source/model.c expects them.
#include <cmath>

#include "ember/core/dtype.h"
#include "ember/core/error.h"
#include "ember/formats/modelbin.h"

namespace ember::formats::modelbin {

namespace {

constexpr Uuid parse_uuid(const char* s) {
  Uuid u{};
  auto hex = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  int n = 0;
  for (const char* p = s; *p && n < 32; ++p) {
    if (*p == '-') continue;
    u[size_t(n / 2)] = uint8_t(u[size_t(n / 2)] | (hex(*p) << (n % 2 ? 0 : 4)));
    ++n;
  }
  return u;
}

// Checked u64 arithmetic: absurd header values must become errors, not wrapped offsets.
uint64_t add(uint64_t a, uint64_t b, const std::string& where) {
  uint64_t r;
  if (__builtin_add_overflow(a, b, &r)) throw_error("{}: header values overflow the file offsets", where);
  return r;
}
uint64_t mul(uint64_t a, uint64_t b, const std::string& where) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) throw_error("{}: header values overflow the file offsets", where);
  return r;
}
uint64_t align_up(uint64_t x, uint64_t a, const std::string& where) { return add(x, (a - x % a) % a, where); }

}  // namespace

const Uuid kModelUuid = parse_uuid("df52dc86-1789-4ed0-a295-66f10508145b");
const Uuid kLayoutUuid = parse_uuid("229177a8-5775-4268-bfd8-d588b351c56d");
const Uuid kTokenizerUuid = parse_uuid("7401aded-2a95-40cb-b782-9ccebaafe72b");

const std::vector<std::pair<std::string, Uuid>>& special_token_uuids() {
  static const std::vector<std::pair<std::string, Uuid>> table = {
      {"<|start|>", parse_uuid("55a77c2f-8a01-4c54-8ac2-313bfc7e208d")},
      {"<|message|>", parse_uuid("16e40431-f47f-4b22-b59b-8b278fc30a54")},
      {"<|end|>", parse_uuid("fcac2f6d-4705-4f6b-b228-642accac7238")},
      {"<|return|>", parse_uuid("f799ff69-1992-43c4-a3d8-d831f475dc75")},
      {"<|refusal|>", parse_uuid("e15ba702-28c4-4292-ab8f-ffa434709128")},
      {"<|constrain|>", parse_uuid("c0bb14c7-6022-49da-ad08-792d67e8b470")},
      {"<|channel|>", parse_uuid("fd3dda11-c8ab-4033-876e-d93deb172c93")},
      {"<|call|>", parse_uuid("1220f796-e388-4de5-b487-fe2eb5fe03c0")},
      {"<|untrusted|>", parse_uuid("07d7da55-b346-4cff-8b37-7cefacf8a3e8")},
      {"<|end_untrusted|>", parse_uuid("f265bd9c-c717-469e-a447-920687d65d90")},
  };
  return table;
}

std::optional<std::string> special_token_name(const Uuid& uuid) {
  for (const auto& [name, u] : special_token_uuids())
    if (u == uuid) return name;
  return std::nullopt;
}

std::string uuid_string(const Uuid& u) {
  return fmt::format("{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
                     u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
                     u[15]);
}

ModelHeader model_header_for(const ConfigValues& c) {
  // create-local-model.py, in Python doubles, each stored as f32 (struct.pack('<f')).
  const double low = double(c.head_dim) / 2 *
                     std::log(double(c.initial_context_length) / (c.rope_ntk_beta * 2 * M_PI)) / std::log(c.rope_theta);
  const double high = double(c.head_dim) / 2 *
                      std::log(double(c.initial_context_length) / (c.rope_ntk_alpha * 2 * M_PI)) / std::log(c.rope_theta);
  ModelHeader h;
  h.context_length = uint32_t(int64_t(double(c.initial_context_length) * c.rope_scaling_factor));
  h.num_blocks = uint32_t(c.num_hidden_layers);
  h.num_experts = uint32_t(c.num_experts);
  h.num_active_experts = 4;  // the reference hard-codes it
  h.embedding_dim = uint32_t(c.hidden_size);
  h.mlp_dim = uint32_t(c.intermediate_size);
  h.swiglu_limit = float(c.swiglu_limit);
  h.head_dim = uint32_t(c.head_dim);
  h.num_heads = uint32_t(c.num_attention_heads);
  h.num_kv_heads = uint32_t(c.num_key_value_heads);
  h.attention_window = uint32_t(c.sliding_window);
  h.rope_theta = float(c.rope_theta);
  h.interpolation_scale = float(1.0 / c.rope_scaling_factor);
  h.yarn_offset = float(-low / (high - low));
  h.yarn_scale = float(1.0 / (high - low));
  h.yarn_multiplier = float(0.1 * std::log(c.rope_scaling_factor) + 1.0);
  h.rmsnorm_epsilon = float(1.0e-5);
  return h;
}

Layout Layout::compute(const ModelHeader& m, const TokenizerHeader& t, const std::string& where) {
  // Field checks: what model.c needs to address the weights, with bounds that keep every offset
  // computation far from overflow.
  auto field = [&](uint32_t v, const char* name, uint32_t lo, uint32_t hi) {
    EMBER_CHECK(v >= lo && v <= hi, "{}: header field {} = {} is outside [{}, {}]", where, name, v, lo, hi);
  };
  field(m.num_blocks, "num_blocks", 1, 4096);
  field(m.num_experts, "num_experts", 1, 65536);
  field(m.num_active_experts, "num_active_experts", 1, m.num_experts);
  field(m.embedding_dim, "embedding_dim", 32, 1u << 20);
  field(m.mlp_dim, "mlp_dim", 32, 1u << 20);
  field(m.head_dim, "head_dim", 64, 64);  // the Metal kernels and the folded 1/sqrt(64) need 64
  field(m.num_heads, "num_heads", 1, 4096);
  field(m.num_kv_heads, "num_kv_heads", 1, m.num_heads);
  field(m.attention_window, "attention_window", 1, UINT32_MAX);
  field(m.context_length, "context_length", 1, UINT32_MAX);
  EMBER_CHECK(m.embedding_dim % 32 == 0 && m.mlp_dim % 32 == 0,
              "{}: embedding_dim {} and mlp_dim {} must be multiples of the MXFP4 block (32)", where, m.embedding_dim,
              m.mlp_dim);
  EMBER_CHECK(m.num_heads % m.num_kv_heads == 0, "{}: num_heads {} is not a multiple of num_kv_heads {}", where,
              m.num_heads, m.num_kv_heads);
  auto finite_positive = [&](float v, const char* name) {
    EMBER_CHECK(std::isfinite(v) && v > 0, "{}: header field {} = {} must be finite and positive", where, name, v);
  };
  finite_positive(m.swiglu_limit, "swiglu_limit");
  finite_positive(m.rope_theta, "rope_theta");
  finite_positive(m.interpolation_scale, "interpolation_scale");
  finite_positive(m.yarn_scale, "yarn_scale");
  finite_positive(m.yarn_multiplier, "yarn_multiplier");
  finite_positive(m.rmsnorm_epsilon, "rmsnorm_epsilon");
  EMBER_CHECK(std::isfinite(m.yarn_offset), "{}: header field yarn_offset = {} is not finite", where, m.yarn_offset);
  field(t.num_text_tokens, "num_text_tokens", 1, 1u << 24);
  field(t.num_special_tokens, "num_special_tokens", 0, 1u << 16);
  field(t.regex_size, "regex_size", 1, 1u << 20);
  EMBER_CHECK(t.tokens_size >= 3ull * t.num_text_tokens && t.tokens_size <= 65537ull * t.num_text_tokens,
              "{}: tokens_size {} cannot hold {} text tokens of 1..65535 bytes", where, t.tokens_size,
              t.num_text_tokens);

  Layout L;
  L.model = m;
  L.tokenizer = t;
  L.special_uuids_offset = kFileHeaderSize + 16 + kModelHeaderSize + 16 + 16 + kTokenizerHeaderSize;
  L.regex_offset = L.special_uuids_offset + 16ull * t.num_special_tokens;
  L.tokens_offset = L.regex_offset + t.regex_size;
  L.tokenizer_end = L.tokens_offset + t.tokens_size;
  L.weights_offset = align_up(L.tokenizer_end, kPageAlignment, where);

  const uint64_t V = t.vocabulary_size(), H = m.embedding_dim, I = m.mlp_dim, E = m.num_experts;
  const uint64_t qkv_rows = uint64_t(m.head_dim) * (m.num_heads + 2ull * m.num_kv_heads);
  const uint64_t q_dim = uint64_t(m.head_dim) * m.num_heads;
  const int64_t iV = int64_t(V), iH = int64_t(H), iI = int64_t(I), iE = int64_t(E);
  uint64_t off = L.weights_offset;
  // A tensor written after 16-byte padding (write_padding(16)), or right after the previous one
  // (write_linear_weight writes weight and bias back to back).
  auto place = [&](std::string name, std::string dtype, std::vector<int64_t> shape, uint64_t size, bool pad) {
    if (pad) off = align_up(off, kTensorAlignment, where);
    L.sections.push_back({std::move(name), std::move(dtype), std::move(shape), off, size, 1, 0});
    off = add(off, size, where);
  };
  place("embedding.weight", "BF16", {iV, iH}, mul(mul(V, H, where), 2, where), true);
  for (uint32_t n = 0; n < m.num_blocks; ++n) {
    const std::string p = "block." + std::to_string(n) + ".";
    place(p + "attn.norm.scale", "BF16", {iH}, 2 * H, true);
    place(p + "attn.qkv.weight", "BF16", {int64_t(qkv_rows), iH}, mul(qkv_rows * H, 2, where), true);
    place(p + "attn.qkv.bias", "BF16", {int64_t(qkv_rows)}, 2 * qkv_rows, false);
    place(p + "attn.sinks", "BF16", {int64_t(m.num_heads)}, 2ull * m.num_heads, true);
    place(p + "attn.out.weight", "BF16", {iH, int64_t(q_dim)}, mul(H * q_dim, 2, where), true);
    place(p + "attn.out.bias", "BF16", {iH}, 2 * H, false);
    place(p + "mlp.norm.scale", "BF16", {iH}, 2 * H, true);
    place(p + "mlp.gate.weight", "BF16", {iE, iH}, mul(E * H, 2, where), true);
    place(p + "mlp.gate.bias", "BF16", {iE}, 2 * E, false);
  }
  place("norm.scale", "BF16", {iH}, 2 * H, true);
  place("unembedding.weight", "BF16", {iV, iH}, mul(mul(V, H, where), 2, where), true);

  // Experts: per block a 16 KiB boundary, then per expert six tensors, each 16-byte aligned.
  // Every size below is a multiple of 16 given H, I multiples of 32, so records have a fixed stride.
  struct Part {
    const char* name;
    const char* dtype;
    std::vector<int64_t> shape;
    uint64_t size;
  };
  const std::vector<Part> parts = {
      {"mlp.mlp1_weight.blocks", "U8", {2 * iI, iH / 32, 16}, 2 * I * H / 2},
      {"mlp.mlp1_weight.scales", "U8", {2 * iI, iH / 32}, 2 * I * H / 32},
      {"mlp.mlp1_bias", "BF16", {2 * iI}, 2 * I * 2},
      {"mlp.mlp2_weight.blocks", "U8", {iH, iI / 32, 16}, H * I / 2},
      {"mlp.mlp2_weight.scales", "U8", {iH, iI / 32}, H * I / 32},
      {"mlp.mlp2_bias", "BF16", {iH}, H * 2},
  };
  uint64_t stride = 0;
  for (const auto& part : parts) stride += (part.size + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
  for (uint32_t n = 0; n < m.num_blocks; ++n) {
    off = align_up(off, kPageAlignment, where);
    const uint64_t base = off;
    uint64_t rel = 0;
    for (const auto& part : parts) {
      L.sections.push_back({"block." + std::to_string(n) + "." + part.name, part.dtype, part.shape, base + rel,
                            part.size, E, stride});
      rel += (part.size + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
    }
    off = add(base, mul(stride, E - 1, where), where);
    off = add(off, stride - (parts.back().size % 16 ? 16 - parts.back().size % 16 : 0), where);
  }
  L.file_size = off;
  return L;
}

const Section* Layout::find(const std::string& name) const {
  for (const auto& s : sections)
    if (s.name == name) return &s;
  return nullptr;
}

const Section& Layout::section(const std::string& name) const {
  const Section* s = find(name);
  EMBER_CHECK(s != nullptr, "model.bin: no section '{}'", name);
  return *s;
}

void qkv_transform(const uint16_t* in, uint16_t* out, int64_t num_heads, int64_t num_kv_heads, int64_t head_dim,
                   int64_t cols, bool inverse) {
  const int64_t half = head_dim / 2, qk_heads = num_heads + num_kv_heads;
  auto scaled = [](uint16_t v, float s) { return f32_to_bf16(bf16_to_f32(v) * s); };  // as torch: f32 op, RNE
  for (int64_t h = 0; h < qk_heads; ++h) {
    const float s = h < num_heads ? (inverse ? 2.0f : 0.5f) : (inverse ? 4.0f : 0.25f);
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t split = h * head_dim + j * half + i;  // checkpoint row (d, d + 32 halves)
        const int64_t pairs = h * head_dim + 2 * i + j;     // model.bin row (interleaved pairs)
        const uint16_t* src = in + (inverse ? pairs : split) * cols;
        uint16_t* dst = out + (inverse ? split : pairs) * cols;
        for (int64_t c = 0; c < cols; ++c) dst[c] = scaled(src[c], s);
      }
  }
  const int64_t v0 = qk_heads * head_dim * cols, vn = num_kv_heads * head_dim * cols;
  std::copy(in + v0, in + v0 + vn, out + v0);
}

}  // namespace ember::formats::modelbin
