// model.bin reader: maps the file, checks it against the layout its headers imply.
#include <algorithm>
#include <cstring>
#include <map>
#include <fstream>

#include "ember/core/error.h"
#include "ember/formats/modelbin.h"

namespace ember::formats::modelbin {

namespace {

constexpr char kMagic[12] = {'G', 'P', 'T', '-', 'O', 'S', 'S', ' ', 'v', '1', '.', '0'};

// Little-endian reads at a cursor that refuses to leave the file.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& name) : data_(data), size_(size), name_(name) {}
  const uint8_t* take(uint64_t n, const char* what) {
    EMBER_CHECK(n <= size_ && pos_ <= size_ - n, "{}: truncated: {} needs {} bytes at offset {}, the file has {}",
                name_, what, n, pos_, size_);
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  uint32_t u32(const char* what) {
    const uint8_t* p = take(4, what);
    return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
  }
  float f32(const char* what) {
    uint32_t v = u32(what);
    float f;
    std::memcpy(&f, &v, 4);
    return f;
  }
  Uuid uuid(const char* what) {
    Uuid u;
    std::memcpy(u.data(), take(16, what), 16);
    return u;
  }
  uint64_t pos() const { return pos_; }

 private:
  const uint8_t* data_;
  size_t size_;
  uint64_t pos_ = 0;
  const std::string& name_;
};

}  // namespace

bool File::has_magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char buf[12] = {};
  return in.read(buf, 12) && std::memcmp(buf, kMagic, 12) == 0;
}

File File::open(const std::string& path) {
  auto map = MappedFile::open(path);
  const uint8_t* data = map->data();
  const size_t size = map->size();
  File f = from_bytes(std::shared_ptr<const uint8_t>(map, data), size, path);
  return f;
}

File File::from_bytes(std::shared_ptr<const uint8_t> data, size_t size, const std::string& name) {
  File f;
  f.owner_ = data;
  f.data_ = data.get();
  f.size_ = size;
  f.name_ = name;
  Cursor c(f.data_, size, f.name_);
  const uint8_t* magic = c.take(12, "the file header");
  EMBER_CHECK(std::memcmp(magic, kMagic, 12) == 0, "{}: not a model.bin (no 'GPT-OSS v1.0' magic)", name);
  EMBER_CHECK(c.u32("the file header") == 0, "{}: file header: the u32 after the magic must be 0", name);
  auto expect_uuid = [&](const Uuid& want, const char* what) {
    const Uuid got = c.uuid(what);
    EMBER_CHECK(got == want, "{}: unsupported {} {} (expected {})", name, what, uuid_string(got), uuid_string(want));
  };
  expect_uuid(kModelUuid, "model UUID");
  ModelHeader m;
  const char* mh = "the model header";
  m.context_length = c.u32(mh), m.num_blocks = c.u32(mh), m.num_experts = c.u32(mh);
  m.num_active_experts = c.u32(mh), m.embedding_dim = c.u32(mh), m.mlp_dim = c.u32(mh);
  m.swiglu_limit = c.f32(mh);
  m.head_dim = c.u32(mh), m.num_heads = c.u32(mh), m.num_kv_heads = c.u32(mh), m.attention_window = c.u32(mh);
  m.rope_theta = c.f32(mh), m.interpolation_scale = c.f32(mh), m.yarn_offset = c.f32(mh);
  m.yarn_scale = c.f32(mh), m.yarn_multiplier = c.f32(mh), m.rmsnorm_epsilon = c.f32(mh);
  expect_uuid(kLayoutUuid, "layout UUID");
  expect_uuid(kTokenizerUuid, "tokenizer UUID");
  TokenizerHeader t;
  const char* th = "the tokenizer header";
  t.num_special_tokens = c.u32(th), t.num_text_tokens = c.u32(th), t.regex_size = c.u32(th), t.tokens_size = c.u32(th);
  f.layout_ = Layout::compute(m, t, name);
  const Layout& L = f.layout_;

  for (uint32_t i = 0; i < t.num_special_tokens; ++i) f.special_uuids_.push_back(c.uuid("the special-token UUIDs"));
  const uint8_t* regex = c.take(t.regex_size, "the tokenizer regex");
  EMBER_CHECK(regex[t.regex_size - 1] == 0 && std::memchr(regex, 0, t.regex_size - 1) == nullptr,
              "{}: the tokenizer regex ({} bytes at offset {}) must end in its only NUL byte", name, t.regex_size,
              L.regex_offset);
  f.token_offsets_.reserve(t.num_text_tokens);
  const uint64_t tokens_end = L.tokens_offset + t.tokens_size;
  EMBER_CHECK(tokens_end <= size, "{}: truncated: the text tokens end at offset {}, the file has {} bytes", name,
              tokens_end, size);
  uint64_t pos = L.tokens_offset;
  for (uint32_t id = 0; id < t.num_text_tokens; ++id) {
    EMBER_CHECK(pos + 2 <= tokens_end, "{}: text token {} starts past the end of the tokens section ({} bytes)", name,
                id, t.tokens_size);
    const uint32_t len = uint32_t(f.data_[pos]) | uint32_t(f.data_[pos + 1]) << 8;
    EMBER_CHECK(len > 0, "{}: text token {} has length 0", name, id);
    EMBER_CHECK(pos + 2 + len <= tokens_end, "{}: text token {} ({} bytes) runs past the tokens section", name, id,
                len);
    f.token_offsets_.push_back(pos);
    pos += 2 + len;
  }
  EMBER_CHECK(pos == tokens_end, "{}: the text tokens take {} bytes, the header says tokens_size {}", name,
              pos - L.tokens_offset, t.tokens_size);

  for (const auto& s : L.sections) {
    EMBER_CHECK(s.offset % kTensorAlignment == 0, "{}: section {} at offset {} is not 16-byte aligned", name, s.name,
                s.offset);
    EMBER_CHECK(s.end() <= size, "{}: truncated: section {} ends at offset {}, the file has {} bytes", name, s.name,
                s.end(), size);
  }
  EMBER_CHECK(size <= L.file_size + kPageAlignment,
              "{}: {} bytes follow the last tensor (ends at offset {}); header fields disagree with the file size",
              name, size - L.file_size, L.file_size);
  return f;
}

