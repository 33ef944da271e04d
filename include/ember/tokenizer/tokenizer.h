#pragma once
// Byte-level BPE over a tiktoken vocabulary (o200k_base / o200k_harmony), bit-compatible with
// tiktoken: the o200k pre-tokenizer regex (PCRE2, Unicode properties), merges by rank, special
// tokens matched only where the caller allows them. Decoding returns raw bytes.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ember::tokenizer {

using Token = uint32_t;

// What encode() does with text that spells a special token ("<|start|>" in user input).
enum class Specials {
  kAsText,  // default: plain text, encoded byte by byte like any other text
  kAllow,   // every special token's literal text becomes its id (for trusted templates)
};

class Tokenizer {
 public:
  // A tiktoken ranks file ("base64 rank" per line) plus special tokens (name -> id) and the
  // pre-tokenizer pattern (PCRE2 syntax). Errors name the file and the line.
  static Tokenizer from_tiktoken(const std::string& path, std::map<std::string, Token> specials,
                                 std::string pattern);
  // Ranks from memory (the same text format); `source` names it in errors.
  static Tokenizer from_tiktoken_text(std::string_view text, const std::string& source,
                                      std::map<std::string, Token> specials, std::string pattern);
  // Ranks as each id's bytes in memory (id = rank; model.bin's text tokens); `source` names them.
  static Tokenizer from_token_bytes(std::span<const std::string_view> tokens, const std::string& source,
                                    std::map<std::string, Token> specials, std::string pattern);
  // Hugging Face tokenizer.json of a byte-level BPE vocabulary (model.vocab + added_tokens).
  static Tokenizer from_hf_json(const std::string& path);
  // o200k_harmony: o200k_base ranks (a *.tiktoken file or a tokenizer.json) with gpt-oss's
  // special tokens (gpt_oss/tokenizer.py), reserved range included.
  static Tokenizer o200k_harmony(const std::string& path);
  // What a user hands ember: a tokenizer.json (its own added tokens), or o200k_base.tiktoken
  // (gpt-oss's vocabulary: o200k_harmony). Other *.tiktoken vocabularies are refused by name.
  static Tokenizer load(const std::string& path);

  // Tokens of `text`; specials as the policy says.
  std::vector<Token> encode(std::string_view text, Specials specials = Specials::kAsText) const;
  // Ids of the special tokens named in `text`'s literal occurrences, only those in `allowed`.
  std::vector<Token> encode_with_specials(std::string_view text,
                                          std::span<const std::string> allowed) const;
  // Many independent texts on ember's thread pool (the same ids as encode() one by one).
  std::vector<std::vector<Token>> encode_batch(std::span<const std::string_view> texts,
                                               Specials specials = Specials::kAsText) const;
  std::string decode(std::span<const Token> tokens) const;  // raw bytes, may be invalid UTF-8
  // Bytes of one token (special tokens: their literal text). Throws for unknown ids.
  std::string_view token_bytes(Token token) const;

  std::optional<Token> special(std::string_view name) const;  // "<|start|>" -> 200006
  Token special_or_throw(std::string_view name) const;
  bool is_special(Token token) const;
  const std::map<std::string, Token>& specials() const;
  size_t num_ranks() const;   // mergeable (ordinary) tokens
  Token vocab_size() const;   // 1 + largest id, specials included
  const std::string& pattern() const;
  const std::string& source() const;  // the file it was loaded from

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  struct Impl;

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Incremental detokenizer for streaming: bytes of an incomplete UTF-8 sequence at the end are held
// back until the next token completes them (invalid bytes are passed through as they are).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer) : tokenizer_(&tokenizer) {}
  std::string push(Token token);  // complete text so far not yet returned
  std::string flush();            // whatever is held back
 private:
  const Tokenizer* tokenizer_;
  std::string pending_;
};

// Pattern strings of tiktoken_ext/openai_public.py.
extern const char* const kO200kPattern;
// gpt-oss's o200k_harmony special tokens (name -> id), reserved names included.
std::map<std::string, Token> o200k_harmony_specials();

// Where a checkpoint's vocabulary lives: tokenizer.json or *.tiktoken beside `model_path` or in
// its parent directories (up to two levels). nullopt when none.
std::optional<std::string> find_tokenizer_file(const std::string& model_path);

}  // namespace ember::tokenizer
