// Harmony messages as JSON, in the shapes of the reference's serde types (src/chat.rs): what its
// Python binding sends to Rust and what clients of gpt-oss servers exchange.
#include <nlohmann/json.hpp>

#include "ember/core/error.h"
#include "ember/harmony.h"

namespace ember::harmony {

namespace {

using Json = nlohmann::ordered_json;

// ReasoningEffort has no serde rename: its variants are written as in Rust.
const char* effort_json(ReasoningEffort e) {
  switch (e) {
    case ReasoningEffort::kLow: return "Low";
    case ReasoningEffort::kMedium: return "Medium";
    case ReasoningEffort::kHigh: return "High";
  }
  return "?";
}

Json optional_json(const std::optional<std::string>& s) { return s ? Json(*s) : Json(nullptr); }

Json tools_json(const ToolNamespaces& tools) {
  if (tools.empty()) return nullptr;
  Json out = Json::object();
  for (const auto& [key, ns] : tools) {
    Json fns = Json::array();
    for (const ToolDescription& t : ns.tools) {
      fns.push_back({{"name", t.name},
                     {"description", t.description},
                     {"parameters", t.parameters ? Json::parse(*t.parameters) : Json(nullptr)}});
    }
    out[key] = {{"name", ns.name}, {"description", optional_json(ns.description)}, {"tools", fns}};
  }
  return out;
}

Json content_json(const Content& c) {
  if (const auto* t = std::get_if<TextContent>(&c)) return {{"type", "text"}, {"text", t->text}};
  if (const auto* sys = std::get_if<SystemContent>(&c)) {
    Json channels = nullptr;
    if (sys->channel_config) {
      channels = {{"valid_channels", sys->channel_config->valid_channels},
                  {"channel_required", sys->channel_config->channel_required}};
    }
    return {{"type", "system_content"},
            {"model_identity", optional_json(sys->model_identity)},
            {"reasoning_effort",
             sys->reasoning_effort ? Json(effort_json(*sys->reasoning_effort)) : Json(nullptr)},
            {"tools", tools_json(sys->tools)},
            {"conversation_start_date", optional_json(sys->conversation_start_date)},
            {"knowledge_cutoff", optional_json(sys->knowledge_cutoff)},
            {"channel_config", channels}};
  }
  const auto& dev = std::get<DeveloperContent>(c);
  return {{"type", "developer_content"},
          {"instructions", optional_json(dev.instructions)},
          {"tools", tools_json(dev.tools)}};
}

Json message_json(const Message& m) {
  Json out = {{"role", std::string(role_name(m.author.role))}};
  if (m.author.name) out["name"] = *m.author.name;
  if (m.recipient) out["recipient"] = *m.recipient;
  if (m.content.size() == 1 && std::holds_alternative<TextContent>(m.content[0])) {
    out["content"] = std::get<TextContent>(m.content[0]).text;
  } else {
    Json items = Json::array();
    for (const Content& c : m.content) items.push_back(content_json(c));
    out["content"] = items;
  }
  if (m.channel) out["channel"] = *m.channel;
  if (m.content_type) out["content_type"] = *m.content_type;
  return out;
}

// ---- reading ----

// Field access with errors that say where: `where` is "message 3" or "message 3, content 1".
struct Reader {
  const Json& j;
  std::string where;

