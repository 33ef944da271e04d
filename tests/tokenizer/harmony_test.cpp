// Harmony rendering and parsing against openai/harmony's expected outputs (test-data/, copied to
// ../shared/harmony/). Each conversation is the one built under the same name in the reference's
// src/tests.rs or tests/test_harmony.py.
#include "ember/harmony.h"

#include <gtest/gtest.h>

#include <fstream>
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

}  // namespace
}  // namespace ember::harmony
