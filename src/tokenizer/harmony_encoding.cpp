// Harmony over o200k_harmony tokens: rendering to tokens, and the streamable parser
// (openai/harmony src/encoding.rs HarmonyEncoding, StreamableParser).
#include "ember/core/error.h"
#include "ember/harmony.h"
#include "tokenizer/harmony_render.h"

namespace ember::harmony {

using namespace detail;

namespace {

// Rust's split_ascii_whitespace / trim, which the reference's header parsing uses.
bool is_ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'; }
bool is_space(char c) { return is_ascii_space(c) || c == '\v'; }

std::string trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return std::string(s);
}

std::vector<std::string> split_words(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_ascii_space(s[i])) ++i;
    size_t j = i;
    while (j < s.size() && !is_ascii_space(s[j])) ++j;
    if (j > i) out.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

enum class Utf8 { kValid, kInvalid, kIncomplete };

// The UTF-8 sequence at s[i]: its length if valid; the length of its longest valid prefix (at
// least 1) if invalid, which one U+FFFD replaces (as Rust's from_utf8_lossy does); or incomplete
// when s ends inside it.
Utf8 next_utf8(std::string_view s, size_t i, size_t& len) {
  auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) {
    len = 1;
    return Utf8::kValid;
  }
  size_t need = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
  if (b >= 0xC2 && b <= 0xDF) {
    need = 1;
  } else if (b == 0xE0) {
    need = 2, lo = 0xA0;
  } else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) {
    need = 2;
  } else if (b == 0xED) {
    need = 2, hi = 0x9F;  // no surrogates
  } else if (b == 0xF0) {
    need = 3, lo = 0x90;
  } else if (b >= 0xF1 && b <= 0xF3) {
    need = 3;
  } else if (b == 0xF4) {
    need = 3, hi = 0x8F;  // at most U+10FFFF
  } else {
    len = 1;
    return Utf8::kInvalid;
  }
  for (size_t k = 1; k <= need; ++k) {
    if (i + k >= s.size()) {
      len = k;
      return Utf8::kIncomplete;
    }
    auto c = static_cast<unsigned char>(s[i + k]);
    if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xBF)) {
      len = k;
      return Utf8::kInvalid;
    }
  }
  len = need + 1;
  return Utf8::kValid;
}

// Takes the decodable text off the front of `bytes`: invalid sequences become U+FFFD; an
// incomplete character at the end stays in `bytes`, unless `final`, when it too becomes U+FFFD.
std::string take_utf8(std::string& bytes, bool final) {
  std::string out;
  size_t i = 0;
  while (i < bytes.size()) {
    size_t len = 0;
    Utf8 r = next_utf8(bytes, i, len);
    if (r == Utf8::kValid) {
      out.append(bytes, i, len);
    } else if (r == Utf8::kInvalid) {
      out += kReplacement;
    } else {
      if (!final) break;
      out += kReplacement;
      len = bytes.size() - i;
    }
    i += len;
  }
  bytes.erase(0, i);
  return out;
}

// A token's bytes; nullopt for ids outside the vocabulary.
std::optional<std::string_view> token_bytes(const tokenizer::Tokenizer& tok, Token token) {
  if (token >= tok.vocab_size()) return std::nullopt;
  try {
    return tok.token_bytes(token);
  } catch (const Error&) {
    return std::nullopt;
  }
}

std::string describe(const tokenizer::Tokenizer& tok, Token token) {
  auto bytes = token_bytes(tok, token);
  if (!bytes) return fmt::format("token {} (not in the vocabulary)", token);
  std::string text(*bytes);
  std::string printable = take_utf8(text, true);
  return tok.is_special(token) ? fmt::format("{} ({})", printable, token)
                               : fmt::format("token {} '{}'", token, printable);
}

