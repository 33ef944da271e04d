// Harmony messages and their rendering (openai/harmony src/chat.rs, src/encoding.rs).
#include "ember/harmony.h"

#include <nlohmann/json.hpp>

#include <set>
#include <utility>

#include "ember/core/error.h"
#include "tokenizer/harmony_render.h"

namespace ember::harmony {

// Schemas keep their keys in the order written (the reference's serde_json "preserve_order").
using Json = nlohmann::ordered_json;

std::string_view role_name(Role role) {
  switch (role) {
    case Role::kUser: return "user";
    case Role::kAssistant: return "assistant";
    case Role::kSystem: return "system";
    case Role::kDeveloper: return "developer";
    case Role::kTool: return "tool";
  }
  return "?";
}

std::optional<Role> role_from_name(std::string_view name) {
  for (Role r : {Role::kUser, Role::kAssistant, Role::kSystem, Role::kDeveloper, Role::kTool}) {
    if (role_name(r) == name) return r;
  }
  return std::nullopt;
}

// ---- builders ----

SystemContent SystemContent::with_model_identity(std::string identity) && {
  model_identity = std::move(identity);
  return std::move(*this);
}
SystemContent SystemContent::with_reasoning_effort(ReasoningEffort effort) && {
  reasoning_effort = effort;
  return std::move(*this);
}
SystemContent SystemContent::with_conversation_start_date(std::string date) && {
  conversation_start_date = std::move(date);
  return std::move(*this);
}
SystemContent SystemContent::with_knowledge_cutoff(std::string cutoff) && {
  knowledge_cutoff = std::move(cutoff);
  return std::move(*this);
}
SystemContent SystemContent::with_required_channels(std::vector<std::string> channels) && {
  channel_config = ChannelConfig::require_channels(std::move(channels));
  return std::move(*this);
}
SystemContent SystemContent::with_tools(ToolNamespaceConfig ns) && {
  std::string name = ns.name;
  tools.insert_or_assign(std::move(name), std::move(ns));
  return std::move(*this);
}
SystemContent SystemContent::with_browser_tool() && {
  return std::move(*this).with_tools(ToolNamespaceConfig::browser());
}
SystemContent SystemContent::with_python_tool() && {
  return std::move(*this).with_tools(ToolNamespaceConfig::python());
}

DeveloperContent DeveloperContent::with_instructions(std::string text) && {
  instructions = std::move(text);
  return std::move(*this);
}
DeveloperContent DeveloperContent::with_tools(ToolNamespaceConfig ns) && {
  std::string name = ns.name;
  tools.insert_or_assign(std::move(name), std::move(ns));
  return std::move(*this);
}
DeveloperContent DeveloperContent::with_function_tools(std::vector<ToolDescription> fns) && {
  return std::move(*this).with_tools({"functions", std::nullopt, std::move(fns)});
}

Message Message::from_author_and_content(Author author, Content content) {
  Message m;
  m.author = std::move(author);
  m.content.push_back(std::move(content));
  return m;
}
Message Message::from_role_and_content(Role role, Content content) {
  return from_author_and_content({role, std::nullopt}, std::move(content));
}
Message Message::from_role_and_content(Role role, std::string text) {
  return from_role_and_content(role, Content(TextContent{std::move(text)}));
}
Message Message::with_channel(std::string c) && {
  channel = std::move(c);
  return std::move(*this);
}
Message Message::with_recipient(std::string r) && {
  recipient = std::move(r);
  return std::move(*this);
}
Message Message::with_content_type(std::string t) && {
  content_type = std::move(t);
  return std::move(*this);
}
std::string Message::text() const {
  std::string s;
  for (const Content& c : content) {
    if (const auto* t = std::get_if<TextContent>(&c)) s += t->text;
  }
  return s;
}

// The built-in tools, word for word as the model was trained on them (chat.rs).
ToolNamespaceConfig ToolNamespaceConfig::browser() {
  return {
      "browser",
      "Tool for browsing.\n"
      "The `cursor` appears in brackets before each browsing display: `[{cursor}]`.\n"
      "Cite information from the tool using the following format:\n"
      "`【{cursor}†L{line_start}(-L{line_end})?】`, for example: `【6†L9-L11】` or `【8†L3】`.\n"
      "Do not quote more than 10 words directly from the tool output.\n"
      "sources=web (default: web)",
      {
          {"search", "Searches for information related to `query` and displays `topn` results.",
           R"({"type": "object", "properties": {"query": {"type": "string"},
               "topn": {"type": "number", "default": 10}, "source": {"type": "string"}},
               "required": ["query"]})"},
          {"open",
           "Opens the link `id` from the page indicated by `cursor` starting at line number "
           "`loc`, showing `num_lines` lines.\n"
           "Valid link ids are displayed with the formatting: `【{id}†.*】`.\n"
           "If `cursor` is not provided, the most recent page is implied.\n"
           "If `id` is a string, it is treated as a fully qualified URL associated with "
           "`source`.\n"
           "If `loc` is not provided, the viewport will be positioned at the beginning of the "
           "document or centered on the most relevant passage, if available.\n"
           "Use this function without `id` to scroll to a new location of an opened page.",
           R"({"type": "object", "properties": {
               "id": {"type": ["number", "string"], "default": -1},
               "cursor": {"type": "number", "default": -1},
               "loc": {"type": "number", "default": -1},
               "num_lines": {"type": "number", "default": -1},
               "view_source": {"type": "boolean", "default": false},
               "source": {"type": "string"}}})"},
          {"find",
           "Finds exact matches of `pattern` in the current page, or the page given by "
           "`cursor`.",
           R"({"type": "object", "properties": {"pattern": {"type": "string"},
               "cursor": {"type": "number", "default": -1}}, "required": ["pattern"]})"},
      }};
}

