#pragma once
// The Harmony chat format of gpt-oss (openai/harmony: docs/format.md, src/chat.rs,
// src/encoding.rs). Conversations render to o200k_harmony tokens (or to text with the special
// tokens spelled out, for debugging); completions parse back into messages, token by token.
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "ember/tokenizer/tokenizer.h"

namespace ember::harmony {

using tokenizer::Token;

enum class Role { kUser, kAssistant, kSystem, kDeveloper, kTool };
std::string_view role_name(Role role);                   // "user", "assistant", …
std::optional<Role> role_from_name(std::string_view name);  // nullopt for unknown names

struct Author {
  Role role = Role::kUser;
  std::optional<std::string> name;  // tools: the tool's name ("functions.get_weather")
  bool operator==(const Author&) const = default;
};

enum class ReasoningEffort { kLow, kMedium, kHigh };

// One function of a tool namespace; `parameters` is a JSON schema (text), rendered as a
// TypeScript-like type.
struct ToolDescription {
  std::string name;
  std::string description;
  std::optional<std::string> parameters;
  bool operator==(const ToolDescription&) const = default;
};

struct ToolNamespaceConfig {
  std::string name;
  std::optional<std::string> description;
  std::vector<ToolDescription> tools;
  bool operator==(const ToolNamespaceConfig&) const = default;

  static ToolNamespaceConfig browser();  // the built-in browser tool (search, open, find)
  static ToolNamespaceConfig python();   // the built-in python tool
};

// Namespaces by name: rendered in name order, as the reference's BTreeMap does.
using ToolNamespaces = std::map<std::string, ToolNamespaceConfig>;

struct ChannelConfig {
  std::vector<std::string> valid_channels;
  bool channel_required = false;
  bool operator==(const ChannelConfig&) const = default;

  static ChannelConfig require_channels(std::vector<std::string> channels) {
    return {std::move(channels), true};
  }
};

// The system message: identity, dates, reasoning effort, built-in tools, channels. Defaults are
// the reference's SystemContent::new().
struct SystemContent {
  std::optional<std::string> model_identity =
      "You are ChatGPT, a large language model trained by OpenAI.";
  std::optional<ReasoningEffort> reasoning_effort = ReasoningEffort::kMedium;
  ToolNamespaces tools;
  std::optional<std::string> conversation_start_date;  // "Current date: …"
  std::optional<std::string> knowledge_cutoff = "2024-06";
  std::optional<ChannelConfig> channel_config =
      ChannelConfig::require_channels({"analysis", "commentary", "final"});
  bool operator==(const SystemContent&) const = default;

  SystemContent with_model_identity(std::string identity) &&;
  SystemContent with_reasoning_effort(ReasoningEffort effort) &&;
  SystemContent with_conversation_start_date(std::string date) &&;
  SystemContent with_knowledge_cutoff(std::string cutoff) &&;
  SystemContent with_required_channels(std::vector<std::string> channels) &&;
  SystemContent with_tools(ToolNamespaceConfig ns) &&;
  SystemContent with_browser_tool() &&;
  SystemContent with_python_tool() &&;
};

// The developer message: instructions and function tools.
struct DeveloperContent {
  std::optional<std::string> instructions;
  ToolNamespaces tools;
  bool operator==(const DeveloperContent&) const = default;

  DeveloperContent with_instructions(std::string instructions) &&;
  DeveloperContent with_tools(ToolNamespaceConfig ns) &&;
  DeveloperContent with_function_tools(std::vector<ToolDescription> tools) &&;  // "functions"
};

struct TextContent {
  std::string text;
  bool operator==(const TextContent&) const = default;
};

using Content = std::variant<TextContent, SystemContent, DeveloperContent>;

struct Message {
  Author author;
  std::optional<std::string> recipient;  // "functions.get_weather"; "all" is not rendered
  std::vector<Content> content;
  std::optional<std::string> channel;       // "analysis", "commentary", "final"
  std::optional<std::string> content_type;  // "json", "code", "<|constrain|>json"
  bool operator==(const Message&) const = default;

  static Message from_author_and_content(Author author, Content content);
  static Message from_role_and_content(Role role, Content content);
  static Message from_role_and_content(Role role, std::string text);

  Message with_channel(std::string channel) &&;
  Message with_recipient(std::string recipient) &&;
  Message with_content_type(std::string content_type) &&;

