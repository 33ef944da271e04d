#include "ember/tokenizer/tokenizer.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <unordered_map>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "ember/core/error.h"
#include "ember/core/thread_pool.h"
#include "tokenizer/bpe.h"
#include "tokenizer/regex.h"

namespace ember::tokenizer {

// tiktoken_ext/openai_public.py, o200k_base.
const char* const kO200kPattern =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|\\p{N}{1,3}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*"
    "|\\s*[\\r\\n]+"
    "|\\s+(?!\\S)"
    "|\\s+";

// The GPT-2 byte-level pre-tokenizer (ByteLevel with use_regex in tokenizer.json).
static const char* const kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

std::map<std::string, Token> o200k_harmony_specials() {
  // gpt_oss/tokenizer.py: o200k_base's specials, the Harmony names, and the reserved range.
  std::map<std::string, Token> s = {
      {"<|startoftext|>", 199998}, {"<|endoftext|>", 199999}, {"<|return|>", 200002},
      {"<|constrain|>", 200003},   {"<|channel|>", 200005},   {"<|start|>", 200006},
      {"<|end|>", 200007},         {"<|message|>", 200008},   {"<|call|>", 200012},
      {"<|endofprompt|>", 200018},
  };
  for (Token id : {200000u, 200001u, 200004u, 200009u, 200010u, 200011u})
    s["<|reserved_" + std::to_string(id) + "|>"] = id;
  for (Token id = 200013; id < 201088; ++id) s["<|reserved_" + std::to_string(id) + "|>"] = id;
  return s;
}

namespace {
// Pieces that needed merges, remembered per thread (text repeats its words): bounded, and
// cleared when another tokenizer uses the thread.
struct PieceCache {
  const void* owner = nullptr;
  uint64_t generation = 0;
  std::unordered_map<std::string, std::vector<Token>> map;
};
thread_local PieceCache t_cache;
std::atomic<uint64_t> g_generation{1};
constexpr size_t kCacheEntries = 1 << 16, kCachePieceBytes = 64;
}  // namespace

struct Tokenizer::Impl {
  std::string source;
  std::string pattern_text;
  std::unique_ptr<detail::Pattern> pattern;
  detail::RankTable ranks;
  std::vector<std::string> id_bytes;   // ordinary tokens' bytes by id ("" where no token)
  bool has_ordinary(Token id) const { return id < id_bytes.size() && !id_bytes[id].empty(); }
  std::map<std::string, Token> specials;
  std::map<std::string, Token, std::less<>> special_lookup;
  std::map<Token, std::string> special_text;  // id -> literal used when decoding
  std::array<std::vector<size_t>, 256> special_lengths{};  // by first byte, longest first
  size_t num_ranks = 0;
  Token vocab_size = 0;
  uint64_t generation = g_generation++;  // tells thread-local piece caches apart

