// model.bin writer: create-local-model.py's output, byte for byte, streamed tensor by tensor.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "ember/core/error.h"
#include "ember/formats/modelbin.h"
#include "ember/formats/safetensors.h"

namespace ember::formats::modelbin {

namespace {

namespace fs = std::filesystem;
using safetensors::Checkpoint;

// The names create-local-model.py's o200k_gptoss decodes for ids 199998..200013 (its table also
// maps "<|reversed200008|>" to 200008; tiktoken 0.14.0 decodes 200008 as "<|message|>", observed
// on the reference run recorded in tests/data/modelbin/golden.json). Ids whose name has no UUID
// get the zero UUID.
constexpr const char* kReferenceSpecialNames[kNumTokens - kNumTextTokens] = {
    "<|reversed199998|>", "<|endoftext|>",      "<|untrusted|>",      "<|endofuntrusted|>",
    "<|return|>",         "<|constrain|>",      "<|reversed200004|>", "<|channel|>",
    "<|start|>",          "<|end|>",            "<|message|>",        "<|reversed200009|>",
    "<|reversed200010|>", "<|reversed200011|>", "<|call|>",           "<|refusal|>"};

// Counts the absolute offset and pads relative to it (write_padding in the reference).
class Writer {
 public:
  Writer(const std::string& path, uint64_t total, const std::function<void(uint64_t, uint64_t)>& progress)
      : path_(path), total_(total), progress_(progress) {
    f_ = std::fopen(path.c_str(), "wb");
    if (!f_) throw_error("{}: cannot create: {}", path, std::strerror(errno));
    std::setvbuf(f_, nullptr, _IOFBF, 1 << 22);
  }
  ~Writer() {
    if (f_) std::fclose(f_);
  }
  void write(const void* data, uint64_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    while (n > 0) {
      const uint64_t m = std::min<uint64_t>(n, 8u << 20);
      if (std::fwrite(p, 1, m, f_) != m) throw_error("{}: write failed: {}", path_, std::strerror(errno));
      p += m, n -= m, pos_ += m;
      if (progress_) progress_(pos_, total_);
    }
  }
  void u32(uint32_t v) {
    const uint8_t b[4] = {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
    write(b, 4);
  }
  void f32(float f) {
    uint32_t v;
    std::memcpy(&v, &f, 4);
    u32(v);
  }
  void pad(uint64_t alignment) {
    static const uint8_t zeros[kPageAlignment] = {};
    write(zeros, (alignment - pos_ % alignment) % alignment);
  }
  // Pads to where the layout puts `s` (checking that the reference's padding rule lands there).
  void seek_section(const Section& s, bool padded) {
    if (padded) pad(kTensorAlignment);
    EMBER_CHECK(pos_ == s.offset, "{}: internal error: section {} at offset {}, layout says {}", path_, s.name, pos_,
                s.offset);
  }
  void close() {
    if (std::fflush(f_) != 0 || ::fsync(fileno(f_)) != 0) throw_error("{}: write failed: {}", path_, std::strerror(errno));
    const int rc = std::fclose(f_);
    f_ = nullptr;
    if (rc != 0) throw_error("{}: close failed: {}", path_, std::strerror(errno));
  }
  uint64_t pos() const { return pos_; }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  uint64_t pos_ = 0, total_;
  std::function<void(uint64_t, uint64_t)> progress_;
};

}  // namespace

ConfigValues read_config_json(const std::string& dir) {
  const std::string path = (fs::path(dir) / "config.json").string();
  std::ifstream in(path);
  EMBER_CHECK(in.good(), "{}: no config.json in the checkpoint directory", dir);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw_error("{}: not valid JSON: {}", path, e.what());
  }
  // The fields create-local-model.py reads (the original layout's names).
  auto num = [&](const char* key) -> double {
    EMBER_CHECK(j.is_object() && j.contains(key) && j[key].is_number(),
                "{}: field '{}' is missing or not a number (model.bin needs the original gpt-oss config.json)", path,
                key);
    return j[key].get<double>();
  };
  auto integer = [&](const char* key) -> int64_t {
    const double v = num(key);
    EMBER_CHECK(v >= 1 && v <= double(UINT32_MAX) && v == double(int64_t(v)), "{}: field '{}' = {} is not a positive u32",
                path, key, v);
    return int64_t(v);
  };
  ConfigValues c{};
  c.num_hidden_layers = integer("num_hidden_layers");
  c.num_experts = integer("num_experts");
  c.num_attention_heads = integer("num_attention_heads");
  c.num_key_value_heads = integer("num_key_value_heads");
  c.head_dim = integer("head_dim");
  c.hidden_size = integer("hidden_size");
  c.intermediate_size = integer("intermediate_size");
  c.swiglu_limit = j.contains("swiglu_limit") ? num("swiglu_limit") : 7.0;
  c.rope_theta = num("rope_theta");
  c.sliding_window = integer("sliding_window");
  c.initial_context_length = integer("initial_context_length");
  c.rope_scaling_factor = num("rope_scaling_factor");
  c.rope_ntk_alpha = num("rope_ntk_alpha");
  c.rope_ntk_beta = num("rope_ntk_beta");
  // create-local-model.py: assert head_dim == 64 (the QKV transform folds 1/sqrt(64) into q and k).
  EMBER_CHECK(c.head_dim == 64, "{}: head_dim is {}; model.bin requires 64", path, c.head_dim);
  EMBER_CHECK(c.rope_scaling_factor > 0 && c.rope_theta > 1 && c.rope_ntk_alpha > 0 && c.rope_ntk_beta > 0,
              "{}: rope_scaling_factor, rope_theta, rope_ntk_alpha and rope_ntk_beta must be positive", path);
  return c;
}

namespace {

// A tensor's bytes after checking its dtype and shape; errors name the tensor.
const uint8_t* tensor_bytes(const Checkpoint& ckpt, const std::string& name, const char* dtype,
                            const std::vector<int64_t>& shape) {
  EMBER_CHECK(ckpt.contains(name), "{}: missing tensor '{}' (model.bin is made from the original gpt-oss layout)",
              ckpt.path(), name);
  const auto& info = ckpt.info(name);
  EMBER_CHECK(info.dtype == dtype, "{}: tensor '{}' has dtype {}, model.bin needs {}", ckpt.file_of(name).path(), name,
              info.dtype, dtype);
  EMBER_CHECK(info.shape == shape, "{}: tensor '{}' has shape [{}], expected [{}]", ckpt.file_of(name).path(), name,
              fmt::join(info.shape, ", "), fmt::join(shape, ", "));
  return ckpt.file_of(name).raw(info);
}

}  // namespace

ExportStats export_checkpoint(const std::string& src_dir, const std::string& dst, const ExportOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  std::error_code ec;
  EMBER_CHECK(fs::is_directory(src_dir, ec), "{}: expected a checkpoint directory (config.json + *.safetensors)",
              src_dir);
  EMBER_CHECK(options.force || !fs::exists(dst, ec), "{}: already exists (pass --force to overwrite)", dst);
  EMBER_CHECK(!fs::is_directory(dst, ec), "{}: is a directory", dst);
  const ConfigValues c = read_config_json(src_dir);
  const auto ckpt = Checkpoint::open(src_dir);

  std::string tok_path = options.tokenizer_path;
  if (tok_path.empty()) {
    auto found = tokenizer::find_tokenizer_file(src_dir);
    EMBER_CHECK(found.has_value(), "{}: no tokenizer found beside the checkpoint; pass --tokenizer o200k_base.tiktoken",
                src_dir);
    tok_path = *found;
  }
  const auto tok = tokenizer::Tokenizer::load(tok_path);
  EMBER_CHECK(tok.num_ranks() >= kNumTextTokens, "{}: {} mergeable tokens; model.bin's o200k_gptoss needs ids 0..{}",
              tok_path, tok.num_ranks(), kNumTextTokens - 1);

  TokenizerHeader th;
  th.num_text_tokens = kNumTextTokens;
  th.num_special_tokens = kNumTokens - kNumTextTokens;
  const std::string pattern = tokenizer::kO200kPattern;  // the reference writes o200k_base's pattern
  th.regex_size = uint32_t(pattern.size() + 1);
  uint64_t tokens_size = 0;
  for (uint32_t t = 0; t < kNumTextTokens; ++t) {
    EMBER_CHECK(!tok.is_special(t), "{}: id {} is a special token; model.bin needs text tokens 0..{}", tok_path, t,
                kNumTextTokens - 1);
    const size_t n = tok.token_bytes(t).size();
    EMBER_CHECK(n > 0 && n <= 65535, "{}: token {} has {} bytes (model.bin stores 1..65535)", tok_path, t, n);
    tokens_size += 2 + n;
  }
  th.tokens_size = uint32_t(tokens_size);
  const ModelHeader mh = model_header_for(c);
  const Layout L = Layout::compute(mh, th, dst);

  const int64_t H = c.hidden_size, I = c.intermediate_size, E = c.num_experts, nq = c.num_attention_heads,
                nkv = c.num_key_value_heads, hd = c.head_dim;
  const int64_t qkv_rows = hd * (nq + 2 * nkv);
  // Preconditions first, so that a refused checkpoint leaves no partial file behind.
  for (const char* name : {"embedding.weight", "unembedding.weight"}) {
    EMBER_CHECK(ckpt.contains(name), "{}: missing tensor '{}' (model.bin is made from the original gpt-oss layout)",
                ckpt.path(), name);
    const auto& info = ckpt.info(name);
    EMBER_CHECK(info.shape.size() == 2 && info.shape[0] >= int64_t(kNumTokens) && info.shape[1] == H,
                "{}: tensor '{}' has shape [{}]; model.bin needs at least {} rows of {}", ckpt.file_of(name).path(),
                name, fmt::join(info.shape, ", "), kNumTokens, H);
    tensor_bytes(ckpt, name, "BF16", info.shape);
  }
  for (int64_t n = 0; n < c.num_hidden_layers; ++n) {
    const std::string p = "block." + std::to_string(n) + ".mlp.";
    for (auto [kind, rows, cols] : {std::tuple{"mlp1", 2 * I, H}, std::tuple{"mlp2", H, I}}) {
      const std::string name = p + kind + "_weight.scales";
      const uint8_t* s = tensor_bytes(ckpt, name, "U8", {E, rows, cols / 32});
      uint8_t lo = 255, hi = 0;
      for (int64_t i = 0; i < E * rows * (cols / 32); ++i) lo = std::min(lo, s[i]), hi = std::max(hi, s[i]);
      // The reference asserts min < 254 - 14; a scale above 255 - 14 would wrap in its u8 add.
      EMBER_CHECK(lo < 254 - kUe8Offset && hi <= 255 - kUe8Offset,
                  "{}: tensor '{}' has scales in [{}, {}]; model.bin adds {} to each, so they must be <= {}",
                  ckpt.file_of(name).path(), name, lo, hi, kUe8Offset, 255 - kUe8Offset);
    }
  }

  const std::string tmp = dst + ".partial";
  ExportStats stats;
  try {
    Writer w(tmp, L.file_size, options.progress);
    static const char kMagic[12] = {'G', 'P', 'T', '-', 'O', 'S', 'S', ' ', 'v', '1', '.', '0'};
    w.write(kMagic, 12);
    w.u32(0);
    w.write(kModelUuid.data(), 16);
    for (uint32_t v : {mh.context_length, mh.num_blocks, mh.num_experts, mh.num_active_experts, mh.embedding_dim,
                       mh.mlp_dim})
      w.u32(v);
    w.f32(mh.swiglu_limit);
    for (uint32_t v : {mh.head_dim, mh.num_heads, mh.num_kv_heads, mh.attention_window}) w.u32(v);
    for (float v : {mh.rope_theta, mh.interpolation_scale, mh.yarn_offset, mh.yarn_scale, mh.yarn_multiplier,
                    mh.rmsnorm_epsilon})
      w.f32(v);
    w.write(kLayoutUuid.data(), 16);
    w.write(kTokenizerUuid.data(), 16);
    for (uint32_t v : {th.num_special_tokens, th.num_text_tokens, th.regex_size, th.tokens_size}) w.u32(v);
    for (const char* name : kReferenceSpecialNames) {
      Uuid u{};
      for (const auto& [n, uuid] : special_token_uuids())
        if (n == name) u = uuid;
      w.write(u.data(), 16);
    }
    w.write(pattern.c_str(), pattern.size() + 1);
    for (uint32_t t = 0; t < kNumTextTokens; ++t) {
      const std::string_view b = tok.token_bytes(t);
      const uint8_t len[2] = {uint8_t(b.size()), uint8_t(b.size() >> 8)};
      w.write(len, 2);
      w.write(b.data(), b.size());
    }
    w.pad(kPageAlignment);

    auto copy = [&](const std::string& name, const char* dtype, const std::vector<int64_t>& shape, bool padded) {
      const Section& s = L.section(name);
      w.seek_section(s, padded);
      w.write(tensor_bytes(ckpt, name, dtype, shape), s.size);
    };
    auto emb = ckpt.info("embedding.weight").shape;
    copy("embedding.weight", "BF16", emb, true);  // the first 200014 rows
    std::vector<uint16_t> in, out;
    for (int64_t n = 0; n < c.num_hidden_layers; ++n) {
      const std::string p = "block." + std::to_string(n) + ".";
      copy(p + "attn.norm.scale", "BF16", {H}, true);
      for (auto [suffix, cols, padded] : {std::tuple{"weight", H, true}, std::tuple{"bias", int64_t(1), false}}) {
        const std::string name = p + "attn.qkv." + suffix;
        const std::vector<int64_t> shape = cols == 1 ? std::vector<int64_t>{qkv_rows} : std::vector<int64_t>{qkv_rows, H};
        const uint8_t* src = tensor_bytes(ckpt, name, "BF16", shape);
        in.resize(size_t(qkv_rows * cols));
        out.resize(in.size());
        std::memcpy(in.data(), src, in.size() * 2);
        qkv_transform(in.data(), out.data(), nq, nkv, hd, cols, false);
        w.seek_section(L.section(name), padded);
        w.write(out.data(), out.size() * 2);
      }
      copy(p + "attn.sinks", "BF16", {nq}, true);
      copy(p + "attn.out.weight", "BF16", {H, nq * hd}, true);
      copy(p + "attn.out.bias", "BF16", {H}, false);
      copy(p + "mlp.norm.scale", "BF16", {H}, true);
      copy(p + "mlp.gate.weight", "BF16", {E, H}, true);
      copy(p + "mlp.gate.bias", "BF16", {E}, false);
    }
    copy("norm.scale", "BF16", {H}, true);
    copy("unembedding.weight", "BF16", ckpt.info("unembedding.weight").shape, true);

    std::vector<uint8_t> scales;
    for (int64_t n = 0; n < c.num_hidden_layers; ++n) {
      const std::string p = "block." + std::to_string(n) + ".mlp.";
      struct Src {
        std::string name;
        const uint8_t* bytes;
        bool scale;
        const Section* section = nullptr;
      };
      std::vector<Src> srcs = {
          {p + "mlp1_weight.blocks", tensor_bytes(ckpt, p + "mlp1_weight.blocks", "U8", {E, 2 * I, H / 32, 16}), false},
          {p + "mlp1_weight.scales", tensor_bytes(ckpt, p + "mlp1_weight.scales", "U8", {E, 2 * I, H / 32}), true},
          {p + "mlp1_bias", tensor_bytes(ckpt, p + "mlp1_bias", "BF16", {E, 2 * I}), false},
          {p + "mlp2_weight.blocks", tensor_bytes(ckpt, p + "mlp2_weight.blocks", "U8", {E, H, I / 32, 16}), false},
          {p + "mlp2_weight.scales", tensor_bytes(ckpt, p + "mlp2_weight.scales", "U8", {E, H, I / 32}), true},
          {p + "mlp2_bias", tensor_bytes(ckpt, p + "mlp2_bias", "BF16", {E, H}), false},
      };
      for (auto& src : srcs) src.section = &L.section(src.name);
      w.pad(kPageAlignment);
      for (int64_t e = 0; e < E; ++e)
        for (const auto& src : srcs) {
          const Section& s = *src.section;
          w.pad(kTensorAlignment);
          EMBER_CHECK(w.pos() == s.offset + uint64_t(e) * s.stride, "{}: internal error: {} expert {} misplaced", dst,
                      s.name, e);
          const uint8_t* b = src.bytes + uint64_t(e) * s.size;
          if (src.scale) {
            scales.assign(b, b + s.size);
            for (auto& v : scales) v = uint8_t(v + kUe8Offset);
            w.write(scales.data(), scales.size());
          } else {
            w.write(b, s.size);
          }
        }
    }
    EMBER_CHECK(w.pos() == L.file_size, "{}: internal error: wrote {} bytes, layout says {}", dst, w.pos(),
                L.file_size);
    w.close();
    stats.bytes = L.file_size;
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
  fs::rename(tmp, dst, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw_error("{}: cannot rename the finished file into place: {}", dst, ec.message());
  }
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

}  // namespace ember::formats::modelbin