ToolNamespaceConfig ToolNamespaceConfig::python() {
  return {"python",
          "Use this tool to execute Python code in your chain of thought. The code will not be "
          "shown to the user. This tool should be used for internal reasoning, but not for code "
          "that is intended to be visible to the user (e.g. when creating plots, tables, or "
          "files).\n\n"
          "When you send a message containing Python code to python, it will be executed in a "
          "stateful Jupyter notebook environment. python will respond with the output of the "
          "execution or time out after 120.0 seconds. The drive at '/mnt/data' can be used to "
          "save and persist user files. Internet access for this session is UNKNOWN. Depends on "
          "the cluster.",
          {}};
}

// ---- JSON schema -> TypeScript-like types (encoding.rs json_schema_to_typescript) ----
namespace {

const std::string* string_field(const Json& schema, const char* key) {
  if (!schema.is_object()) return nullptr;
  auto it = schema.find(key);
  return it != schema.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
}

const Json* field(const Json& schema, const char* key) {
  if (!schema.is_object()) return nullptr;
  auto it = schema.find(key);
  return it != schema.end() ? &*it : nullptr;
}

bool is_enum(const Json& schema) {
  const Json* e = field(schema, "enum");
  return e && e->is_array() && !e->empty();
}

bool is_nullable(const Json& schema) {
  const Json* n = field(schema, "nullable");
  return n && n->is_boolean() && n->get<bool>();
}

// "default: …" as property comments show it: strings quoted, except an enum's (already quoted
// in the type).
std::string default_comment(const Json& schema, const Json& def) {
  if (def.is_string()) {
    const auto& s = def.get_ref<const std::string&>();
    return is_enum(schema) ? "default: " + s : "default: \"" + s + "\"";
  }
  return "default: " + def.dump();
}

// Rust's str::lines(): '\n' separated, a trailing '\r' dropped, no empty last line.
std::vector<std::string> lines(std::string_view s) {
  std::vector<std::string> out;
  while (!s.empty()) {
    size_t nl = s.find('\n');
    std::string_view line = s.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    out.emplace_back(line);
    if (nl == std::string_view::npos) break;
    s.remove_prefix(nl + 1);
  }
  return out;
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += sep;
    out += parts[i];
  }
  return out;
}

std::string to_typescript(const Json& schema, const std::string& indent);

// A oneOf alternative: its type, "| null" when nullable.
std::string one_of_variant(const Json& variant, const std::string& indent) {
  std::string type = to_typescript(variant, indent + "   ");
  if (is_nullable(variant) && type.find("null") == std::string::npos) type += " | null";
  return type;
}