  void finish(std::map<std::string, Token> specials_in, std::string pattern_in);
  void encode_ordinary(std::string_view text, std::vector<Token>& out) const;
  void encode_piece(std::string_view piece, std::vector<Token>& out) const;
  template <typename Allowed>
  std::vector<Token> encode(std::string_view text, Allowed&& allowed) const;
};

void Tokenizer::Impl::finish(std::map<std::string, Token> specials_in, std::string pattern_in) {
  for (int b = 0; b < 256; ++b) {
    char c = static_cast<char>(b);
    if (ranks.find(std::string_view(&c, 1)) == detail::kNoRank)
      throw_error("{}: the vocabulary has no token for the single byte 0x{:02x} (byte-level BPE "
                  "needs all 256)", source, b);
  }
  num_ranks = ranks.size();
  vocab_size = static_cast<Token>(id_bytes.size());
  specials = std::move(specials_in);
  for (const auto& [name, id] : specials) {
    if (name.empty()) throw_error("{}: a special token has an empty name", source);
    if (has_ordinary(id))
      throw_error("{}: special token '{}' has id {}, which is also an ordinary token", source, name, id);
    special_lookup.emplace(name, id);
    auto& slot = special_text[id];
    // Two names for one id (o200k_harmony's 200018): decode to the one that is not a reserved name.
    if (slot.empty() || slot.starts_with("<|reserved_")) slot = name;
    vocab_size = std::max<Token>(vocab_size, id + 1);
    auto& lens = special_lengths[static_cast<unsigned char>(name[0])];
    if (std::find(lens.begin(), lens.end(), name.size()) == lens.end()) lens.push_back(name.size());
  }
  for (auto& lens : special_lengths) std::sort(lens.rbegin(), lens.rend());
  pattern_text = std::move(pattern_in);
  pattern = std::make_unique<detail::Pattern>(pattern_text);
}


void Tokenizer::Impl::encode_piece(std::string_view piece, std::vector<Token>& out) const {
  if (uint32_t r = ranks.find(piece); r != detail::kNoRank) {
    out.push_back(r);
    return;
  }
  bool cacheable = piece.size() <= kCachePieceBytes;
  if (cacheable) {
    if (t_cache.owner != this || t_cache.generation != generation) {
      t_cache.map.clear();
      t_cache.owner = this;
      t_cache.generation = generation;
    }
    if (auto it = t_cache.map.find(std::string(piece)); it != t_cache.map.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  size_t first = out.size();
  std::vector<uint32_t> bounds = detail::byte_pair_merge(piece, ranks);
  for (size_t i = 0; i + 1 < bounds.size(); ++i)
    out.push_back(ranks.find(piece.substr(bounds[i], bounds[i + 1] - bounds[i])));
  if (cacheable) {
    if (t_cache.map.size() >= kCacheEntries) t_cache.map.clear();
    t_cache.map.emplace(std::string(piece), std::vector<Token>(out.begin() + first, out.end()));
  }
}

void Tokenizer::Impl::encode_ordinary(std::string_view text, std::vector<Token>& out) const {
  // Valid UTF-8 runs go through the pre-tokenizer exactly as tiktoken does; a run of bytes that
  // are not valid UTF-8 is one piece of its own (byte-level BPE still covers it, and decoding
  // gives the bytes back).
  size_t i = 0;
  while (i < text.size()) {
    size_t j = i;
    while (j < text.size()) {
      size_t len = detail::utf8_sequence_length(text, j);
      if (len == 0) break;
      j += len;
    }
    if (j > i) {
      std::string_view run = text.substr(i, j - i);
      pattern->split(run, [&](size_t b, size_t e) { encode_piece(run.substr(b, e - b), out); });
      i = j;
    }
    size_t k = i;
    while (k < text.size() && detail::utf8_sequence_length(text, k) == 0) ++k;
    if (k > i) {
      encode_piece(text.substr(i, k - i), out);
      i = k;
    }
  }
}

template <typename Allowed>
std::vector<Token> Tokenizer::Impl::encode(std::string_view text, Allowed&& allowed) const {
  std::vector<Token> out;
  out.reserve(text.size() / 3 + 4);
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const auto& lens = special_lengths[static_cast<unsigned char>(text[i])];
    for (size_t len : lens) {
      if (i + len > text.size()) continue;
      auto it = special_lookup.find(text.substr(i, len));
      if (it == special_lookup.end() || !allowed(it->second)) continue;
      encode_ordinary(text.substr(start, i - start), out);
      out.push_back(it->second);
      start = i + len;
      i = start - 1;
      break;
    }
  }
  encode_ordinary(text.substr(start), out);
  return out;
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

std::vector<Token> Tokenizer::encode(std::string_view text, Specials specials) const {
  if (specials == Specials::kAsText || impl_->specials.empty()) {
    std::vector<Token> out;
    out.reserve(text.size() / 3 + 4);
    impl_->encode_ordinary(text, out);
    return out;
  }
  return impl_->encode(text, [](Token) { return true; });
}

std::vector<Token> Tokenizer::encode_with_specials(std::string_view text,
                                                   std::span<const std::string> allowed) const {
  std::set<Token> ids;
  for (const auto& name : allowed) ids.insert(special_or_throw(name));
  return impl_->encode(text, [&](Token t) { return ids.count(t) > 0; });
}

std::vector<std::vector<Token>> Tokenizer::encode_batch(std::span<const std::string_view> texts,
                                                        Specials specials) const {
  std::vector<std::vector<Token>> out(texts.size());
  parallel_for(static_cast<int64_t>(texts.size()), 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = encode(texts[i], specials);
  });
  return out;
}

std::string_view Tokenizer::token_bytes(Token token) const {
  if (impl_->has_ordinary(token)) return impl_->id_bytes[token];
  if (auto it = impl_->special_text.find(token); it != impl_->special_text.end()) return it->second;
  throw_error("tokenizer {}: token id {} is not in the vocabulary (size {})", impl_->source, token,
              impl_->vocab_size);
}

std::string Tokenizer::decode(std::span<const Token> tokens) const {
  std::string out;
  for (Token t : tokens) out.append(token_bytes(t));
  return out;
}

std::optional<Token> Tokenizer::special(std::string_view name) const {
  auto it = impl_->special_lookup.find(name);
  if (it == impl_->special_lookup.end()) return std::nullopt;
  return it->second;
}

Token Tokenizer::special_or_throw(std::string_view name) const {
  if (auto t = special(name)) return *t;
  throw_error("tokenizer {}: no special token '{}'", impl_->source, name);
}

bool Tokenizer::is_special(Token token) const { return impl_->special_text.count(token) > 0; }
const std::map<std::string, Token>& Tokenizer::specials() const { return impl_->specials; }
size_t Tokenizer::num_ranks() const { return impl_->num_ranks; }
Token Tokenizer::vocab_size() const { return impl_->vocab_size; }
const std::string& Tokenizer::pattern() const { return impl_->pattern_text; }
const std::string& Tokenizer::source() const { return impl_->source; }

// ---- loading ----

namespace {

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

bool base64_decode(std::string_view in, std::string& out) {
  out.clear();
  if (in.size() % 4 != 0 || in.empty()) return false;
  for (size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      char c = in[i + k];
      if (c == '=' && i + 4 == in.size() && k >= 2) {
        v[k] = 0;
        ++pad;
      } else {
        if (pad) return false;  // data after padding
        v[k] = base64_value(c);
        if (v[k] < 0) return false;
      }
    }
    uint32_t w = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out += static_cast<char>(w >> 16);
    if (pad < 2) out += static_cast<char>((w >> 8) & 0xFF);
    if (pad < 1) out += static_cast<char>(w & 0xFF);
  }
  return true;
}

std::string read_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_error("{}: cannot open {}", path, what);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw_error("{}: read error", path);
  return ss.str();
}

void add_ordinary(Tokenizer::Impl& impl, std::string_view bytes, Token id, const std::string& where) {
  if (id >= (1u << 31)) throw_error("{}: token id {} is out of range", where, id);
  if (bytes.empty()) throw_error("{}: token {} has no bytes", where, id);
  if (impl.has_ordinary(id)) throw_error("{}: token id {} appears twice", where, id);
  if (!impl.ranks.insert(bytes, id)) throw_error("{}: the bytes of token {} appear twice", where, id);
  if (id >= impl.id_bytes.size()) impl.id_bytes.resize(id + 1);
  impl.id_bytes[id] = std::string(bytes);
}

// GPT-2's byte-level alphabet: bytes that are printable stand for themselves, the rest are
// shifted to U+0100.. in order. Returns code point -> byte (-1 where none).
std::vector<int> byte_level_decoder() {
  std::vector<int> dec(512, -1);
  int shifted = 0;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    int cp = printable ? b : 256 + shifted++;
    dec[cp] = b;
  }
  return dec;
}

