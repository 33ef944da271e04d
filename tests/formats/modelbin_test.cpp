// model.bin: byte parity with OpenAI's exporter, the reader's checks on malformed files, the
// embedded tokenizer, and running the model from model.bin.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "ember/formats/modelbin.h"
#include "ember/formats/safetensors.h"
#include "ember/models/gpt_oss.h"
#include "test_util.h"

namespace ember {
namespace {

namespace mb = formats::modelbin;
namespace fs = std::filesystem;

// FIPS 180-4 SHA-256, enough for comparing files with the reference hashes.
std::string sha256_file(const std::string& path) {
  static const uint32_t k[64] = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
      0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
      0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
      0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
      0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
      0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
      0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
      0xc67178f2};
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  auto rotr = [](uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };
  auto block = [&](const uint8_t* p) {
    uint32_t w[64];
    for (int i = 0; i < 16; ++i) w[i] = uint32_t(p[4 * i]) << 24 | uint32_t(p[4 * i + 1]) << 16 | uint32_t(p[4 * i + 2]) << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; ++i) {
      const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; ++i) {
      const uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
      const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      hh = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
  };
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> buf(1 << 20);
  uint64_t total = 0;
  size_t have = 0;
  while (in) {
    in.read(reinterpret_cast<char*>(buf.data()), std::streamsize(buf.size()));
    have = size_t(in.gcount());
    total += have;
    if (have < buf.size()) break;
    for (size_t i = 0; i < have; i += 64) block(buf.data() + i);
    have = 0;
  }
  const size_t full = have / 64 * 64;
  for (size_t i = 0; i < full; i += 64) block(buf.data() + i);
  std::vector<uint8_t> tail(buf.begin() + long(full), buf.begin() + long(have));
  tail.push_back(0x80);
  while (tail.size() % 64 != 56) tail.push_back(0);
  for (int i = 7; i >= 0; --i) tail.push_back(uint8_t((total * 8) >> (8 * i)));
  for (size_t i = 0; i < tail.size(); i += 64) block(tail.data() + i);
  std::string out;
  for (uint32_t v : h) out += fmt::format("{:08x}", v);
  return out;
}

TEST(ModelBinSha256, KnownVectors) {
  test::TempDir dir;
  auto hash = [&](const std::string& text) {
    std::ofstream(dir.file("x"), std::ios::binary) << text;
    return sha256_file(dir.file("x"));
  };
  EXPECT_EQ(hash(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hash(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// The fixtures of tests/golden/modelbin_golden.py (FIXTURES there): `ember fixture --preset custom`.
models::gpt_oss::Config fixture_config(const nlohmann::json& args) {
  auto c = models::gpt_oss::preset("tiny");
  std::vector<std::string> a = args.get<std::vector<std::string>>();
  for (size_t i = 0; i + 1 < a.size(); i += 2) {
    const int64_t v = std::stoll(a[i + 1]);
    const std::string& k = a[i];
    if (k == "--layers") c.num_hidden_layers = v;
    else if (k == "--experts") c.num_experts = v;
    else if (k == "--hidden") c.hidden_size = v;
    else if (k == "--intermediate") c.intermediate_size = v;
    else if (k == "--heads") c.num_attention_heads = v;
    else if (k == "--kv-heads") c.num_key_value_heads = v;
    else if (k == "--head-dim") c.head_dim = v;
    else if (k == "--vocab") c.vocab_size = v;
    else if (k == "--window") c.sliding_window = v;
    else ADD_FAILURE() << "unknown fixture argument " << k;
  }
  return c;
}

nlohmann::json golden() {
  std::ifstream in(std::string(EMBER_TEST_DATA_DIR) + "/modelbin/golden.json");
  return nlohmann::json::parse(in);
}

TEST(ModelBinExport, ByteParityWithReferenceExporter) {
  auto vocab = test::o200k_tiktoken_path();
  if (!vocab) GTEST_SKIP() << "o200k_base.tiktoken not found (scripts/fetch-vocab)";
  const auto g = golden();
  ASSERT_EQ(g["fixtures"].size(), 2u);
  for (const auto& [name, fx] : g["fixtures"].items()) {
    SCOPED_TRACE(name);
    test::TempDir dir;
    const auto config = fixture_config(fx["args"]);
    models::gpt_oss::write_fixture(config, dir.file("ckpt"), fx["seed"].get<uint64_t>());
    EXPECT_EQ(sha256_file(dir.file("ckpt/model.safetensors")), fx["safetensors_sha256"].get<std::string>())
        << "the fixture generator changed; regenerate tests/data/modelbin/golden.json";
    mb::ExportOptions opts;
    opts.tokenizer_path = *vocab;
    const auto stats = mb::export_checkpoint(dir.file("ckpt"), dir.file("model.bin"), opts);
    EXPECT_EQ(stats.bytes, fx["size"].get<uint64_t>());
    EXPECT_EQ(fs::file_size(dir.file("model.bin")), fx["size"].get<uint64_t>());
    EXPECT_EQ(sha256_file(dir.file("model.bin")), fx["sha256"].get<std::string>());
    std::printf("[ export ] %s: %.1f MB in %.3f s = %.0f MB/s\n", name.c_str(), double(stats.bytes) / 1e6,
                stats.seconds, double(stats.bytes) / 1e6 / std::max(stats.seconds, 1e-9));

    // The reader accepts it, finds nothing wrong, and every tensor matches the source.
    const auto file = mb::File::open(dir.file("model.bin"));
    EXPECT_TRUE(mb::check_structure(file).empty());
    EXPECT_TRUE(mb::compare_with_checkpoint(file, dir.file("ckpt")).empty());
    EXPECT_EQ(file.layout().file_size, fx["size"].get<uint64_t>());
    EXPECT_EQ(file.model_header().num_blocks, uint32_t(config.num_hidden_layers));
    EXPECT_EQ(file.tokenizer_header().vocabulary_size(), mb::kNumTokens);
  }
}

TEST(ModelBinExport, RefusesWhatTheReferenceRefuses) {
  auto vocab = test::o200k_tiktoken_path();
  if (!vocab) GTEST_SKIP() << "o200k_base.tiktoken not found (scripts/fetch-vocab)";
  test::TempDir dir;
  mb::ExportOptions opts;
  opts.tokenizer_path = *vocab;
  auto expect_error = [&](const std::string& src, const std::string& needle) {
    try {
      mb::export_checkpoint(src, dir.file("out.bin"), opts);
      ADD_FAILURE() << "no error, expected one naming " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(dir.file("out.bin")));
    EXPECT_FALSE(fs::exists(dir.file("out.bin.partial")));
  };
  auto c = models::gpt_oss::preset("tiny");  // head_dim 32, vocab 512
  c.num_hidden_layers = 1;
  models::gpt_oss::write_fixture(c, dir.file("hd32"), 1);
  expect_error(dir.file("hd32"), "head_dim");
  c.head_dim = 64;
  c.num_attention_heads = 2, c.num_key_value_heads = 1;
  models::gpt_oss::write_fixture(c, dir.file("v512"), 1);
  expect_error(dir.file("v512"), "embedding.weight");
}

TEST(ModelBinExport, RefusesToOverwriteWithoutForce) {
  auto vocab = test::o200k_tiktoken_path();
  if (!vocab) GTEST_SKIP() << "o200k_base.tiktoken not found (scripts/fetch-vocab)";
  test::TempDir dir;
  std::ofstream(dir.file("out.bin")) << "keep";
  mb::ExportOptions opts;
  opts.tokenizer_path = *vocab;
  EXPECT_THROW(mb::export_checkpoint(dir.path(), dir.file("out.bin"), opts), Error);
  std::ifstream in(dir.file("out.bin"));
  std::string kept;
  in >> kept;
  EXPECT_EQ(kept, "keep");
}

TEST(ModelBinLayout, QkvTransformRoundTripsAndMatchesTheReference) {
  // 2 q heads, 1 kv head, head_dim 64, 3 columns; values exact in bf16.
  const int64_t nq = 2, nkv = 1, hd = 64, cols = 3, rows = hd * (nq + 2 * nkv);
  std::vector<uint16_t> in(size_t(rows * cols)), out(in.size()), back(in.size());
  for (size_t i = 0; i < in.size(); ++i) in[i] = f32_to_bf16(float(int(i % 97) - 48) * 0.25f);
  mb::qkv_transform(in.data(), out.data(), nq, nkv, hd, cols, false);
  // Reference: view(heads, 2, 32, cols).transpose(1, 2); q * 0.5, k * 0.25; v as is.
  for (int64_t h = 0; h < nq + nkv; ++h)
    for (int64_t i = 0; i < 32; ++i)
      for (int64_t j = 0; j < 2; ++j)
        for (int64_t c = 0; c < cols; ++c) {
          const float x = bf16_to_f32(in[size_t(((h * 64) + j * 32 + i) * cols + c)]) * (h < nq ? 0.5f : 0.25f);
          EXPECT_EQ(bf16_to_f32(out[size_t((h * 64 + 2 * i + j) * cols + c)]), x);
        }
  for (int64_t r = (nq + nkv) * hd; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) EXPECT_EQ(out[size_t(r * cols + c)], in[size_t(r * cols + c)]);
  mb::qkv_transform(out.data(), back.data(), nq, nkv, hd, cols, true);
  EXPECT_EQ(back, in);
}

// ---- malformed files: a toy model.bin built from the layout (no vocabulary file needed) ----

struct Toy {
  mb::ModelHeader m;
  mb::TokenizerHeader t;
  std::vector<std::string> tokens;  // the 256 single bytes, then "ab", "hello"
  std::string regex = "\\S+|\\s+";
};

void put_u32(std::vector<uint8_t>& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(uint8_t(v >> (8 * i)));
}
void put_f32(std::vector<uint8_t>& b, float f) {
  uint32_t v;
  std::memcpy(&v, &f, 4);
  put_u32(b, v);
}

Toy toy_headers() {
  Toy toy;
  for (int i = 0; i < 256; ++i) toy.tokens.push_back(std::string(1, char(i)));
  toy.tokens.push_back("ab");
  toy.tokens.push_back("hello");
  mb::ConfigValues c{2, 4, 32, 32, 64, 2, 1, 16, 4096, 7.0, 150000.0, 32.0, 1.0, 32.0};
  toy.m = mb::model_header_for(c);
  toy.t.num_text_tokens = uint32_t(toy.tokens.size());
  toy.t.num_special_tokens = 2;
  toy.t.regex_size = uint32_t(toy.regex.size() + 1);
  for (const auto& s : toy.tokens) toy.t.tokens_size += uint32_t(2 + s.size());
  return toy;
}

// The toy's headers and tokenizer, then weights where `body`'s layout puts them (default: its own).
std::vector<uint8_t> toy_bytes(const Toy& toy, const Toy* body = nullptr) {
  const uint8_t fill = 0x3c;
  const char magic[] = "GPT-OSS v1.0";
  std::vector<uint8_t> b(magic, magic + 12);
  b.reserve(1 << 16);
  put_u32(b, 0);
  b.insert(b.end(), mb::kModelUuid.begin(), mb::kModelUuid.end());
  const auto& m = toy.m;
  for (uint32_t v : {m.context_length, m.num_blocks, m.num_experts, m.num_active_experts, m.embedding_dim, m.mlp_dim})
    put_u32(b, v);
  put_f32(b, m.swiglu_limit);
  for (uint32_t v : {m.head_dim, m.num_heads, m.num_kv_heads, m.attention_window}) put_u32(b, v);
  for (float v : {m.rope_theta, m.interpolation_scale, m.yarn_offset, m.yarn_scale, m.yarn_multiplier, m.rmsnorm_epsilon})
    put_f32(b, v);
  b.insert(b.end(), mb::kLayoutUuid.begin(), mb::kLayoutUuid.end());
  b.insert(b.end(), mb::kTokenizerUuid.begin(), mb::kTokenizerUuid.end());
  for (uint32_t v : {toy.t.num_special_tokens, toy.t.num_text_tokens, toy.t.regex_size, toy.t.tokens_size})
    put_u32(b, v);
  const auto& start = mb::special_token_uuids()[0].second;  // <|start|>
  b.insert(b.end(), start.begin(), start.end());
  b.insert(b.end(), 16, 0);
  b.insert(b.end(), toy.regex.begin(), toy.regex.end());
  b.push_back(0);
  for (const auto& s : toy.tokens) {
    b.push_back(uint8_t(s.size()));
    b.push_back(0);
    b.insert(b.end(), s.begin(), s.end());
  }
  const Toy& lt = body ? *body : toy;
  const auto L = mb::Layout::compute(lt.m, lt.t, "toy");
  b.resize(std::max<size_t>(b.size(), L.file_size), 0);
  for (const auto& s : L.sections)
    for (uint64_t r = 0; r < s.count; ++r) std::memset(b.data() + s.offset + r * s.stride, fill, s.size);
  return b;
}

mb::File parse(const std::vector<uint8_t>& bytes) {
  auto data = std::shared_ptr<uint8_t[]>(new uint8_t[std::max<size_t>(bytes.size(), 1)]);
  if (!bytes.empty()) std::memcpy(data.get(), bytes.data(), bytes.size());
  return mb::File::from_bytes(std::shared_ptr<const uint8_t>(data, data.get()), bytes.size(), "toy.bin");
}

void expect_error(const std::vector<uint8_t>& bytes, const std::string& needle) {
  try {
    parse(bytes);
    ADD_FAILURE() << "parsed; expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("toy.bin"), std::string::npos) << e.what();
  }
}

TEST(ModelBinReader, ToyFileParses) {
  const Toy toy = toy_headers();
  const auto bytes = toy_bytes(toy);
  const auto f = parse(bytes);
  EXPECT_TRUE(mb::check_structure(f).empty());
  EXPECT_EQ(f.regex(), toy.regex);
  EXPECT_EQ(f.token_bytes(257), "hello");
  EXPECT_THROW(f.token_bytes(258), Error);
  EXPECT_EQ(f.layout().weights_offset, mb::kPageAlignment);
  EXPECT_EQ(f.layout().sections.size(), 3u + 9 * 2 + 6 * 2);
  const auto tok = f.tokenizer();
  EXPECT_EQ(tok.special("<|start|>"), std::optional<tokenizer::Token>(258));
  EXPECT_EQ(tok.special("<|reserved_259|>"), std::optional<tokenizer::Token>(259));
  EXPECT_EQ(tok.vocab_size(), 260u);
  EXPECT_EQ(tok.token_bytes(256), "ab");
  EXPECT_EQ(tok.encode("hello ab"), (std::vector<tokenizer::Token>{257, ' ', 256}));
}

TEST(ModelBinReader, TruncatedAtEverySectionBoundary) {
  const Toy toy = toy_headers();
  const auto bytes = toy_bytes(toy);
  const auto L = mb::Layout::compute(toy.m, toy.t, "toy");
  std::vector<uint64_t> cuts = {0, 4, 12, 16, 31, 32, 100, 116, 132, 147, 148, L.special_uuids_offset + 8,
                                L.regex_offset, L.regex_offset + 3, L.tokens_offset, L.tokens_offset + 1,
                                L.tokenizer_end - 1, L.tokenizer_end, L.weights_offset};
  for (const auto& s : L.sections) {
    cuts.push_back(s.offset);
    cuts.push_back(s.end() - 1);
    if (s.count > 1) cuts.push_back(s.offset + s.stride);
  }
  for (uint64_t cut : cuts) {
    SCOPED_TRACE(cut);
    ASSERT_LT(cut, bytes.size());
    expect_error(std::vector<uint8_t>(bytes.begin(), bytes.begin() + long(cut)), cut < 12 ? "" : "");
  }
}

TEST(ModelBinReader, WrongMagicAndUuids) {
  const Toy toy = toy_headers();
  auto bytes = toy_bytes(toy);
  auto flip = [&](size_t at, const std::string& needle) {
    auto b = bytes;
    b[at] ^= 0x01;
    expect_error(b, needle);
  };
  flip(0, "magic");
  flip(11, "magic");
  flip(12, "must be 0");
  flip(16, "model UUID");
  flip(16 + 16 + 68, "layout UUID");
  flip(16 + 16 + 68 + 16 + 15, "tokenizer UUID");
}

TEST(ModelBinReader, InconsistentHeaderFields) {
  auto with = [](auto edit) {
    const Toy good = toy_headers();
    Toy toy = good;
    edit(toy);
    // The edited headers over the original body and size.
    auto b = toy_bytes(toy, &good);
    b.resize(toy_bytes(good).size());
    return b;
  };
  expect_error(with([](Toy& t) { t.m.num_blocks = 3; }), "truncated");
  expect_error(with([](Toy& t) { t.m.num_blocks = 0; }), "num_blocks");
  expect_error(with([](Toy& t) { t.m.num_experts = 0; }), "num_experts");
  expect_error(with([](Toy& t) { t.m.num_experts = 0xFFFFFFFFu; }), "num_experts");
  expect_error(with([](Toy& t) { t.m.num_active_experts = 5; }), "num_active_experts");
  expect_error(with([](Toy& t) { t.m.embedding_dim = 0x7FFFFFE0u; }), "embedding_dim");
  expect_error(with([](Toy& t) { t.m.embedding_dim = 48; }), "multiples");
  expect_error(with([](Toy& t) { t.m.head_dim = 32; }), "head_dim");
  expect_error(with([](Toy& t) { t.m.num_kv_heads = 3; }), "num_kv_heads");
  expect_error(with([](Toy& t) { t.m.rmsnorm_epsilon = std::nanf(""); }), "rmsnorm_epsilon");
  expect_error(with([](Toy& t) { t.m.interpolation_scale = 0; }), "interpolation_scale");
  expect_error(with([](Toy& t) { t.t.num_text_tokens = 0; }), "num_text_tokens");
  expect_error(with([](Toy& t) { t.t.num_text_tokens = 0xFFFFFFFFu; }), "num_text_tokens");
  expect_error(with([](Toy& t) { t.t.num_special_tokens = 0x10000000u; }), "num_special_tokens");
  expect_error(with([](Toy& t) { t.t.tokens_size += 1; }), "");
  expect_error(with([](Toy& t) { t.t.tokens_size = 0xFFFFFFFFu; }), "tokens_size");
  expect_error(with([](Toy& t) { t.t.regex_size += 1; }), "");
  expect_error(with([](Toy& t) { t.t.regex_size = 0; }), "regex_size");
}

TEST(ModelBinReader, TokenizerSectionAndFileSize) {
  Toy toy = toy_headers();
  auto regex_no_nul = toy_bytes(toy);
  const auto L = mb::Layout::compute(toy.m, toy.t, "toy");
  regex_no_nul[L.tokens_offset - 1] = 'x';
  expect_error(regex_no_nul, "NUL");
  auto zero_len = toy_bytes(toy);
  zero_len[L.tokens_offset] = 0;
  expect_error(zero_len, "");
  auto long_len = toy_bytes(toy);
  long_len[L.tokenizer_end - 7 + 1] = 0xFF;  // "hello"'s length: 0xFF05
  expect_error(long_len, "runs past");
  auto trailing = toy_bytes(toy);
  trailing.resize(trailing.size() + mb::kPageAlignment + 1, 0);
  expect_error(trailing, "file size");
  auto dirty_padding = toy_bytes(toy);
  dirty_padding[L.tokenizer_end] = 1;
  EXPECT_FALSE(mb::check_structure(parse(dirty_padding)).empty());
}

}  // namespace
}  // namespace ember

namespace ember {
namespace {

TEST(ModelBinModel, ConfigRecoveredFromHeader) {
  for (auto [alpha, beta, factor, eps] : {std::tuple{1.0, 32.0, 32.0, 1e-5}, std::tuple{0.5, 16.0, 8.0, 1e-5},
                                          std::tuple{2.0, 64.0, 4.0, 1e-5}}) {
    mb::ConfigValues v{24, 32, 2880, 2880, 64, 64, 8, 128, 4096, 7.0, 150000.0, factor, alpha, beta};
    const auto c = models::gpt_oss::config_from_modelbin(mb::model_header_for(v), mb::kNumTokens);
    EXPECT_EQ(c.rope_ntk_alpha, alpha);
    EXPECT_EQ(c.rope_ntk_beta, beta);
    EXPECT_EQ(c.rope_scaling_factor, factor);
    EXPECT_EQ(c.initial_context_length, 4096);
    EXPECT_EQ(c.rms_norm_eps, eps);
    EXPECT_EQ(c.rope_theta, 150000.0);
    EXPECT_EQ(c.swiglu_limit, 7.0);
    EXPECT_EQ(c.experts_per_token, 4);
    EXPECT_EQ(c.vocab_size, int64_t(mb::kNumTokens));
  }
}

TEST(ModelBinModel, LogitsMatchTheSafeTensorsRun) {
  auto vocab = test::o200k_tiktoken_path();
  if (!vocab) GTEST_SKIP() << "o200k_base.tiktoken not found (scripts/fetch-vocab)";
  const auto fx = golden()["fixtures"]["mb_b"];
  test::TempDir dir;
  models::gpt_oss::write_fixture(fixture_config(fx["args"]), dir.file("ckpt"), fx["seed"].get<uint64_t>());
  mb::ExportOptions opts;
  opts.tokenizer_path = *vocab;
  mb::export_checkpoint(dir.file("ckpt"), dir.file("model.bin"), opts);
  const auto st = models::gpt_oss::Model::load(dir.file("ckpt"));
  const auto bin = models::gpt_oss::Model::load(
      models::gpt_oss::resolve_checkpoint_dir(dir.file("model.bin")));  // dispatches on the magic
  const auto& a = st.config();
  const auto& b = bin.config();
  EXPECT_EQ(b.vocab_size, int64_t(mb::kNumTokens));
  EXPECT_EQ(b.rope_ntk_alpha, a.rope_ntk_alpha);
  EXPECT_EQ(b.rope_ntk_beta, a.rope_ntk_beta);
  EXPECT_EQ(b.initial_context_length, a.initial_context_length);
  EXPECT_EQ(b.context_length(), a.context_length());
  EXPECT_EQ(b.sliding_window, a.sliding_window);
  // 12 tokens: more than the window of 8, ids across the vocabulary including specials.
  const std::vector<int32_t> tokens = {0, 1, 17, 200005, 4096, 199997, 3, 200013, 150000, 42, 7, 9};
  const auto la = st.forward(tokens).to_vector<float>();
  const auto lb = bin.forward(tokens).to_vector<float>();
  const size_t Va = size_t(a.vocab_size), Vb = size_t(b.vocab_size);
  ASSERT_EQ(lb.size(), tokens.size() * Vb);
  float max_abs = 0, max_diff = 0;
  for (size_t t = 0; t < tokens.size(); ++t)
    for (size_t v = 0; v < Vb; ++v) {
      max_abs = std::max(max_abs, std::abs(la[t * Va + v]));
      max_diff = std::max(max_diff, std::abs(la[t * Va + v] - lb[t * Vb + v]));
    }
  std::printf("[ logits ] max |a| %g, max |a - b| %g\n", max_abs, max_diff);
  EXPECT_GT(max_abs, 0.1f);
  EXPECT_LE(max_diff, 1e-6f * max_abs);
}

}  // namespace
}  // namespace ember