std::string object_to_typescript(const Json& schema, const std::string& indent) {
  std::string out;
  if (const auto* desc = string_field(schema, "description")) out += indent + "// " + *desc + "\n";
  out += "{\n";
  const Json* props = field(schema, "properties");
  if (props && props->is_object()) {
    std::set<std::string> required;
    if (const Json* req = field(schema, "required"); req && req->is_array()) {
      for (const Json& r : *req) {
        if (r.is_string()) required.insert(r.get<std::string>());
      }
    }
    for (const auto& [key, val] : props->items()) {
      const std::string optional = required.count(key) ? "" : "?";
      if (const auto* title = string_field(val, "title")) {
        out += indent + "// " + *title + "\n" + indent + "//\n";
      }
      const Json* one_of = field(val, "oneOf");
      if (!one_of) {
        if (const auto* desc = string_field(val, "description")) {
          out += indent + "// " + *desc + "\n";
        }
      }
      if (const Json* ex = field(val, "examples"); ex && ex->is_array() && !ex->empty()) {
        out += indent + "// Examples:\n";
        for (const Json& e : *ex) {
          if (e.is_string()) out += indent + "// - \"" + e.get<std::string>() + "\"\n";
        }
      }
      if (one_of && one_of->is_array()) {
        // The property's description goes above it, unless the first alternative repeats it.
        const std::string* prop_desc = string_field(val, "description");
        const std::string* first_desc =
            one_of->empty() ? nullptr : string_field(one_of->front(), "description");
        bool desc_above = prop_desc && !(first_desc && *first_desc == *prop_desc);
        if (desc_above) out += indent + "// " + *prop_desc + "\n";
        if (const Json* def = field(val, "default")) {
          out += indent + "// " + default_comment(val, *def) + "\n";
        }
        out += indent + key + optional + ":\n";
        for (size_t i = 0; i < one_of->size(); ++i) {
          const Json& variant = (*one_of)[i];
          out += indent + " | " + one_of_variant(variant, indent);
          std::vector<std::string> trailing;
          if (!(i == 0 && desc_above)) {
            const std::string* d = string_field(variant, "description");
            if (d && !(prop_desc && *d == *prop_desc)) trailing.push_back(*d);
          }
          if (const Json* def = field(variant, "default")) {
            trailing.push_back(default_comment(variant, *def));
          }
          if (!trailing.empty()) out += " // " + join(trailing, " ");
          out += "\n";
        }
        out += indent + ",\n";
        continue;
      }
      std::string type = to_typescript(val, indent + "    ");
      if (is_nullable(val) && type.find("null") == std::string::npos) type += " | null";
      out += indent + key + optional + ": " + type + ",";
      if (!one_of) {
        if (const Json* def = field(val, "default")) out += " // " + default_comment(val, *def);
      }
      out += "\n";
    }
  }
  out += indent + "}";
  return out;
}

std::string to_typescript(const Json& schema, const std::string& indent) {
  if (const Json* one_of = field(schema, "oneOf"); one_of && one_of->is_array()) {
    std::string out;
    for (const Json& variant : *one_of) {
      out += "\n" + indent + " | " + one_of_variant(variant, indent);
      std::vector<std::string> trailing;
      if (const auto* d = string_field(variant, "description")) trailing.push_back(*d);
      if (const Json* def = field(variant, "default")) {
        // Here (unlike for properties) an enum's string default is shown as JSON.
        trailing.push_back(def->is_string() && !is_enum(variant)
                               ? "default: \"" + def->get<std::string>() + "\""
                               : "default: " + def->dump());
      }
      if (!trailing.empty()) out += " // " + join(trailing, " ");
    }
    return out;
  }
  const Json* type = field(schema, "type");
  if (type && type->is_array()) {
    std::vector<std::string> names;
    for (const Json& t : *type) {
      if (t.is_string()) names.push_back(t == "integer" ? "number" : t.get<std::string>());
    }
    if (!names.empty()) return join(names, " | ");
  }
  if (type && type->is_string()) {
    const auto& t = type->get_ref<const std::string&>();
    if (t == "object") return object_to_typescript(schema, indent);
    if (t == "string") {
      if (const Json* e = field(schema, "enum"); e && e->is_array()) {
        std::vector<std::string> values;
        for (const Json& v : *e) {
          if (v.is_string()) values.push_back("\"" + v.get<std::string>() + "\"");
        }
        if (!values.empty()) return join(values, " | ");
      }
      return "string";
    }
    if (t == "number" || t == "integer") return "number";
    if (t == "boolean") return "boolean";
    if (t == "array") {
      const Json* items = field(schema, "items");
      return items ? to_typescript(*items, indent) + "[]" : "Array<any>";
    }
  }
  return "any";
}