bool byte_level_to_bytes(std::string_view s, const std::vector<int>& dec, std::string& out) {
  out.clear();
  for (size_t i = 0; i < s.size();) {
    size_t len = detail::utf8_sequence_length(s, i);
    if (len == 0 || len > 2) return false;
    unsigned cp = static_cast<unsigned char>(s[i]);
    if (len == 2) cp = ((cp & 0x1F) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3F);
    if (cp >= dec.size() || dec[cp] < 0) return false;
    out += static_cast<char>(dec[cp]);
    i += len;
  }
  return true;
}

}  // namespace

Tokenizer Tokenizer::from_tiktoken_text(std::string_view text, const std::string& source,
                                        std::map<std::string, Token> specials, std::string pattern) {
  auto impl = std::make_unique<Impl>();
  impl->source = source;
  size_t line_no = 0;
  std::string bytes;
  for (size_t pos = 0; pos < text.size();) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    size_t sp = line.find(' ');
    std::string where = fmt::format("{}:{}", source, line_no);
    if (sp == std::string_view::npos || line.find(' ', sp + 1) != std::string_view::npos)
      throw_error("{}: expected 'base64-token rank'", where);
    if (!base64_decode(line.substr(0, sp), bytes)) throw_error("{}: invalid base64 token", where);
    std::string_view rank_text = line.substr(sp + 1);
    uint64_t rank = 0;
    auto [end, ec] = std::from_chars(rank_text.data(), rank_text.data() + rank_text.size(), rank);
    if (ec != std::errc() || end != rank_text.data() + rank_text.size() || rank >= (1u << 31))
      throw_error("{}: invalid rank '{}'", where, rank_text);
    add_ordinary(*impl, bytes, static_cast<Token>(rank), where);
  }
  if (impl->ranks.size() == 0) throw_error("{}: no tokens", source);
  impl->finish(std::move(specials), std::move(pattern));
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_token_bytes(std::span<const std::string_view> tokens, const std::string& source,
                                      std::map<std::string, Token> specials, std::string pattern) {
  auto impl = std::make_unique<Impl>();
  impl->source = source;
  for (size_t id = 0; id < tokens.size(); ++id) add_ordinary(*impl, tokens[id], static_cast<Token>(id), source);
  if (impl->ranks.size() == 0) throw_error("{}: no tokens", source);
  impl->finish(std::move(specials), std::move(pattern));
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_tiktoken(const std::string& path, std::map<std::string, Token> specials,
                                   std::string pattern) {
  return from_tiktoken_text(read_file(path, "tiktoken ranks file"), path, std::move(specials),
                            std::move(pattern));
}

namespace {
// tokenizer.json -> an unfinished Impl (ordinary tokens), its added tokens and its pattern.
struct HfVocabulary {
  std::unique_ptr<Tokenizer::Impl> impl;
  std::map<std::string, Token> specials;
  std::string pattern;
};
HfVocabulary read_hf_json(const std::string& path);
}  // namespace

Tokenizer Tokenizer::from_hf_json(const std::string& path) {
  HfVocabulary v = read_hf_json(path);
  v.impl->finish(std::move(v.specials), std::move(v.pattern));
  return Tokenizer(std::move(v.impl));
}

namespace {
HfVocabulary read_hf_json(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path, "tokenizer.json"));
  } catch (const nlohmann::json::exception& e) {
    throw_error("{}: not valid JSON: {}", path, e.what());
  }
  auto impl = std::make_unique<Tokenizer::Impl>();
  impl->source = path;
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object())
    throw_error("{}: no 'model' object", path);
  const auto& model = j["model"];
  if (model.value("type", "") != "BPE")
    throw_error("{}: model.type is '{}', only byte-level BPE is supported", path,
                model.contains("type") && model["type"].is_string() ? model["type"].get<std::string>() : "?");
  if (!model.contains("vocab") || !model["vocab"].is_object())
    throw_error("{}: model.vocab is missing or not an object", path);
  // tiktoken-derived vocabularies: a token's id is its merge rank (the merges list is implied).
  auto dec = byte_level_decoder();
  std::string bytes;
  for (const auto& [text, id] : model["vocab"].items()) {
    if (!id.is_number_unsigned())
      throw_error("{}: model.vocab['{}'] is not a non-negative integer id", path, text);
    if (!byte_level_to_bytes(text, dec, bytes))
      throw_error("{}: model.vocab key '{}' is not in the byte-level alphabet", path, text);
    add_ordinary(*impl, bytes, id.get<Token>(), fmt::format("{}: model.vocab['{}']", path, text));
  }
  std::map<std::string, Token> specials;
  if (j.contains("added_tokens")) {
    if (!j["added_tokens"].is_array()) throw_error("{}: added_tokens is not an array", path);
    for (const auto& t : j["added_tokens"]) {
      if (!t.is_object() || !t.contains("id") || !t["id"].is_number_unsigned() ||
          !t.contains("content") || !t["content"].is_string())
        throw_error("{}: an added_tokens entry lacks an integer 'id' or a string 'content'", path);
      Token id = t["id"].get<Token>();
      if (impl->has_ordinary(id)) continue;  // also in the vocab
      specials[t["content"].get<std::string>()] = id;
    }
  }
  // The pre-tokenizer: the first Split regex, else ByteLevel's own GPT-2 pattern.
  std::string pattern;
  std::function<void(const nlohmann::json&)> find_split = [&](const nlohmann::json& p) {
    if (!pattern.empty() || !p.is_object()) return;
    std::string type = p.value("type", "");
    if (type == "Sequence" && p.contains("pretokenizers") && p["pretokenizers"].is_array())
      for (const auto& q : p["pretokenizers"]) find_split(q);
    else if (type == "Split" && p.contains("pattern") && p["pattern"].is_object() &&
             p["pattern"].contains("Regex") && p["pattern"]["Regex"].is_string())
      pattern = p["pattern"]["Regex"].get<std::string>();
    else if (type == "ByteLevel" && p.value("use_regex", true))
      pattern = kGpt2Pattern;
  };
  if (j.contains("pre_tokenizer")) find_split(j["pre_tokenizer"]);
  if (pattern.empty()) throw_error("{}: no pre_tokenizer regex (Split or ByteLevel) found", path);
  return {std::move(impl), std::move(specials), std::move(pattern)};
}
}  // namespace