  std::string text() const;  // the text items of `content`, concatenated
};

struct Conversation {
  std::vector<Message> messages;
};

struct RenderConversationConfig {
  // Drop analysis messages before the conversation's first final answer, once the last assistant
  // message is a final answer. This is the reference's rule (and its Python binding's default):
  // analysis after that first final answer is kept (test_keep_analysis_between_finals).
  bool auto_drop_analysis = true;
};

// Rendering to text: special tokens spelled out ("<|start|>user<|message|>…<|end|>"). The
// token renderings below encode exactly this text, piece by piece as the reference does.
std::string render_text(const Message& message);
std::string render_conversation_text(const Conversation& conversation,
                                     const RenderConversationConfig& config = {});
// … followed by "<|start|>{next_turn_role}", the prompt for sampling the next message.
std::string render_conversation_for_completion_text(const Conversation& conversation,
                                                    Role next_turn_role = Role::kAssistant,
                                                    const RenderConversationConfig& config = {});
// The last message, if an assistant's final answer, ends in <|return|> instead of <|end|>.
std::string render_conversation_for_training_text(const Conversation& conversation,
                                                  const RenderConversationConfig& config = {});

// A JSON schema (text) as the TypeScript-like type the tools section shows
// (encoding.rs json_schema_to_typescript). Throws ember::Error for invalid JSON.
std::string json_schema_to_typescript(std::string_view schema_json, std::string_view indent = "");

// JSON in the reference's serde shapes (chat.rs), for conversations that come from elsewhere:
// {"messages": [{"role": "user", "content": "Hi"}, {"role": "system", "content": [{"type":
// "system_content", "model_identity": …, "reasoning_effort": "High", …}]}, …]}. As there, fields
// missing from system content are absent (not SystemContent's defaults); a lone text content
// is written as a string. Throws ember::Error naming the message and field at fault.
Message message_from_json(std::string_view json);
Conversation conversation_from_json(std::string_view json);
std::string to_json(const Message& message);
std::string to_json(const Conversation& conversation);

struct ParseOptions {
  // Non-strict: a message whose header never reached <|message|> (the model skipped it) is kept,
  // its header words as content, instead of being an error.
  bool strict = true;
};

// A message header as the parser reads it.
struct ParsedHeader {
  Author author;
  std::optional<std::string> recipient, channel, content_type;
  bool operator==(const ParsedHeader&) const = default;
};
// The header text between <|start|> and <|message|> ("assistant<|channel|>commentary
// to=functions.f <|constrain|>json"). `role`: the role already known (the prompt's), when the
// text may lack it. Throws ember::Error for an unknown role or words left over.
ParsedHeader parse_header(std::string_view header, std::optional<Role> role);

class StreamableParser;

// Harmony over a tokenizer with o200k_harmony's special tokens. Holds a pointer to `tokenizer`,
// which must outlive it.
class HarmonyEncoding {
 public:
  explicit HarmonyEncoding(const tokenizer::Tokenizer& tokenizer);

  std::vector<Token> render(const Message& message) const;
  std::vector<Token> render_conversation(const Conversation& conversation,
                                         const RenderConversationConfig& config = {}) const;
  std::vector<Token> render_conversation_for_completion(
      const Conversation& conversation, Role next_turn_role = Role::kAssistant,
      const RenderConversationConfig& config = {}) const;
  std::vector<Token> render_conversation_for_training(
      const Conversation& conversation, const RenderConversationConfig& config = {}) const;

  // Messages of a completion (what the model sampled after a prompt ending in
  // "<|start|>assistant": pass role = kAssistant, since that header began in the prompt).
  std::vector<Message> parse_messages_from_completion_tokens(std::span<const Token> tokens,
                                                             std::optional<Role> role,
                                                             ParseOptions options = {}) const;

  // Where sampling stops: <|return|>, <|call|> (and <|end|> for stop_tokens()).
  std::vector<Token> stop_tokens() const;
  std::vector<Token> stop_tokens_for_assistant_actions() const;

  const tokenizer::Tokenizer& tokenizer() const { return *tokenizer_; }

 private:
  friend class StreamableParser;
  const tokenizer::Tokenizer* tokenizer_;
  Token start_, message_, end_, return_, call_;
};

// Incremental parser fed one token at a time: what is known of the message being sampled (role,
// channel, recipient, content type, text so far) and each token's new text. Holds a pointer to
// `encoding`, which must outlive it.
class StreamableParser {
 public:
  // role: the role whose header the prompt already began (kAssistant after "<|start|>assistant"),
  // or nullopt when the tokens start with <|start|>.
  StreamableParser(const HarmonyEncoding& encoding, std::optional<Role> role,
                   ParseOptions options = {});

  // Throws ember::Error on malformed input (a token other than <|start|> between messages, a
  // stop token inside a header, an unknown role, leftover words in a header).
  void process(Token token);
  // End of stream: finishes a message whose stop token never came.
  void process_eos();

  const std::vector<Message>& messages() const { return messages_; }
  const std::vector<Token>& tokens() const { return tokens_; }

  std::optional<Role> current_role() const;
  std::optional<std::string> current_channel() const;
  std::optional<std::string> current_recipient() const;
  std::optional<std::string> current_content_type() const;
  const std::string& current_content() const { return content_; }  // "" outside a message body
  // Text that the last token added to the content; nullopt when it added none (a header token,
  // a stop token, or bytes of a UTF-8 character that is not complete yet).
  const std::optional<std::string>& last_content_delta() const { return last_content_delta_; }

  enum class State { kExpectStart, kHeader, kContent };
  State state() const { return state_; }

 private:
  void finish_message();
  void finish_headerless_message();

  const HarmonyEncoding* encoding_;
  ParseOptions options_;
  std::optional<Role> next_role_;
  State state_;
  std::vector<Token> tokens_;
  std::vector<Message> messages_;
  std::vector<Token> header_tokens_;
  ParsedHeader header_;
  std::string content_;
  std::string pending_;  // bytes of an incomplete UTF-8 character
  std::optional<tokenizer::StreamDecoder> decoder_;
  std::optional<std::string> last_content_delta_;
};

}  // namespace ember::harmony