Json parse_schema(std::string_view text, std::string_view what) {
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {
    throw_error("harmony: {} is not valid JSON: {}", what, e.what());
  }
}

// "# Tools" and one "## namespace" section each (encoding.rs template_tools_section).
std::string tools_section(const ToolNamespaces& tools) {
  std::vector<std::string> sections = {"# Tools"};
  for (const auto& [key, ns] : tools) {
    std::vector<std::string> s = {"## " + ns.name + "\n"};
    if (ns.description) {
      for (const std::string& line : lines(*ns.description)) {
        s.push_back(ns.tools.empty() ? line : "// " + line);
      }
    }
    if (!ns.tools.empty()) {
      s.push_back("namespace " + ns.name + " {\n");
      for (const ToolDescription& tool : ns.tools) {
        for (const std::string& line : lines(tool.description)) s.push_back("// " + line);
        if (tool.parameters) {
          Json schema = parse_schema(*tool.parameters, "parameters of tool '" + tool.name + "'");
          s.push_back("type " + tool.name + " = (_: " + to_typescript(schema, "") + ") => any;\n");
        } else {
          s.push_back("type " + tool.name + " = () => any;\n");
        }
      }
      s.push_back("} // namespace " + ns.name);
    }
    sections.push_back(join(s, "\n"));
  }
  return join(sections, "\n\n");
}

std::string_view effort_name(ReasoningEffort e) {
  switch (e) {
    case ReasoningEffort::kLow: return "low";
    case ReasoningEffort::kMedium: return "medium";
    case ReasoningEffort::kHigh: return "high";
  }
  return "?";
}

std::string system_text(const SystemContent& sys, bool has_function_tools) {
  std::vector<std::string> sections;
  std::vector<std::string> top;
  if (sys.model_identity) top.push_back(*sys.model_identity);
  if (sys.knowledge_cutoff) top.push_back("Knowledge cutoff: " + *sys.knowledge_cutoff);
  if (sys.conversation_start_date) top.push_back("Current date: " + *sys.conversation_start_date);
  if (!top.empty()) sections.push_back(join(top, "\n"));
  if (sys.reasoning_effort) {
    sections.push_back("Reasoning: " + std::string(effort_name(*sys.reasoning_effort)));
  }
  if (!sys.tools.empty()) sections.push_back(tools_section(sys.tools));
  if (sys.channel_config && !sys.channel_config->valid_channels.empty()) {
    std::string s = "# Valid channels: " + join(sys.channel_config->valid_channels, ", ") + ".";
    if (sys.channel_config->channel_required) {
      s += " Channel must be included for every message.";
    }
    if (has_function_tools) {
      s += "\nCalls to these tools must go to the commentary channel: 'functions'.";
    }
    sections.push_back(s);
  }
  return join(sections, "\n\n");
}

std::string developer_text(const DeveloperContent& dev) {
  std::vector<std::string> sections;
  if (dev.instructions) {
    sections.push_back("# Instructions");
    sections.push_back(*dev.instructions);
  }
  if (!dev.tools.empty()) sections.push_back(tools_section(dev.tools));
  return join(sections, "\n\n");
}

bool has_function_tools(const Conversation& conversation) {
  for (const Message& m : conversation.messages) {
    for (const Content& c : m.content) {
      const auto* dev = std::get_if<DeveloperContent>(&c);
      if (!dev) continue;
      auto it = dev->tools.find("functions");
      if (it != dev->tools.end() && !it->second.tools.empty()) return true;
    }
  }
  return false;
}

std::string pieces_text(const detail::Pieces& pieces) {
  std::string s;
  for (const detail::Piece& p : pieces) s += p.text;
  return s;
}

}  // namespace

std::string json_schema_to_typescript(std::string_view schema_json, std::string_view indent) {
  return to_typescript(parse_schema(schema_json, "JSON schema"), std::string(indent));
}