Tokenizer Tokenizer::o200k_harmony(const std::string& path) {
  if (std::filesystem::path(path).extension() == ".json") {
    // gpt-oss's own special table replaces the file's added_tokens (the same ids).
    HfVocabulary v = read_hf_json(path);
    v.impl->finish(o200k_harmony_specials(), std::move(v.pattern));
    return Tokenizer(std::move(v.impl));
  }
  return from_tiktoken(path, o200k_harmony_specials(), kO200kPattern);
}

Tokenizer Tokenizer::load(const std::string& path) {
  if (std::filesystem::path(path).extension() == ".json") return from_hf_json(path);
  Tokenizer tok = o200k_harmony(path);
  if (tok.num_ranks() != 199998)
    throw_error("{}: {} ranks, but a .tiktoken file is read as o200k_base (199998 ranks); give a "
                "tokenizer.json for other vocabularies", path, tok.num_ranks());
  return tok;
}

std::optional<std::string> find_tokenizer_file(const std::string& model_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path dir = fs::is_directory(model_path, ec) ? fs::path(model_path) : fs::path(model_path).parent_path();
  if (dir.empty()) dir = ".";
  for (int level = 0; level < 3 && !dir.empty(); ++level) {
    if (fs::is_regular_file(dir / "tokenizer.json", ec)) return (dir / "tokenizer.json").string();
    std::vector<fs::path> found;
    for (const auto& entry : fs::directory_iterator(dir, ec))
      if (entry.path().extension() == ".tiktoken") found.push_back(entry.path());
    if (!found.empty()) {
      std::sort(found.begin(), found.end());
      return found.front().string();
    }
    fs::path parent = fs::absolute(dir, ec).parent_path();
    if (parent == fs::absolute(dir, ec)) break;
    dir = parent;
  }
  return std::nullopt;
}

// ---- streaming ----

std::string StreamDecoder::push(Token token) {
  pending_.append(tokenizer_->token_bytes(token));
  // Hold back a trailing lead byte and its continuation bytes if they could still become a valid
  // sequence; everything before is released (invalid bytes pass through as they are).
  size_t n = pending_.size();
  size_t keep = 0;
  for (size_t back = 1; back <= std::min<size_t>(3, n); ++back) {
    unsigned char c = static_cast<unsigned char>(pending_[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back
    size_t need = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 1;
    if (c >= 0xF5) need = 1;
    if (need > back) {
      // Incomplete: hold back only if the bytes so far are a valid prefix.
      std::string probe = pending_.substr(n - back);
      bool prefix_ok = true;
      if (back >= 2) {
        unsigned char c1 = static_cast<unsigned char>(probe[1]);
        unsigned lo = 0x80, hi = 0xBF;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
        prefix_ok = c1 >= lo && c1 <= hi;
      }
      if (prefix_ok) keep = back;
    }
    break;
  }
  std::string out = pending_.substr(0, n - keep);
  pending_.erase(0, n - keep);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace ember::tokenizer
