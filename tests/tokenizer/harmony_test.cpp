// Harmony rendering and parsing against openai/harmony's expected outputs (test-data/, copied to
// ../shared/harmony/). Each conversation is the one built under the same name in the reference's
// src/tests.rs or tests/test_harmony.py.
#include "ember/harmony.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>

#include "ember/core/error.h"
#include "test_util.h"

namespace ember::harmony {
namespace {

// The expected text of ../shared/harmony/<name>.txt, trailing whitespace trimmed as the
// reference's tests do; nullopt when the shared data is absent.
std::optional<std::string> load_expected(const std::string& name) {
  auto dir = test::shared_dir("harmony");
  if (!dir) return std::nullopt;
  std::ifstream in(*dir + "/" + name + ".txt", std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

#define EXPECTED_OR_SKIP(var, name)                                                      \
  auto var##_opt = load_expected(name);                                                  \
  if (!var##_opt) GTEST_SKIP() << "../shared/harmony/" name ".txt not found (reference " \
                                  "data from openai/harmony test-data/)";                \
  const std::string& var = *var##_opt

constexpr const char* kIdentity = "You are ChatGPT, a large language model trained by OpenAI.";

Message system(SystemContent sys) {
  return Message::from_role_and_content(Role::kSystem, Content(std::move(sys)));
}
Message developer(DeveloperContent dev) {
  return Message::from_role_and_content(Role::kDeveloper, Content(std::move(dev)));
}
Message user(std::string text) { return Message::from_role_and_content(Role::kUser, text); }
Message assistant(std::string text, std::string channel) {
  return Message::from_role_and_content(Role::kAssistant, text).with_channel(channel);
}

// ---- the reference's conversations ----

Conversation simple_convo() {
  return {{system(SystemContent().with_model_identity(kIdentity)), user("What is 2 + 2?")}};
}

Conversation effort_convo(ReasoningEffort effort, bool with_instruction) {
  Conversation c;
  c.messages.push_back(
      system(SystemContent().with_model_identity(kIdentity).with_reasoning_effort(effort)));
  if (with_instruction) {
    c.messages.push_back(developer(
        DeveloperContent().with_instructions("Answer the user's questions like a robot.")));
  }
  c.messages.push_back(user("What is the capital of the largest country in the world?"));
  return c;
}

Conversation reasoning_system_message() {
  return {{system(SystemContent()
                      .with_model_identity(kIdentity)
                      .with_reasoning_effort(ReasoningEffort::kMedium)
                      .with_required_channels({"analysis", "final"})),
           user("What is 2 + 2?")}};
}

Conversation reasoning_system_message_no_instruction() {
  return {{system(SystemContent()
                      .with_model_identity(kIdentity)
                      .with_reasoning_effort(ReasoningEffort::kHigh)
                      .with_required_channels({"analysis", "final"})),
           user("What is the best place to eat candy in the world?")}};
}

Conversation reasoning_system_message_with_dates() {
  return {{system(SystemContent()
                      .with_model_identity(kIdentity)
                      .with_reasoning_effort(ReasoningEffort::kMedium)
                      .with_conversation_start_date("2021-01-01")
                      .with_knowledge_cutoff("2021-01")
                      .with_required_channels({"analysis", "final"})),
           user("What is 42 * pi?")}};
}

Conversation functions_with_parameters() {
  auto sys = SystemContent()
                 .with_reasoning_effort(ReasoningEffort::kHigh)
                 .with_conversation_start_date("2025-06-28");
  auto dev =
      DeveloperContent()
          .with_instructions("Always respond in riddles")
          .with_function_tools({
              {"get_location", "Gets the location of the user.", std::nullopt},
              {"get_current_weather", "Gets the current weather in the provided location.",
               R"({"type": "object",
                   "properties": {
                     "location": {"type": "string",
                                  "description": "The city and state, e.g. San Francisco, CA"},
                     "format": {"type": "string", "enum": ["celsius", "fahrenheit"],
                                "default": "celsius"}},
                   "required": ["location"]})"},
              {"get_multiple_weathers",
               "Gets the current weather in the provided list of locations.",
               R"({"type": "object",
                   "properties": {
                     "locations": {"type": "array", "items": {"type": "string"},
                                   "description": "List of city and state, e.g. [\"San Francisco, CA\", \"New York, NY\"]"},
                     "format": {"type": "string", "enum": ["celsius", "fahrenheit"],
                                "default": "celsius"}},
                   "required": ["locations"]})"},
              {"kitchensink", "A function with various complex schemas.",
               R"({"description": "params object", "type": "object",
                   "properties": {
                     "string": {"type": "string", "title": "STRING", "description": "A string",
                                "examples": ["hello", "world"]},
                     "string_nullable": {"type": "string", "nullable": true,
                                         "description": "A nullable string",
                                         "default": "the default"},
                     "string_enum": {"type": "string", "enum": ["a", "b", "c"]},
                     "oneof_string_or_number": {
                       "oneOf": [{"type": "string", "default": "default_string_in_oneof"},
                                 {"type": "number", "description": "numbers can happen too"}],
                       "description": "a oneof", "default": 20}}})"},
          });
  return {{system(std::move(sys)), developer(std::move(dev)),
           user("What is the weather like in SF?")}};
}

Conversation browser_and_function_tool() {
  return {{system(SystemContent().with_conversation_start_date("2025-06-28").with_browser_tool()),
           developer(DeveloperContent().with_function_tools(
               {{"lookup_weather",
                 "Use this tool to lookup the weather in a given location. Call it with the "
                 "parameter 'location', can be any textual description of a location.",
                 R"({"type": "object", "properties": {"location": {"type": "string"}},
                     "required": ["location"]})"}}))}};
}

Conversation cot_convo(const std::string& analysis) {
  return {{user("What is 2 + 2?"), assistant(analysis, "analysis"),
           assistant("2 + 2 equals 4.", "final"), user("What about 9 / 2?")}};
}

Conversation ongoing_analysis() {
  return {{user("What is the weather in SF?"),
           assistant("User asks: “What is the weather in SF?” We need to use lookup_weather tool.",
                     "analysis"),
           Message::from_role_and_content(Role::kAssistant, R"({"location": "San Francisco"})")
               .with_channel("commentary")
               .with_recipient("functions.lookup_weather")
               .with_content_type("<|constrain|>json"),
           Message::from_author_and_content({Role::kTool, "functions.lookup_weather"},
                                            TextContent{R"({"temperature": 20, "description": "sunny"})"})}};
}

Conversation keep_analysis_between_finals() {
  return {{user("What is 2 + 2?"), assistant("thinking 2+2", "analysis"), assistant("4", "final"),
           user("What is 3 + 5?"), assistant("thinking 3+5", "analysis"),
           assistant("8", "final")}};
}

Message tool_response() {
  return Message::from_author_and_content({Role::kTool, "browser.search"},
                                          TextContent{R"({"result": "https://openai.com/"})"})
      .with_channel("commentary")
      .with_recipient("assistant");
}

// ---- text rendering ----

TEST(HarmonyRender, SimpleConvo) {
  EXPECTED_OR_SKIP(expected, "test_simple_convo");
  EXPECT_EQ(render_conversation_for_completion_text(simple_convo()), expected);
}

TEST(HarmonyRender, SimpleConvoWithEffort) {
  struct Case {
    ReasoningEffort effort;
    const char* file;
    bool instruction;
  };
  for (const Case& c : {Case{ReasoningEffort::kLow, "test_simple_convo_low_effort", true},
                        Case{ReasoningEffort::kMedium, "test_simple_convo_medium_effort", true},
                        Case{ReasoningEffort::kHigh, "test_simple_convo_high_effort", true},
                        Case{ReasoningEffort::kLow, "test_simple_convo_low_effort_no_instruction", false},
                        Case{ReasoningEffort::kMedium, "test_simple_convo_medium_effort_no_instruction", false},
                        Case{ReasoningEffort::kHigh, "test_simple_convo_high_effort_no_instruction", false}}) {
    auto expected = load_expected(c.file);
    if (!expected) GTEST_SKIP() << "../shared/harmony/" << c.file << ".txt not found";
    EXPECT_EQ(render_conversation_for_completion_text(effort_convo(c.effort, c.instruction)),
              *expected)
        << c.file;
  }
}

TEST(HarmonyRender, ReasoningSystemMessage) {
  EXPECTED_OR_SKIP(expected, "test_reasoning_system_message");
  EXPECT_EQ(render_conversation_for_completion_text(reasoning_system_message()), expected);
}

TEST(HarmonyRender, ReasoningSystemMessageNoInstruction) {
  EXPECTED_OR_SKIP(expected, "test_reasoning_system_message_no_instruction");
  EXPECT_EQ(render_conversation_for_completion_text(reasoning_system_message_no_instruction()),
            expected);
}

TEST(HarmonyRender, ReasoningSystemMessageWithDates) {
  EXPECTED_OR_SKIP(expected, "test_reasoning_system_message_with_dates");
  EXPECT_EQ(render_conversation_for_completion_text(reasoning_system_message_with_dates()),
            expected);
}

TEST(HarmonyRender, FunctionsWithParameters) {
  EXPECTED_OR_SKIP(expected, "test_render_functions_with_parameters");
  EXPECT_EQ(render_conversation_for_completion_text(functions_with_parameters()), expected);
}

TEST(HarmonyRender, NoTools) {
  EXPECTED_OR_SKIP(expected, "test_no_tools");
  Conversation c{{system(SystemContent().with_conversation_start_date("2025-06-28"))}};
  EXPECT_EQ(render_conversation_for_completion_text(c), expected);
}

TEST(HarmonyRender, BrowserToolOnly) {
  EXPECTED_OR_SKIP(expected, "test_browser_tool_only");
  Conversation c{
      {system(SystemContent().with_conversation_start_date("2025-06-28").with_browser_tool())}};
  EXPECT_EQ(render_conversation_for_completion_text(c), expected);
}

TEST(HarmonyRender, BrowserAndFunctionTool) {
  EXPECTED_OR_SKIP(expected, "test_browser_and_function_tool");
  EXPECT_EQ(render_conversation_for_completion_text(browser_and_function_tool()), expected);
}

TEST(HarmonyRender, BrowserAndPythonTool) {
  EXPECTED_OR_SKIP(expected, "test_browser_and_python_tool");
  Conversation c{{system(SystemContent()
                             .with_conversation_start_date("2025-06-28")
                             .with_browser_tool()
                             .with_python_tool())}};
  EXPECT_EQ(render_conversation_for_completion_text(c), expected);
}

TEST(HarmonyRender, DroppingCotByDefault) {
  EXPECTED_OR_SKIP(expected, "test_dropping_cot_by_default");
  auto c = cot_convo("User asks: “What is 2 + 2?” Simple arithmetic. Provide answer.");
  EXPECT_EQ(render_conversation_for_completion_text(c), expected);
  EXPECT_EQ(render_conversation_for_completion_text(c, Role::kAssistant, {true}), expected);
}

TEST(HarmonyRender, DoesNotDropIfOngoingAnalysis) {
  EXPECTED_OR_SKIP(expected, "test_does_not_drop_if_ongoing_analysis");
  EXPECT_EQ(render_conversation_for_completion_text(ongoing_analysis()), expected);
}

TEST(HarmonyRender, PreserveCot) {
  EXPECTED_OR_SKIP(expected, "test_preserve_cot");
  auto c = cot_convo(R"(User asks a simple question: "What is 2 + 2?" The answer: 4.)");
  EXPECT_EQ(render_conversation_for_completion_text(c, Role::kAssistant, {false}), expected);
}

TEST(HarmonyRender, KeepAnalysisBetweenFinals) {
  EXPECTED_OR_SKIP(expected, "test_keep_analysis_between_finals");
  EXPECT_EQ(render_conversation_text(keep_analysis_between_finals()), expected);
}

TEST(HarmonyRender, ToolResponse) {
  // test_tool_response_parsing.txt is the tool message rendered without its <|end|>.
  EXPECTED_OR_SKIP(expected, "test_tool_response_parsing");
  EXPECT_EQ(render_text(tool_response()), expected + "<|end|>");
}

TEST(HarmonyRender, MessageAndConversationAgree) {
  Message m = user("Hello");
  Conversation c{{m}};
  EXPECT_EQ(render_text(m), "<|start|>user<|message|>Hello<|end|>");
  EXPECT_EQ(render_conversation_text(c), render_text(m));
  EXPECT_EQ(render_conversation_for_completion_text(c), render_text(m) + "<|start|>assistant");
  EXPECT_EQ(render_conversation_for_completion_text(c, Role::kUser),
            render_text(m) + "<|start|>user");
}

TEST(HarmonyRender, HeaderFields) {
  Message named = Message::from_author_and_content({Role::kUser, "alice"}, TextContent{"hi"});
  EXPECT_EQ(render_text(named), "<|start|>user:alice<|message|>hi<|end|>");
  // A recipient "all" is the default and is not written.
  EXPECT_EQ(render_text(assistant("x", "final").with_recipient("all")),
            "<|start|>assistant<|channel|>final<|message|>x<|call|>");
  EXPECT_EQ(render_text(Message::from_role_and_content(Role::kAssistant, "print(1)")
                            .with_channel("analysis")
                            .with_recipient("python")
                            .with_content_type("code")),
            "<|start|>assistant to=python<|channel|>analysis code<|message|>print(1)<|call|>");
  // Tool results: from the tool, to the assistant, on commentary (docs/format.md).
  EXPECT_EQ(render_text(Message::from_author_and_content({Role::kTool, "functions.get_weather"},
                                                         TextContent{R"({"sunny": true})"})
                            .with_recipient("assistant")
                            .with_channel("commentary")),
            "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>"
            R"({"sunny": true})"
            "<|end|>");
}

TEST(HarmonyRender, TrainingEndsInReturn) {
  Conversation final_answer{{user("hi"), assistant("hello", "final")}};
  EXPECT_EQ(render_conversation_for_training_text(final_answer),
            "<|start|>user<|message|>hi<|end|><|start|>assistant<|channel|>final<|message|>"
            "hello<|return|>");
  Conversation no_answer{{user("hi")}};
  EXPECT_EQ(render_conversation_for_training_text(no_answer), render_conversation_text(no_answer));
}

TEST(HarmonyRender, Errors) {
  Message nameless_tool = Message::from_role_and_content(Role::kTool, "x");
  EXPECT_THROW(render_text(nameless_tool), Error);
  EXPECT_THROW(render_text(Message::from_role_and_content(Role::kUser, Content(SystemContent()))),
               Error);
  EXPECT_THROW(
      render_text(Message::from_role_and_content(Role::kSystem, Content(DeveloperContent()))),
      Error);
  auto bad_schema = DeveloperContent().with_function_tools({{"f", "d", "{not json"}});
  try {
    render_text(developer(bad_schema));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tool 'f'"), std::string::npos) << e.what();
  }
}

TEST(HarmonyRender, Roles) {
  for (Role r : {Role::kUser, Role::kAssistant, Role::kSystem, Role::kDeveloper, Role::kTool}) {
    EXPECT_EQ(role_from_name(role_name(r)), r);
  }
  EXPECT_EQ(role_from_name("functions.x"), std::nullopt);
}

TEST(HarmonyParse, HeaderWords) {
  auto header = [](std::optional<std::string> name, std::optional<std::string> recipient,
                   std::optional<std::string> channel, std::optional<std::string> type,
                   Role role = Role::kAssistant) {
    return ParsedHeader{{role, std::move(name)}, recipient, channel, type};
  };
  EXPECT_EQ(parse_header("assistant", std::nullopt),
            header(std::nullopt, std::nullopt, std::nullopt, std::nullopt));
  EXPECT_EQ(parse_header("<|channel|>final", Role::kAssistant),
            header(std::nullopt, std::nullopt, "final", std::nullopt));
  EXPECT_EQ(parse_header("assistant<|channel|>analysis to=python code", std::nullopt),
            header(std::nullopt, "python", "analysis", "code"));
  EXPECT_EQ(parse_header("assistant to=functions.f<|channel|>commentary<|constrain|>json",
                         std::nullopt),
            header(std::nullopt, "functions.f", "commentary", "<|constrain|>json"));
  EXPECT_EQ(parse_header("browser.search to=assistant<|channel|>commentary", std::nullopt),
            header("browser.search", "assistant", "commentary", std::nullopt, Role::kTool));
  EXPECT_EQ(parse_header("user", std::nullopt),
            header(std::nullopt, std::nullopt, std::nullopt, std::nullopt, Role::kUser));
  // A lone word after the role is a recipient.
  EXPECT_EQ(parse_header("assistant python", std::nullopt),
            header(std::nullopt, "python", std::nullopt, std::nullopt));
  EXPECT_THROW(parse_header("functions.f", std::nullopt), Error);  // unknown role, no recipient
  EXPECT_THROW(parse_header("", std::nullopt), Error);
  EXPECT_THROW(parse_header("assistant<|channel|> final", std::nullopt), Error);
  EXPECT_THROW(parse_header("assistant to=a b c", std::nullopt), Error);
}

// ---- JSON ----

TEST(HarmonyJson, ReferenceShapes) {
  // As the reference's Python binding serialises its pydantic models.
  const std::string json = R"({"messages": [
    {"role": "system", "content": [{"type": "system_content",
      "model_identity": "You are ChatGPT, a large language model trained by OpenAI.",
      "reasoning_effort": "Medium", "tools": null, "conversation_start_date": "2025-06-28",
      "knowledge_cutoff": "2024-06",
      "channel_config": {"valid_channels": ["analysis", "commentary", "final"],
                         "channel_required": true}}]},
    {"role": "developer", "content": [{"type": "developer_content", "instructions": null,
      "tools": {"functions": {"name": "functions", "description": null, "tools": [
        {"name": "lookup_weather", "description": "Weather.",
         "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                        "required": ["location"]}}]}}}]},
    {"role": "user", "content": [{"type": "text", "text": "Weather in SF?"}]},
    {"role": "assistant", "channel": "commentary", "recipient": "functions.lookup_weather",
     "content_type": "<|constrain|>json", "content": "{\"location\": \"SF\"}"},
    {"role": "tool", "name": "functions.lookup_weather", "recipient": "assistant",
     "channel": "commentary", "content": "{\"sunny\": true}"}]})";
  Conversation c = conversation_from_json(json);
  ASSERT_EQ(c.messages.size(), 5u);
  EXPECT_EQ(render_conversation_for_completion_text(c),
            "<|start|>system<|message|>You are ChatGPT, a large language model trained by "
            "OpenAI.\nKnowledge cutoff: 2024-06\nCurrent date: 2025-06-28\n\nReasoning: medium\n\n"
            "# Valid channels: analysis, commentary, final. Channel must be included for every "
            "message.\nCalls to these tools must go to the commentary channel: 'functions'."
            "<|end|><|start|>developer<|message|># Tools\n\n## functions\n\nnamespace functions "
            "{\n\n// Weather.\ntype lookup_weather = (_: {\nlocation: string,\n}) => any;\n\n} "
            "// namespace functions<|end|><|start|>user<|message|>Weather in SF?<|end|>"
            "<|start|>assistant to=functions.lookup_weather<|channel|>commentary "
            "<|constrain|>json<|message|>{\"location\": \"SF\"}<|call|><|start|>"
            "functions.lookup_weather to=assistant<|channel|>commentary<|message|>"
            "{\"sunny\": true}<|end|><|start|>assistant");
  // serde semantics: absent system fields stay absent.
  Message bare = message_from_json(R"({"role": "system", "content": [{"type": "system_content"}]})");
  EXPECT_EQ(render_text(bare), "<|start|>system<|message|><|end|>");
}

TEST(HarmonyJson, RoundTrip) {
  for (const Conversation& c :
       {simple_convo(), functions_with_parameters(), browser_and_function_tool(),
        ongoing_analysis(), keep_analysis_between_finals(),
        Conversation{{system(SystemContent()
                                 .with_conversation_start_date("2025-06-28")
                                 .with_browser_tool()
                                 .with_python_tool()),
                      tool_response()}}}) {
    std::string json = to_json(c);
    Conversation back = conversation_from_json(json);
    EXPECT_EQ(render_conversation_text(back), render_conversation_text(c)) << json;
    EXPECT_EQ(to_json(back), json);
  }
  Message m = Message::from_author_and_content({Role::kUser, "bob"}, TextContent{"hi"});
  EXPECT_EQ(to_json(m), R"({"role":"user","name":"bob","content":"hi"})");
  EXPECT_EQ(message_from_json(to_json(m)), m);
}

TEST(HarmonyJson, Errors) {
  auto expect_error = [](const std::string& json, const std::string& words) {
    try {
      conversation_from_json(json);
      ADD_FAILURE() << "no error for " << json;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  expect_error("{", "not valid JSON");
  expect_error("[]", "'messages' array");
  expect_error(R"({"messages": [{"role": "robot", "content": "x"}]})", "message 0: unknown role");
  expect_error(R"({"messages": [{"role": "user"}]})", "missing 'content'");
  expect_error(R"({"messages": [{"role": "user", "content": 3}]})", "string or an array");
  expect_error(R"({"messages": [{"role": "user", "content": [{"type": "image"}]}]})",
               "message 0, content 0: unknown content type 'image'");
  expect_error(R"({"messages": [{"role": "user", "content": "x", "channel": 1}]})",
               "'channel' must be a string");
  expect_error(R"({"messages": [{"role": "system", "content": [{"type": "system_content",
                  "reasoning_effort": "Extreme"}]}]})",
               "unknown reasoning_effort");
}

// ---- JSON schema -> TypeScript ----

TEST(HarmonySchema, ScalarsArraysAndUnions) {
  EXPECT_EQ(json_schema_to_typescript(R"({"type": "integer"})"), "number");
  EXPECT_EQ(json_schema_to_typescript(R"({"type": "boolean"})"), "boolean");
  EXPECT_EQ(json_schema_to_typescript(R"({"type": "array"})"), "Array<any>");
  EXPECT_EQ(json_schema_to_typescript(R"({"type": "array", "items": {"type": "integer"}})"),
            "number[]");
  EXPECT_EQ(json_schema_to_typescript(R"({"type": ["integer", "null"]})"), "number | null");
  EXPECT_EQ(json_schema_to_typescript(R"({"type": "string", "enum": ["a", "b"]})"), R"("a" | "b")");
  EXPECT_EQ(json_schema_to_typescript(R"({})"), "any");
  EXPECT_EQ(json_schema_to_typescript(R"({"oneOf": [{"type": "string", "description": "s"},
                                                    {"type": "number", "nullable": true,
                                                     "default": 1.5}]})"),
            "\n | string // s\n | number | null // default: 1.5");
  EXPECT_THROW(json_schema_to_typescript("[1,"), Error);
}

TEST(HarmonySchema, NestedObject) {
  // Nested properties are indented by four spaces; the closing brace by the parent's indent.
  EXPECT_EQ(json_schema_to_typescript(R"({"type": "object", "properties": {
                "point": {"type": "object", "description": "where",
                          "properties": {"x": {"type": "number", "default": 0}},
                          "required": ["x"]},
                "tags": {"type": "array", "items": {"type": "string"}}},
              "required": ["point"]})"),
            "{\n// where\npoint:     // where\n{\n    x: number, // default: 0\n    },\n"
            "tags?: string[],\n}");
}

// ---- tokens (o200k_harmony) ----

const HarmonyEncoding* encoding() {
  static std::unique_ptr<tokenizer::Tokenizer> tok = [] {
    auto path = test::o200k_tiktoken_path();
    return path ? std::make_unique<tokenizer::Tokenizer>(tokenizer::Tokenizer::o200k_harmony(*path))
                : nullptr;
  }();
  static std::unique_ptr<HarmonyEncoding> enc =
      tok ? std::make_unique<HarmonyEncoding>(*tok) : nullptr;
  return enc.get();
}

#define REQUIRE_ENCODING()                                                                  \
  const HarmonyEncoding* enc = encoding();                                                  \
  if (!enc) GTEST_SKIP() << "o200k_base.tiktoken not found: run scripts/fetch-vocab (or set " \
                            "EMBER_O200K_TIKTOKEN)";                                        \
  const tokenizer::Tokenizer& tok = enc->tokenizer();                                       \
  (void)tok

std::vector<Token> allow(const tokenizer::Tokenizer& tok, const std::string& text) {
  return tok.encode(text, tokenizer::Specials::kAllow);
}

// Token ids as the .txt files that hold them write them: whitespace-separated.
std::vector<Token> parse_ids(const std::string& text) {
  std::vector<Token> ids;
  std::istringstream in(text);
  for (unsigned long id; in >> id;) ids.push_back(static_cast<Token>(id));
  return ids;
}

struct RenderCase {
  const char* file;
  Conversation conversation;
  bool completion = true;  // ends in <|start|>assistant
  RenderConversationConfig config = {};
};

std::vector<RenderCase> render_cases() {
  std::vector<RenderCase> cases = {
      {"test_simple_convo", simple_convo()},
      {"test_simple_convo_low_effort", effort_convo(ReasoningEffort::kLow, true)},
      {"test_simple_convo_medium_effort", effort_convo(ReasoningEffort::kMedium, true)},
      {"test_simple_convo_high_effort", effort_convo(ReasoningEffort::kHigh, true)},
      {"test_simple_convo_low_effort_no_instruction", effort_convo(ReasoningEffort::kLow, false)},
      {"test_simple_convo_medium_effort_no_instruction",
       effort_convo(ReasoningEffort::kMedium, false)},
      {"test_simple_convo_high_effort_no_instruction", effort_convo(ReasoningEffort::kHigh, false)},
      {"test_reasoning_system_message", reasoning_system_message()},
      {"test_reasoning_system_message_no_instruction", reasoning_system_message_no_instruction()},
      {"test_reasoning_system_message_with_dates", reasoning_system_message_with_dates()},
      {"test_render_functions_with_parameters", functions_with_parameters()},
      {"test_no_tools", {{system(SystemContent().with_conversation_start_date("2025-06-28"))}}},
      {"test_browser_tool_only",
       {{system(SystemContent().with_conversation_start_date("2025-06-28").with_browser_tool())}}},
      {"test_browser_and_function_tool", browser_and_function_tool()},
      {"test_browser_and_python_tool",
       {{system(SystemContent()
                    .with_conversation_start_date("2025-06-28")
                    .with_browser_tool()
                    .with_python_tool())}}},
      {"test_dropping_cot_by_default",
       cot_convo("User asks: “What is 2 + 2?” Simple arithmetic. Provide answer.")},
      {"test_does_not_drop_if_ongoing_analysis", ongoing_analysis()},
      {"test_preserve_cot",
       cot_convo(R"(User asks a simple question: "What is 2 + 2?" The answer: 4.)"), true,
       {false}},
      {"test_keep_analysis_between_finals", keep_analysis_between_finals(), false},
  };
  return cases;
}

TEST(HarmonyTokens, RenderingsEncodeLikeTheExpectedText) {
  REQUIRE_ENCODING();
  if (!test::shared_dir("harmony")) GTEST_SKIP() << "../shared/harmony not found";
  for (const RenderCase& c : render_cases()) {
    auto expected = load_expected(c.file);
    ASSERT_TRUE(expected) << c.file;
    std::vector<Token> tokens =
        c.completion ? enc->render_conversation_for_completion(c.conversation, Role::kAssistant,
                                                               c.config)
                     : enc->render_conversation(c.conversation, c.config);
    // As the reference's tests: the rendering is the expected text with specials allowed, and
    // it decodes back to that text.
    EXPECT_EQ(tokens, allow(tok, *expected)) << c.file;
    EXPECT_EQ(tok.decode(tokens), *expected) << c.file;
  }
}

TEST(HarmonyTokens, SpecialTokens) {
  REQUIRE_ENCODING();
  EXPECT_EQ(enc->stop_tokens(), (std::vector<Token>{200002, 200012, 200007}));
  EXPECT_EQ(enc->stop_tokens_for_assistant_actions(), (std::vector<Token>{200002, 200012}));
  // <|constrain|> in a content type is the special token; in content it is text.
  Message call = Message::from_role_and_content(Role::kAssistant, "<|constrain|>")
                     .with_channel("commentary")
                     .with_recipient("functions.f")
                     .with_content_type("<|constrain|>json");
  std::vector<Token> t = enc->render(call);
  EXPECT_EQ(std::count(t.begin(), t.end(), tok.special_or_throw("<|constrain|>")), 1);
  EXPECT_EQ(t.back(), tok.special_or_throw("<|call|>"));
  EXPECT_EQ(tok.decode(t), render_text(call));
  // Training: the final answer ends in <|return|>.
  Conversation c{{user("hi"), assistant("hello", "final")}};
  std::vector<Token> train = enc->render_conversation_for_training(c);
  std::vector<Token> plain = enc->render_conversation(c);
  EXPECT_EQ(train.back(), 200002u);
  EXPECT_EQ(plain.back(), 200007u);
  EXPECT_TRUE(std::equal(plain.begin(), plain.end() - 1, train.begin()));
}

// Feeds `tokens` one at a time; checks that the deltas add up to each message's content.
std::vector<Message> parse_streaming(const HarmonyEncoding& enc, const std::vector<Token>& tokens,
                                     std::optional<Role> role, ParseOptions options = {}) {
  StreamableParser parser(enc, role, options);
  std::string deltas;
  size_t done = 0;
  for (Token t : tokens) {
    parser.process(t);
    if (parser.last_content_delta()) deltas += *parser.last_content_delta();
    if (parser.state() == StreamableParser::State::kContent) {
      EXPECT_EQ(parser.current_content(), deltas);
    }
    if (parser.messages().size() > done) {
      // A finished message's text is its deltas plus what was held back at its end.
      EXPECT_EQ(parser.messages().back().text().substr(0, deltas.size()), deltas);
      deltas.clear();
      done = parser.messages().size();
    }
  }
  parser.process_eos();
  EXPECT_EQ(parser.tokens(), tokens);
  return parser.messages();
}

void expect_parses(const HarmonyEncoding& enc, const std::vector<Token>& tokens,
                   std::optional<Role> role, const std::vector<Message>& expected,
                   ParseOptions options = {}) {
  EXPECT_EQ(enc.parse_messages_from_completion_tokens(tokens, role, options), expected);
  EXPECT_EQ(parse_streaming(enc, tokens, role, options), expected);
}

TEST(HarmonyParse, SimpleReasoningResponse) {
  REQUIRE_ENCODING();
  EXPECTED_OR_SKIP(ids, "test_simple_reasoning_response");
  expect_parses(*enc, parse_ids(ids), Role::kAssistant,
                {assistant(R"(User asks: "What is 2 + 2?" Simple arithmetic. Provide answer.)",
                           "analysis"),
                 assistant("2 + 2 = 4.", "final")});
}

TEST(HarmonyParse, SimpleToolCall) {
  REQUIRE_ENCODING();
  EXPECTED_OR_SKIP(ids, "test_simple_tool_call");
  std::vector<Message> expected = {
      assistant(R"(User asks: "What is the weather in Tokyo?" We need to use lookup_weather tool.)",
                "analysis"),
      Message::from_role_and_content(Role::kAssistant, R"({"location": "Tokyo"})")
          .with_channel("analysis")
          .with_recipient("lookup_weather")
          .with_content_type("code")};
  // The file ("assistant to=lookup_weather<|channel|>analysis code", after a <|return|>) …
  expect_parses(*enc, parse_ids(ids), Role::kAssistant, expected);
  // … and src/tests.rs's own ids ("assistant<|channel|>analysis to=lookup_weather code").
  std::vector<Token> inline_ids = {
      200005, 35644,  200008, 1844,   31064,  25,     392,    4827,  382,    290,   11122,
      306,    40510,  16842,  1416,   1309,   316,    1199,   37342, 170154, 4584,  13,
      200007, 200006, 173781, 200005, 35644,  316,    28,     29712, 170154, 3490,  200008,
      10848,  7693,   1243,   392,    173844, 18583};
  expect_parses(*enc, inline_ids, Role::kAssistant, expected);
}

TEST(HarmonyParse, StreamableParser) {
  REQUIRE_ENCODING();
  EXPECTED_OR_SKIP(text, "test_streamable_parser");
  std::vector<Token> tokens = allow(tok, text);
  std::vector<Message> expected = {
      assistant(text.substr(text.find("User asks"), text.find("<|end|>") - text.find("User asks")),
                "analysis"),
      Message::from_role_and_content(
          Role::kAssistant, R"({"query": "current US president July 2025", "topn": 10, "source": "news"})")
          .with_channel("commentary")
          .with_recipient("browser.search")
          .with_content_type("code"),
      Message::from_author_and_content({Role::kTool, "browser.search"},
                                       TextContent{R"({"result": "https://openai.com/"})"})
          .with_channel("commentary")
          .with_recipient("assistant"),
  };
  expect_parses(*enc, tokens, Role::kAssistant, expected);

  // What a client sees while the tool call streams in.
  StreamableParser p(*enc, Role::kAssistant);
  EXPECT_EQ(p.current_role(), Role::kAssistant);
  std::vector<Token> call = allow(tok, R"(<|start|>assistant<|channel|>commentary to=browser.search code<|message|>{"query")");
  for (Token t : allow(tok, "<|channel|>analysis<|message|>x<|end|>")) p.process(t);
  EXPECT_EQ(p.current_role(), std::nullopt);
  for (Token t : call) p.process(t);
  EXPECT_EQ(p.state(), StreamableParser::State::kContent);
  EXPECT_EQ(p.current_role(), Role::kAssistant);
  EXPECT_EQ(p.current_channel(), "commentary");
  EXPECT_EQ(p.current_recipient(), "browser.search");
  EXPECT_EQ(p.current_content_type(), "code");
  EXPECT_EQ(p.current_content(), R"({"query")");
  p.process(tok.special_or_throw("<|call|>"));
  EXPECT_EQ(p.state(), StreamableParser::State::kExpectStart);
  EXPECT_EQ(p.current_channel(), std::nullopt);
  EXPECT_EQ(p.current_content(), "");
  ASSERT_EQ(p.messages().size(), 2u);
  EXPECT_EQ(p.messages()[1].text(), R"({"query")");
}

TEST(HarmonyParse, ToolResponseParsing) {
  REQUIRE_ENCODING();
  EXPECTED_OR_SKIP(text, "test_tool_response_parsing");
  std::vector<Token> tokens = allow(tok, text);
  EXPECT_EQ(tok.decode(tokens), text);
  // The rendered message less its <|end|>; the end of the stream finishes it.
  std::vector<Token> rendered = enc->render(tool_response());
  rendered.pop_back();
  EXPECT_EQ(rendered, tokens);
  expect_parses(*enc, tokens, std::nullopt, {tool_response()});
}

TEST(HarmonyParse, ConstrainedToolCalls) {
  REQUIRE_ENCODING();
  const std::string weather = R"({"location": "Tokyo"})";
  auto call = [](const std::string& content, const std::string& type) {
    return Message::from_role_and_content(Role::kAssistant, content)
        .with_channel("commentary")
        .with_recipient("functions.get_weather")
        .with_content_type(type);
  };
  // Recipient before or after the channel, with or without a space before <|constrain|>.
  for (const char* header : {"assistant to=functions.get_weather<|channel|>commentary <|constrain|>json",
                             "assistant to=functions.get_weather<|channel|>commentary<|constrain|>json",
                             "assistant<|channel|>commentary to=functions.get_weather <|constrain|>json",
                             "assistant<|channel|>commentary to=functions.get_weather<|constrain|>json"}) {
    std::string text = std::string("<|start|>") + header + "<|message|>" + weather + "<|call|>";
    expect_parses(*enc, allow(tok, text), std::nullopt, {call(weather, "<|constrain|>json")});
  }
  // The canonical form renders back to the same tokens.
  std::string text = "<|start|>assistant to=functions.get_weather<|channel|>commentary "
                     "<|constrain|>json<|message|>" + weather + "<|call|>";
  EXPECT_EQ(enc->render(call(weather, "<|constrain|>json")), allow(tok, text));
  // After a prompt ending in "<|start|>assistant".
  expect_parses(*enc,
                allow(tok, "<|channel|>commentary to=functions.get_weather <|constrain|>json"
                           "<|message|>" + weather + "<|call|>"),
                Role::kAssistant, {call(weather, "<|constrain|>json")});
}

TEST(HarmonyParse, RenderedConversationsParseBack) {
  REQUIRE_ENCODING();
  Conversation c = cot_convo("thinking");
  c.messages.push_back(Message::from_role_and_content(Role::kAssistant, R"({"a": 1})")
                           .with_channel("commentary")
                           .with_recipient("functions.f")
                           .with_content_type("<|constrain|>json"));
  c.messages.push_back(Message::from_author_and_content({Role::kTool, "functions.f"},
                                                        TextContent{"42 💖 ünïcödé"})
                           .with_recipient("assistant")
                           .with_channel("commentary"));
  c.messages.push_back(assistant("The answer is 42.", "final"));
  expect_parses(*enc, enc->render_conversation(c, {false}), std::nullopt, c.messages);
}

TEST(HarmonyParse, MissingMessageTokenIsAnErrorUnlessLenient) {
  REQUIRE_ENCODING();
  const std::string rest =
      "<|start|>assistant<|channel|>analysis<|message|>We must refuse<|end|>"
      "<|start|>assistant<|channel|>final<|message|>I'm sorry, but I can't help with that."
      "<|return|>";
  std::vector<Message> tail = {assistant("We must refuse", "analysis"),
                               assistant("I'm sorry, but I can't help with that.", "final")};
  struct Case {
    std::string text;
    std::vector<Message> expected;
  };
  std::vector<Case> cases = {
      {"I must refuse<|end|>" + rest,
       {Message::from_role_and_content(Role::kAssistant, "I must refuse"), tail[0], tail[1]}},
      {"<|channel|>analysis I must refuse<|end|>" + rest,
       {assistant("I must refuse", "analysis"), tail[0], tail[1]}},
      {"<|channel|>commentary Hello<|end|>", {assistant("Hello", "commentary")}},
      {"... Let's use the tool.<|end|><|start|>assistant to=functions.get_weather<|channel|>"
       R"(commentary json<|message|>{"location": "Tokyo"}<|call|>)",
       {Message::from_role_and_content(Role::kAssistant, "... Let's use the tool."),
        Message::from_role_and_content(Role::kAssistant, R"({"location": "Tokyo"})")
            .with_channel("commentary")
            .with_recipient("functions.get_weather")
            .with_content_type("json")}},
  };
  for (const Case& c : cases) {
    std::vector<Token> tokens = allow(tok, c.text);
    EXPECT_THROW(enc->parse_messages_from_completion_tokens(tokens, Role::kAssistant), Error)
        << c.text;
    expect_parses(*enc, tokens, Role::kAssistant, c.expected, ParseOptions{false});
  }
}

TEST(HarmonyParse, MalformedInputIsAnError) {
  REQUIRE_ENCODING();
  auto parse = [&](const std::string& text, std::optional<Role> role = std::nullopt) {
    return enc->parse_messages_from_completion_tokens(allow(tok, text), role);
  };
  auto expect_error = [&](const std::string& text, const std::string& words,
                          std::optional<Role> role = std::nullopt) {
    try {
      parse(text, role);
      ADD_FAILURE() << "no error for " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  expect_error("hello<|start|>user<|message|>x<|end|>", "<|start|>");        // text before a message
  expect_error("<|start|>user<|message|>x<|end|>oops", "<|start|>");         // text between messages
  expect_error("<|start|>assistant<|channel|>final", "ended inside a message header");
  expect_error("<|start|>assistant<|channel|>final<|end|>", "<|end|>");       // header never ends
  expect_error("<|start|>assistant<|start|>assistant<|message|>x", "<|start|>");
  expect_error("<|start|>robot<|message|>x<|end|>", "unknown role 'robot'");
  expect_error("<|start|><|message|>x<|end|>", "no role");
  expect_error("<|start|>assistant<|channel|><|message|>x<|end|>", "without a channel name");
  expect_error("<|start|>assistant to=a b c<|message|>x<|end|>", "remaining in message header");
  // An id outside the vocabulary: an error in a header, U+FFFD in content (as the reference).
  StreamableParser p(*enc, std::nullopt);
  p.process(tok.special_or_throw("<|start|>"));
  EXPECT_THROW(p.process(4000000000u), Error);
  StreamableParser q(*enc, std::nullopt);
  for (Token t : allow(tok, "<|start|>assistant<|channel|>analysis<|message|>Practice invalid "
                            "token handling.")) {
    q.process(t);
  }
  q.process(4000000000u);
  q.process_eos();
  EXPECT_EQ(q.messages(), (std::vector<Message>{assistant(
                              "Practice invalid token handling.\xEF\xBF\xBD", "analysis")}));
  // Nothing at all is no message; a stop token right after a stop token is an error.
  EXPECT_TRUE(parse("").empty());
  expect_error("<|start|>user<|message|>x<|end|><|end|>", "<|end|>");
}

TEST(HarmonyParse, RandomTokensNeverCrash) {
  REQUIRE_ENCODING();
  // Specials, header words and plain text in random order: the parser either parses or throws
  // ember::Error, in both modes.
  std::vector<Token> pool;
  for (const char* s : {"<|start|>", "<|message|>", "<|end|>", "<|return|>", "<|call|>",
                        "<|channel|>", "<|constrain|>"}) {
    pool.push_back(tok.special_or_throw(s));
  }
  for (Token t : allow(tok, "assistant user tool to=functions.f analysis final json code x \xF0\x9F\x92\x96"))
    pool.push_back(t);
  pool.push_back(9552);  // " \xF0\x9F": an incomplete character
  std::mt19937 rng(7);
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<Token> tokens(rng() % 24);
    for (Token& t : tokens) t = pool[rng() % pool.size()];
    for (bool strict : {true, false}) {
      std::optional<Role> role;
      if (trial % 2) role = Role::kAssistant;
      try {
        auto messages = enc->parse_messages_from_completion_tokens(tokens, role, {strict});
        EXPECT_LE(messages.size(), tokens.size());
      } catch (const Error&) {
      }
    }
  }
}

TEST(HarmonyParse, Utf8AcrossTokens) {
  REQUIRE_ENCODING();
  const std::string fffd = "\xEF\xBF\xBD";
  std::vector<Token> prefix = allow(tok, "<|start|>assistant<|message|>");
  std::vector<Token> end = allow(tok, "<|end|>");
  auto cat = [](std::initializer_list<std::vector<Token>> parts) {
    std::vector<Token> out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
  };
  auto message = [](const std::string& text) {
    return Message::from_role_and_content(Role::kAssistant, text);
  };
  // 9552 is " \xF0\x9F": a space and the start of a four-byte character that never completes.
  ASSERT_EQ(tok.token_bytes(9552), " \xF0\x9F");
  expect_parses(*enc, cat({prefix, {9552, 9552}, tok.encode("worked"), end}), std::nullopt,
                {message(" " + fffd + " " + fffd + "worked")});
  expect_parses(*enc, cat({prefix, {9552}, tok.encode("XY"), end}), std::nullopt,
                {message(" " + fffd + "XY")});
  expect_parses(*enc, cat({prefix, {9552}, tok.encode(" interesting"), end}), std::nullopt,
                {message(" " + fffd + " interesting")});
  // Held-back bytes end with their message and do not leak into the next.
  expect_parses(*enc, cat({prefix, {9552, 9552}, end, prefix, tok.encode("Hi"), end}),
                std::nullopt, {message(" " + fffd + " " + fffd), message("Hi")});
  // The end of the stream flushes what is held back.
  expect_parses(*enc, cat({prefix, {9552}, tok.encode("Hi")}), std::nullopt,
                {message(" " + fffd + "Hi")});

  // A character split over tokens comes out whole, once complete.
  StreamableParser p(*enc, std::nullopt);
  for (Token t : prefix) p.process(t);
  std::vector<Token> heart = tok.encode("💖");
  ASSERT_GE(heart.size(), 2u);
  for (size_t i = 0; i + 1 < heart.size(); ++i) {
    p.process(heart[i]);
    EXPECT_EQ(p.last_content_delta(), std::nullopt);
    EXPECT_EQ(p.current_content(), "");
  }
  p.process(heart.back());
  EXPECT_EQ(p.last_content_delta(), "💖");
  EXPECT_EQ(p.current_content(), "💖");
  for (Token t : end) p.process(t);
  EXPECT_EQ(p.last_content_delta(), std::nullopt);
  EXPECT_EQ(p.messages(), (std::vector<Message>{message("💖")}));

  // Without a stop token the content keeps growing, deltas and all.
  StreamableParser s(*enc, std::nullopt);
  std::string deltas;
  for (Token t : cat({prefix, {9552}, tok.encode(" interesting"), tok.encode(" story")})) {
    s.process(t);
    if (s.last_content_delta()) deltas += *s.last_content_delta();
  }
  EXPECT_EQ(s.current_content(), " " + fffd + " interesting story");
  EXPECT_EQ(deltas, s.current_content());
  s.process(tok.encode("Y")[0]);
  EXPECT_EQ(s.last_content_delta(), "Y");

  const std::string tricky =
      "Hello Müller, Γειά σου, Привет, שלום, مرحبا, नमस्ते, こんにちは, 안녕하세요, 你好. Normalized "
      "(naïve) vs. decomposed (naïve) characters. Some emojis: 😊👋🏾👨‍👩‍👧‍👦🇺🇸.";
  expect_parses(*enc, cat({prefix, tok.encode(tricky), end}), std::nullopt, {message(tricky)});
}

}  // namespace
}  // namespace ember::harmony
