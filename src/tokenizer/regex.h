#pragma once
// The pre-tokenizer: a PCRE2 pattern (UTF + Unicode properties, JIT) applied to valid UTF-8.
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace ember::tokenizer::detail {

class Pattern {
 public:
  // `pattern` in tiktoken's (Rust regex) syntax; `\s` is widened to Unicode White_Space, which
  // includes U+0085 where PCRE2's Unicode \s does not. Errors give PCRE2's message and offset.
  explicit Pattern(const std::string& pattern);
  ~Pattern();
  Pattern(const Pattern&) = delete;
  Pattern& operator=(const Pattern&) = delete;

  // fn(begin, end) for each match of `text` (valid UTF-8) from left to right, and for any text
  // between matches (never for the o200k pattern, which matches every character).
  void split(std::string_view text, const std::function<void(size_t, size_t)>& fn) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Rewrites tiktoken's pattern for PCRE2 (see Pattern).
std::string to_pcre2(const std::string& pattern);

// Bytes of the valid UTF-8 sequence starting at text[i] (1..4), or 0 if none starts there
// (Unicode's well-formed table: no overlongs, no surrogates, nothing above U+10FFFF).
size_t utf8_sequence_length(std::string_view text, size_t i);

}  // namespace ember::tokenizer::detail