std::string_view File::regex() const {
  return {reinterpret_cast<const char*>(data_ + layout_.regex_offset), layout_.tokenizer.regex_size - 1};
}

std::string_view File::token_bytes(uint32_t id) const {
  EMBER_CHECK(id < token_offsets_.size(), "{}: token {} is not a text token (0..{})", name_, id,
              token_offsets_.size());
  const uint64_t p = token_offsets_[id];
  const uint32_t len = uint32_t(data_[p]) | uint32_t(data_[p + 1]) << 8;
  return {reinterpret_cast<const char*>(data_ + p + 2), len};
}

tokenizer::Tokenizer File::tokenizer() const {
  std::vector<std::string_view> tokens;
  tokens.reserve(token_offsets_.size());
  for (uint32_t id = 0; id < token_offsets_.size(); ++id) tokens.push_back(token_bytes(id));
  const auto harmony = tokenizer::o200k_harmony_specials();
  std::map<tokenizer::Token, std::string> harmony_by_id;
  for (const auto& [n, id] : harmony) harmony_by_id.emplace(id, n);
  std::map<std::string, tokenizer::Token> specials;
  for (uint32_t i = 0; i < special_uuids_.size(); ++i) {
    const tokenizer::Token id = layout_.tokenizer.num_text_tokens + i;
    std::optional<std::string> n = special_token_name(special_uuids_[i]);
    if (n && specials.count(*n)) n.reset();  // a UUID listed twice names its first id only
    if (!n) {
      auto it = harmony_by_id.find(id);
      n = it != harmony_by_id.end() && !specials.count(it->second) ? it->second : fmt::format("<|reserved_{}|>", id);
    }
    specials.emplace(*n, id);
  }
  return tokenizer::Tokenizer::from_token_bytes(tokens, name_, std::move(specials), std::string(regex()));
}

std::vector<std::string> check_structure(const File& f) {
  std::vector<std::string> problems;
  const Layout& L = f.layout();
  auto zeros = [&](uint64_t from, uint64_t to, const std::string& what) {
    for (uint64_t p = from; p < to && p < f.size(); ++p)
      if (f.data()[p] != 0) {
        problems.push_back(fmt::format("padding before {} (offset {}) is not zero", what, p));
        return;
      }
  };
  // Every record of every tensor, in file order; the bytes between them must be zero.
  std::vector<std::pair<uint64_t, const Section*>> records;
  for (const auto& s : L.sections)
    for (uint64_t r = 0; r < s.count; ++r) records.emplace_back(s.offset + r * s.stride, &s);
  std::sort(records.begin(), records.end());
  uint64_t prev = L.tokenizer_end;
  for (const auto& [start, s] : records) {
    if (start < prev) problems.push_back(fmt::format("section {} overlaps the previous one", s->name));
    else if (start > prev) zeros(prev, start, s->name);
    prev = start + s->size;
  }
  if (f.size() > prev) zeros(prev, f.size(), "the end of the file");
  std::map<std::string, size_t> seen;
  for (size_t i = 0; i < f.special_uuids().size(); ++i) {
    auto n = special_token_name(f.special_uuids()[i]);
    const bool zero = f.special_uuids()[i] == Uuid{};
    if (!n && !zero)
      problems.push_back(fmt::format("special token {} has an unknown UUID {}", L.tokenizer.num_text_tokens + i,
                                     uuid_string(f.special_uuids()[i])));
    if (n && seen.count(*n))
      problems.push_back(fmt::format("special token {} repeats the UUID of {} ({})", L.tokenizer.num_text_tokens + i,
                                     L.tokenizer.num_text_tokens + seen[*n], *n));
    if (n) seen.emplace(*n, i);
  }
  return problems;
}

}  // namespace ember::formats::modelbin