// ---- rendering ----
namespace detail {

void render_message(const Message& message, bool function_tools, Pieces& out) {
  auto special = [&](const char* token) { out.push_back({true, token}); };
  auto text = [&](std::string s) { out.push_back({false, std::move(s)}); };

  special(kStart);
  if (message.author.role == Role::kTool) {
    // A tool's message is headed by the tool's name alone.
    EMBER_CHECK(message.author.name, "harmony: a tool message needs the tool's name as author name");
    text(*message.author.name);
  } else {
    text(std::string(role_name(message.author.role)));
    if (message.author.name) text(":" + *message.author.name);
  }
  if (message.recipient && *message.recipient != "all") text(" to=" + *message.recipient);
  if (message.channel) {
    special(kChannel);
    text(*message.channel);
  }
  if (message.content_type) {
    // <|constrain|> in a content type is the special token, not its spelling.
    std::string_view ct = *message.content_type;
    std::string_view marker = kConstrain;
    if (ct.substr(0, marker.size()) == marker) {
      text(" ");
      special(kConstrain);
      if (ct.size() > marker.size()) text(std::string(ct.substr(marker.size())));
    } else {
      text(" " + *message.content_type);
    }
  }
  special(kMessage);
  for (const Content& c : message.content) {
    if (const auto* t = std::get_if<TextContent>(&c)) {
      text(t->text);
    } else if (const auto* sys = std::get_if<SystemContent>(&c)) {
      EMBER_CHECK(message.author.role == Role::kSystem,
                  "harmony: system content may only appear in a system message, not in a {} message",
                  role_name(message.author.role));
      text(system_text(*sys, function_tools));
    } else if (const auto* dev = std::get_if<DeveloperContent>(&c)) {
      EMBER_CHECK(message.author.role == Role::kDeveloper,
                  "harmony: developer content may only appear in a developer message, not in a {} "
                  "message",
                  role_name(message.author.role));
      text(developer_text(*dev));
    }
  }
  // An assistant message with a recipient is a tool call: the model stops on <|call|>.
  special(message.author.role == Role::kAssistant && message.recipient ? kCall : kEnd);
}

void render_conversation(const Conversation& conversation, const RenderConversationConfig& config,
                         Pieces& out) {
  const auto& msgs = conversation.messages;
  bool function_tools = has_function_tools(conversation);
  bool last_assistant_is_final = false;
  for (auto it = msgs.rbegin(); it != msgs.rend(); ++it) {
    if (it->author.role == Role::kAssistant) {
      last_assistant_is_final = it->channel == "final";
      break;
    }
  }
  // The reference drops analysis only before the *first* final message, and only once the last
  // assistant message is final: a turn still working (tool calls) keeps its chain of thought.
  size_t first_final = msgs.size();
  for (size_t i = 0; i < msgs.size(); ++i) {
    if (msgs[i].channel == "final") {
      first_final = i;
      break;
    }
  }
  bool drop = config.auto_drop_analysis && last_assistant_is_final;
  for (size_t i = 0; i < msgs.size(); ++i) {
    if (drop && i < first_final && msgs[i].channel == "analysis") continue;
    render_message(msgs[i], function_tools, out);
  }
}

void render_completion_prompt(Role next_turn_role, Pieces& out) {
  out.push_back({true, kStart});
  out.push_back({false, std::string(role_name(next_turn_role))});
}

bool ends_in_final_answer(const Conversation& conversation) {
  return !conversation.messages.empty() &&
         conversation.messages.back().author.role == Role::kAssistant &&
         conversation.messages.back().channel == "final";
}

}  // namespace detail

std::string render_text(const Message& message) {
  detail::Pieces pieces;
  detail::render_message(message, false, pieces);
  return pieces_text(pieces);
}

std::string render_conversation_text(const Conversation& conversation,
                                     const RenderConversationConfig& config) {
  detail::Pieces pieces;
  detail::render_conversation(conversation, config, pieces);
  return pieces_text(pieces);
}

std::string render_conversation_for_completion_text(const Conversation& conversation,
                                                    Role next_turn_role,
                                                    const RenderConversationConfig& config) {
  detail::Pieces pieces;
  detail::render_conversation(conversation, config, pieces);
  detail::render_completion_prompt(next_turn_role, pieces);
  return pieces_text(pieces);
}

std::string render_conversation_for_training_text(const Conversation& conversation,
                                                  const RenderConversationConfig& config) {
  detail::Pieces pieces;
  detail::render_conversation(conversation, config, pieces);
  if (detail::ends_in_final_answer(conversation)) pieces.back().text = detail::kReturn;
  return pieces_text(pieces);
}

}  // namespace ember::harmony