// The reference's parse_header_from_string: the channel comes out first (it may sit anywhere),
// then role, recipient and content type are whitespace-separated words. Words that are none of
// these are returned in `rest` (content, for a message whose header never ended).
ParsedHeader parse_header_words(std::string header, std::optional<Role> role,
                                bool recipient_and_type, std::optional<std::string>& rest) {
  ParsedHeader h;
  const std::string_view channel_marker = kChannel;
  if (size_t at = header.find(channel_marker); at != std::string::npos) {
    size_t begin = at + channel_marker.size(), end = begin;
    while (end < header.size() && !is_space(header[end]) && header[end] != '<') ++end;
    EMBER_CHECK(end > begin, "harmony: <|channel|> without a channel name in message header '{}'",
                header);
    h.channel = header.substr(begin, end - begin);
    header = header.substr(0, at) + header.substr(end);
  }
  header = trim(header);
  // "to=functions.f<|constrain|>json": the content type is a word of its own.
  const std::string_view constrain = kConstrain;
  if (header.find(constrain) != std::string::npos) {
    std::string spaced;
    for (size_t i = 0; i < header.size();) {
      if (header.compare(i, constrain.size(), constrain) == 0) {
        spaced += ' ';
        spaced += constrain;
        i += constrain.size();
      } else {
        spaced += header[i++];
      }
    }
    header = trim(spaced);
  }
  std::vector<std::string> parts = split_words(header);

  std::optional<std::string> role_word;
  if (role) {
    h.author.role = *role;
  } else {
    EMBER_CHECK(!parts.empty(), "harmony: message header has no role");
    role_word = parts.front();
    if (auto known = role_from_name(parts.front())) {
      h.author.role = *known;
    } else if (parts.size() > 1 || starts_with(parts.front(), "to=")) {
      // An unknown name followed by more words: a tool's message ("functions.f to=assistant").
      parts.erase(parts.begin());
      h.author.role = Role::kTool;
    } else {
      throw_error("harmony: unknown role '{}' in message header", parts.front());
    }
  }
  if (!parts.empty() && parts.front() == role_name(h.author.role)) parts.erase(parts.begin());
  if (h.author.role == Role::kTool) h.author.name = role_word;

  if (recipient_and_type && !parts.empty()) {
    size_t n = parts.size();
    std::string last = std::move(parts.back());
    parts.pop_back();
    if (starts_with(last, "to=")) {
      h.recipient = last.substr(3);
    } else if (n == 1) {
      h.recipient = std::move(last);  // a lone word is a recipient
    } else {
      h.content_type = std::move(last);
      if (!parts.empty()) {
        std::string r = std::move(parts.back());
        parts.pop_back();
        h.recipient = starts_with(r, "to=") ? r.substr(3) : r;
      }
    }
  }
  rest.reset();
  for (const std::string& p : parts) rest = rest ? *rest + " " + p : p;
  return h;
}

}  // namespace

ParsedHeader parse_header(std::string_view header, std::optional<Role> role) {
  std::optional<std::string> rest;
  ParsedHeader h = parse_header_words(std::string(header), role, true, rest);
  EMBER_CHECK(!rest, "harmony: unexpected tokens remaining in message header '{}': '{}'", header,
              *rest);
  return h;
}

// ---- HarmonyEncoding ----

HarmonyEncoding::HarmonyEncoding(const tokenizer::Tokenizer& tok)
    : tokenizer_(&tok),
      start_(tok.special_or_throw(kStart)),
      message_(tok.special_or_throw(kMessage)),
      end_(tok.special_or_throw(kEnd)),
      return_(tok.special_or_throw(kReturn)),
      call_(tok.special_or_throw(kCall)) {
  // Rendering needs these too; a vocabulary without them fails here rather than mid-render.
  tok.special_or_throw(kChannel);
  tok.special_or_throw(kConstrain);
}

namespace {

std::vector<Token> encode_pieces(const tokenizer::Tokenizer& tok, const Pieces& pieces) {
  std::vector<Token> out;
  for (const Piece& p : pieces) {
    if (p.special) {
      out.push_back(tok.special_or_throw(p.text));
    } else {
      // Text is never read as special tokens: "<|end|>" typed by a user stays text.
      std::vector<Token> t = tok.encode(p.text, tokenizer::Specials::kAsText);
      out.insert(out.end(), t.begin(), t.end());
    }
  }
  return out;
}

}  // namespace

std::vector<Token> HarmonyEncoding::render(const Message& message) const {
  Pieces pieces;
  render_message(message, false, pieces);
  return encode_pieces(*tokenizer_, pieces);
}

std::vector<Token> HarmonyEncoding::render_conversation(
    const Conversation& conversation, const RenderConversationConfig& config) const {
  Pieces pieces;
  detail::render_conversation(conversation, config, pieces);
  return encode_pieces(*tokenizer_, pieces);
}

std::vector<Token> HarmonyEncoding::render_conversation_for_completion(
    const Conversation& conversation, Role next_turn_role,
    const RenderConversationConfig& config) const {
  Pieces pieces;
  detail::render_conversation(conversation, config, pieces);
  render_completion_prompt(next_turn_role, pieces);
  return encode_pieces(*tokenizer_, pieces);
}

std::vector<Token> HarmonyEncoding::render_conversation_for_training(
    const Conversation& conversation, const RenderConversationConfig& config) const {
  std::vector<Token> out = render_conversation(conversation, config);
  if (ends_in_final_answer(conversation)) out.back() = return_;
  return out;
}

std::vector<Message> HarmonyEncoding::parse_messages_from_completion_tokens(
    std::span<const Token> tokens, std::optional<Role> role, ParseOptions options) const {
  StreamableParser parser(*this, role, options);
  for (Token t : tokens) parser.process(t);
  parser.process_eos();
  return parser.messages();
}

std::vector<Token> HarmonyEncoding::stop_tokens() const { return {return_, call_, end_}; }
std::vector<Token> HarmonyEncoding::stop_tokens_for_assistant_actions() const {
  return {return_, call_};
}