  const Json* get(const char* key) const {
    auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
  }
  std::optional<std::string> string(const char* key) const {
    const Json* v = get(key);
    if (!v) return std::nullopt;
    EMBER_CHECK(v->is_string(), "harmony JSON: {}: '{}' must be a string", where, key);
    return v->get<std::string>();
  }
  std::string required_string(const char* key) const {
    auto s = string(key);
    EMBER_CHECK(s, "harmony JSON: {}: missing '{}'", where, key);
    return *s;
  }
};

ToolNamespaces read_tools(const Reader& r) {
  ToolNamespaces out;
  const Json* tools = r.get("tools");
  if (!tools) return out;
  EMBER_CHECK(tools->is_object(), "harmony JSON: {}: 'tools' must be an object", r.where);
  for (const auto& [key, ns_json] : tools->items()) {
    Reader ns{ns_json, r.where + ", tool namespace '" + key + "'"};
    EMBER_CHECK(ns_json.is_object(), "harmony JSON: {} must be an object", ns.where);
    ToolNamespaceConfig ns_config{ns.required_string("name"), ns.string("description"), {}};
    if (const Json* fns = ns.get("tools")) {
      EMBER_CHECK(fns->is_array(), "harmony JSON: {}: 'tools' must be an array", ns.where);
      for (const Json& f : *fns) {
        Reader fr{f, ns.where + ", tool"};
        EMBER_CHECK(f.is_object(), "harmony JSON: {} must be an object", fr.where);
        const Json* params = fr.get("parameters");
        ns_config.tools.push_back({fr.required_string("name"), fr.required_string("description"),
                                   params ? std::optional<std::string>(params->dump())
                                          : std::nullopt});
      }
    }
    out.insert_or_assign(key, std::move(ns_config));
  }
  return out;
}

Content read_content(const Json& j, const std::string& where) {
  Reader r{j, where};
  EMBER_CHECK(j.is_object(), "harmony JSON: {} must be an object", where);
  std::string type = r.required_string("type");
  if (type == "text") return TextContent{r.required_string("text")};
  if (type == "system_content") {
    // serde leaves absent Option fields empty: no defaults here.
    SystemContent sys;
    sys.model_identity = r.string("model_identity");
    sys.reasoning_effort.reset();
    if (auto e = r.string("reasoning_effort")) {
      if (*e == "Low" || *e == "low") {
        sys.reasoning_effort = ReasoningEffort::kLow;
      } else if (*e == "Medium" || *e == "medium") {
        sys.reasoning_effort = ReasoningEffort::kMedium;
      } else if (*e == "High" || *e == "high") {
        sys.reasoning_effort = ReasoningEffort::kHigh;
      } else {
        throw_error("harmony JSON: {}: unknown reasoning_effort '{}'", where, *e);
      }
    }
    sys.tools = read_tools(r);
    sys.conversation_start_date = r.string("conversation_start_date");
    sys.knowledge_cutoff = r.string("knowledge_cutoff");
    sys.channel_config.reset();
    if (const Json* cc = r.get("channel_config")) {
      EMBER_CHECK(cc->is_object(), "harmony JSON: {}: 'channel_config' must be an object", where);
      ChannelConfig config;
      if (const Json* v = Reader{*cc, where}.get("valid_channels")) {
        EMBER_CHECK(v->is_array(), "harmony JSON: {}: 'valid_channels' must be an array", where);
        for (const Json& c : *v) {
          EMBER_CHECK(c.is_string(), "harmony JSON: {}: channels must be strings", where);
          config.valid_channels.push_back(c.get<std::string>());
        }
      }
      if (const Json* req = Reader{*cc, where}.get("channel_required")) {
        EMBER_CHECK(req->is_boolean(), "harmony JSON: {}: 'channel_required' must be a boolean",
                    where);
        config.channel_required = req->get<bool>();
      }
      sys.channel_config = std::move(config);
    }
    return sys;
  }
  if (type == "developer_content") {
    DeveloperContent dev;
    dev.instructions = r.string("instructions");
    dev.tools = read_tools(r);
    return dev;
  }
  throw_error("harmony JSON: {}: unknown content type '{}'", where, type);
}

Message read_message(const Json& j, const std::string& where) {
  EMBER_CHECK(j.is_object(), "harmony JSON: {} must be an object", where);
  Reader r{j, where};
  Message m;
  std::string role = r.required_string("role");
  auto parsed = role_from_name(role);
  EMBER_CHECK(parsed, "harmony JSON: {}: unknown role '{}'", where, role);
  m.author = {*parsed, r.string("name")};
  m.recipient = r.string("recipient");
  m.channel = r.string("channel");
  m.content_type = r.string("content_type");
  const Json* content = r.get("content");
  EMBER_CHECK(content, "harmony JSON: {}: missing 'content'", where);
  if (content->is_string()) {
    m.content.push_back(TextContent{content->get<std::string>()});
  } else {
    EMBER_CHECK(content->is_array(), "harmony JSON: {}: 'content' must be a string or an array",
                where);
    for (size_t i = 0; i < content->size(); ++i) {
      m.content.push_back(read_content((*content)[i], where + ", content " + std::to_string(i)));
    }
  }
  return m;
}

Json parse(std::string_view text) {
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {
    throw_error("harmony JSON: not valid JSON: {}", e.what());
  }
}

}  // namespace

Message message_from_json(std::string_view json) { return read_message(parse(json), "message"); }

Conversation conversation_from_json(std::string_view json) {
  Json j = parse(json);
  const Json* messages = j.is_object() && j.contains("messages") ? &j["messages"] : nullptr;
  EMBER_CHECK(messages && messages->is_array(),
              "harmony JSON: a conversation is an object with a 'messages' array");
  Conversation c;
  for (size_t i = 0; i < messages->size(); ++i) {
    c.messages.push_back(read_message((*messages)[i], "message " + std::to_string(i)));
  }
  return c;
}

std::string to_json(const Message& message) {
  try {
    return message_json(message).dump();
  } catch (const Json::exception& e) {
    throw_error("harmony JSON: {}", e.what());  // tool parameters that are not JSON
  }
}

std::string to_json(const Conversation& conversation) {
  Json messages = Json::array();
  try {
    for (const Message& m : conversation.messages) messages.push_back(message_json(m));
  } catch (const Json::exception& e) {
    throw_error("harmony JSON: {}", e.what());
  }
  return Json{{"messages", messages}}.dump();
}

}  // namespace ember::harmony