// ---- StreamableParser ----

StreamableParser::StreamableParser(const HarmonyEncoding& encoding, std::optional<Role> role,
                                   ParseOptions options)
    : encoding_(&encoding),
      options_(options),
      next_role_(role),
      state_(role ? State::kHeader : State::kExpectStart) {}

void StreamableParser::process(Token token) {
  const HarmonyEncoding& enc = *encoding_;
  const tokenizer::Tokenizer& tok = enc.tokenizer();
  const bool is_stop = token == enc.end_ || token == enc.return_ || token == enc.call_;
  tokens_.push_back(token);
  last_content_delta_.reset();
  switch (state_) {
    case State::kExpectStart:
      EMBER_CHECK(token == enc.start_,
                  "harmony: unexpected {} where a message should begin with <|start|>",
                  describe(tok, token));
      state_ = State::kHeader;
      header_tokens_.clear();
      return;

    case State::kHeader: {
      if (token == enc.message_) {
        std::string text;
        for (Token t : header_tokens_) text += *token_bytes(tok, t);
        std::string bytes = text;
        EMBER_CHECK(take_utf8(bytes, true) == text, "harmony: message header is not valid UTF-8");
        header_ = parse_header(text, next_role_);
        next_role_.reset();
        header_tokens_.clear();
        content_.clear();
        pending_.clear();
        decoder_.emplace(tok);
        state_ = State::kContent;
        return;
      }
      if (is_stop && !options_.strict) {
        finish_headerless_message();
        return;
      }
      if (is_stop || token == enc.start_) {
        std::string so_far;
        for (Token t : header_tokens_) so_far += *token_bytes(tok, t);
        throw_error("harmony: unexpected {} in a message header (after '{}'); a header ends with "
                    "<|message|>",
                    describe(tok, token), take_utf8(so_far, true));
      }
      EMBER_CHECK(token_bytes(tok, token), "harmony: token {} in a message header is not in the "
                  "vocabulary", token);
      header_tokens_.push_back(token);
      return;
    }

    case State::kContent: {
      if (is_stop) {
        finish_message();
        return;
      }
      if (token_bytes(tok, token)) {
        pending_ += decoder_->push(token);
      } else {
        // An id outside the vocabulary reads as one U+FFFD, as in the reference.
        pending_ += decoder_->flush();
        pending_ = take_utf8(pending_, true) + std::string(kReplacement);
      }
      std::string delta = take_utf8(pending_, false);
      if (!delta.empty()) {
        content_ += delta;
        last_content_delta_ = std::move(delta);
      }
      return;
    }
  }
}

void StreamableParser::process_eos() {
  last_content_delta_.reset();
  switch (state_) {
    case State::kExpectStart:
      return;  // after a stop token: the stream may end here
    case State::kHeader:
      EMBER_CHECK(!options_.strict, "harmony: the stream ended inside a message header");
      finish_headerless_message();
      return;
    case State::kContent:
      finish_message();
      return;
  }
}

void StreamableParser::finish_message() {
  pending_ += decoder_->flush();
  content_ += take_utf8(pending_, true);
  Message m;
  m.author = header_.author;
  m.recipient = header_.recipient;
  m.channel = header_.channel;
  m.content_type = header_.content_type;
  m.content.push_back(TextContent{std::move(content_)});
  messages_.push_back(std::move(m));
  content_.clear();
  pending_.clear();
  decoder_.reset();
  header_ = {};
  state_ = State::kExpectStart;
}

// Non-strict recovery for a message that stopped before <|message|> ("I must refuse<|end|>"
// right after the prompt's "<|start|>assistant"): as the reference, only the first message (the
// one whose role the prompt gave) is kept, its header words becoming the content.
void StreamableParser::finish_headerless_message() {
  if (next_role_ && !header_tokens_.empty()) {
    std::string text;
    for (Token t : header_tokens_) text += *token_bytes(encoding_->tokenizer(), t);
    text = take_utf8(text, true);
    std::optional<std::string> rest;
    ParsedHeader h = parse_header_words(text, next_role_, false, rest);
    Message m;
    m.author = h.author;
    m.channel = h.channel;
    m.content.push_back(TextContent{rest.value_or("")});
    messages_.push_back(std::move(m));
  }
  header_tokens_.clear();
  next_role_.reset();
  state_ = State::kExpectStart;
}

std::optional<Role> StreamableParser::current_role() const {
  return state_ == State::kContent ? std::optional<Role>(header_.author.role) : next_role_;
}
std::optional<std::string> StreamableParser::current_channel() const {
  return state_ == State::kContent ? header_.channel : std::nullopt;
}
std::optional<std::string> StreamableParser::current_recipient() const {
  return state_ == State::kContent ? header_.recipient : std::nullopt;
}
std::optional<std::string> StreamableParser::current_content_type() const {
  return state_ == State::kContent ? header_.content_type : std::nullopt;
}

}  // namespace ember::harmony
