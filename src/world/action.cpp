#include "ember/world/action.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>

#include "ember/core/error.h"

namespace ember::world {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split_ws(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    size_t j = i;
    while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j]))) ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

// A finite float, or an error naming where it came from.
float parse_float(std::string_view s, int64_t line_no, const char* where, const char* what) {
  float v = 0.f;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  EMBER_CHECK(ec == std::errc() && p == s.data() + s.size(), "{} {}: {} '{}' is not a number", where,
              line_no, what, s);
  EMBER_CHECK(std::isfinite(v), "{} {}: {} is {} (mouse values must be finite)", where, line_no,
              what, s);
  return v;
}

// Shortest text that reads back as the same float.
std::string float_text(float v) {
  char buf[32];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;
  return std::string(buf, p);
}

}  // namespace

ActionSpace::ActionSpace(std::vector<KeySpec> extra_keys, float camera_step)
    : keys_{{"forward", "W", 'w'}, {"back", "S", 's'}, {"left", "A", 'a'}, {"right", "D", 'd'}},
      camera_step_(camera_step) {
  EMBER_CHECK(std::isfinite(camera_step) && camera_step > 0.f,
              "ActionSpace: camera_step must be positive and finite, got {}", camera_step);
  for (auto& k : extra_keys) {
    EMBER_CHECK(!k.name.empty() && !k.symbol.empty(), "ActionSpace: extra key needs a name and a symbol");
    for (char c : k.symbol)
      EMBER_CHECK(!std::isspace(static_cast<unsigned char>(c)) && c != '+' && c != '@' && c != '.' &&
                      c != '#' && c != ',',
                  "ActionSpace: key symbol '{}' may not contain spaces or + @ . # ,", k.symbol);
    for (const auto& e : keys_) {
      EMBER_CHECK(!iequals(e.name, k.name) && !iequals(e.symbol, k.symbol) &&
                      !iequals(e.name, k.symbol) && !iequals(e.symbol, k.name),
                  "ActionSpace: key '{}' ({}) clashes with key '{}' ({})", k.name, k.symbol, e.name,
                  e.symbol);
      const std::string_view camera = "ijkl";
      EMBER_CHECK(k.terminal == 0 || (k.terminal != e.terminal &&
                                      camera.find(char(std::tolower(k.terminal))) == camera.npos),
                  "ActionSpace: terminal key '{}' of '{}' is already taken", k.terminal, k.name);
    }
    keys_.push_back(std::move(k));
  }
}

int64_t ActionSpace::key_index(std::string_view s) const {
  for (size_t i = 0; i < keys_.size(); ++i)
    if (iequals(keys_[i].symbol, s) || iequals(keys_[i].name, s)) return int64_t(i);
  std::string known;
  for (const auto& k : keys_) {
    if (!known.empty()) known += ", ";
    known += k.symbol;
  }
  throw_error("unknown key '{}' (known: {})", s, known);
}

Action ActionSpace::idle() const { return Action{std::vector<uint8_t>(keys_.size(), 0), {}}; }

void ActionSpace::validate(const Action& a, int64_t frame) const {
  const std::string where = frame >= 0 ? fmt::format("action of frame {}", frame) : "action";
  EMBER_CHECK(a.keys.size() == keys_.size(), "{}: {} key entries, the action space has {}", where,
              a.keys.size(), keys_.size());
  for (size_t i = 0; i < a.keys.size(); ++i)
    EMBER_CHECK(a.keys[i] <= 1, "{}: key '{}' has value {} (multi-hot: 0 or 1)", where,
                keys_[i].symbol, int(a.keys[i]));
  EMBER_CHECK(std::isfinite(a.mouse.dx) && std::isfinite(a.mouse.dy),
              "{}: mouse ({}, {}) is not finite", where, a.mouse.dx, a.mouse.dy);
}

Action ActionSpace::from_terminal(std::string_view bytes) const {
  Action a = idle();
  auto press = [&](int64_t i) { a.keys[size_t(i)] = 1; };
  for (size_t i = 0; i < bytes.size(); ++i) {
    const char c = bytes[i];
    // Arrow keys: ESC [ A..D (or ESC O A..D in application mode).
    if (c == '\x1b' && i + 2 < bytes.size() && (bytes[i + 1] == '[' || bytes[i + 1] == 'O')) {
      switch (bytes[i + 2]) {
        case 'A': press(0); break;
        case 'B': press(1); break;
        case 'D': press(2); break;
        case 'C': press(3); break;
        default: break;
      }
      i += 2;
      continue;
    }
    const char l = char(std::tolower(static_cast<unsigned char>(c)));
    switch (l) {
      case 'i': a.mouse.dy += camera_step_; continue;
      case 'k': a.mouse.dy -= camera_step_; continue;
      case 'j': a.mouse.dx -= camera_step_; continue;
      case 'l': a.mouse.dx += camera_step_; continue;
      default: break;
    }
    for (size_t k = 0; k < keys_.size(); ++k)
      if (keys_[k].terminal != 0 &&
          (keys_[k].terminal == c || std::tolower(static_cast<unsigned char>(keys_[k].terminal)) == l))
        press(int64_t(k));
  }
  // Held keys repeat: several presses of one camera key in a frame still move one step.
  a.mouse.dx = std::clamp(a.mouse.dx, -camera_step_, camera_step_);
  a.mouse.dy = std::clamp(a.mouse.dy, -camera_step_, camera_step_);
  return a;
}

Action ActionSpace::parse_token(std::string_view keys, int64_t line_no, const char* where) const {
  Action a = idle();
  EMBER_CHECK(!keys.empty(), "{} {}: empty key field", where, line_no);
  if (keys == ".") return a;
  size_t start = 0;
  while (true) {
    size_t plus = keys.find('+', start);
    std::string_view k = keys.substr(start, plus == keys.npos ? keys.npos : plus - start);
    EMBER_CHECK(!k.empty(), "{} {}: empty key name in '{}'", where, line_no, keys);
    int64_t idx;
    try {
      idx = key_index(k);
    } catch (const Error& e) {
      throw_error("{} {}: {}", where, line_no, e.what());
    }
    EMBER_CHECK(!a.keys[size_t(idx)], "{} {}: key '{}' given twice", where, line_no, k);
    a.keys[size_t(idx)] = 1;
    if (plus == keys.npos) break;
    start = plus + 1;
  }
  return a;
}

std::string ActionSpace::format_frame(const Action& a) const {
  validate(a);
  std::string s;
  for (size_t i = 0; i < keys_.size(); ++i)
    if (a.keys[i]) {
      if (!s.empty()) s += '+';
      s += keys_[i].symbol;
    }
  if (s.empty()) s.push_back('.');
  if (a.mouse.dx != 0.f || a.mouse.dy != 0.f) {
    s.push_back(' ');
    s.append(float_text(a.mouse.dx)).push_back(' ');
    s.append(float_text(a.mouse.dy));
  }
  return s;
}

Action ActionSpace::parse_frame(std::string_view line, int64_t line_no) const {
  const char* where = "actions line";
  auto fields = split_ws(line);
  EMBER_CHECK(fields.size() == 1 || fields.size() == 3,
              "{} {}: expected 'KEYS' or 'KEYS dx dy', got {} fields in '{}'", where, line_no,
              fields.size(), trim(line));
  Action a = parse_token(fields[0], line_no, where);
  if (fields.size() == 3) {
    a.mouse.dx = parse_float(fields[1], line_no, where, "mouse dx");
    a.mouse.dy = parse_float(fields[2], line_no, where, "mouse dy");
  }
  return a;
}

std::string ActionSpace::format(const std::vector<Action>& actions) const {
  std::string out = "# ember world actions: KEYS [dx dy] per frame; keys";
  for (const auto& k : keys_) out += " " + k.symbol + "=" + k.name;
  out += "\n";
  for (size_t f = 0; f < actions.size(); ++f) {
    validate(actions[f], int64_t(f));
    out += format_frame(actions[f]) + "\n";
  }
  return out;
}

std::vector<Action> ActionSpace::parse(std::string_view text) const {
  std::vector<Action> out;
  int64_t line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == text.npos ? text.npos : nl - pos);
    ++line_no;
    pos = nl == text.npos ? text.size() + 1 : nl + 1;
    if (size_t hash = line.find('#'); hash != line.npos) line = line.substr(0, hash);
    if (trim(line).empty()) continue;
    out.push_back(parse_frame(line, line_no));
  }
  return out;
}

std::string ActionSpace::format_compact(const std::vector<Action>& actions) const {
  std::string out;
  for (size_t f = 0; f < actions.size(); ++f) {
    const Action& a = actions[f];
    validate(a, int64_t(f));
    std::string tok;
    for (size_t i = 0; i < keys_.size(); ++i)
      if (a.keys[i]) {
        if (!tok.empty()) tok += '+';
        tok += keys_[i].symbol;
      }
    if (tok.empty()) tok.push_back('.');
    if (a.mouse.dx != 0.f || a.mouse.dy != 0.f) {
      tok.push_back('@');
      tok.append(float_text(a.mouse.dx)).push_back(',');
      tok.append(float_text(a.mouse.dy));
    }
    if (f) out += ' ';
    out += tok;
  }
  return out;
}

std::vector<Action> ActionSpace::parse_compact(std::string_view text) const {
  std::vector<Action> out;
  const char* where = "actions frame";
  int64_t frame = 0;
  for (std::string_view tok : split_ws(text)) {
    ++frame;
    size_t at = tok.find('@');
    Action a = parse_token(tok.substr(0, at), frame, where);
    if (at != tok.npos) {
      std::string_view m = tok.substr(at + 1);
      size_t comma = m.find(',');
      EMBER_CHECK(comma != m.npos, "{} {}: mouse '{}' must be dx,dy", where, frame, m);
      a.mouse.dx = parse_float(m.substr(0, comma), frame, where, "mouse dx");
      a.mouse.dy = parse_float(m.substr(comma + 1), frame, where, "mouse dy");
    }
    out.push_back(std::move(a));
  }
  return out;
}

ActionTensors ActionSpace::to_tensors(const std::vector<Action>& actions) const {
  const int64_t n = int64_t(actions.size()), k = num_keys();
  std::vector<float> kb(size_t(n * k)), ms(size_t(n * 2));
  for (int64_t f = 0; f < n; ++f) {
    const Action& a = actions[size_t(f)];
    validate(a, f);
    for (int64_t i = 0; i < k; ++i) kb[size_t(f * k + i)] = a.keys[size_t(i)];
    ms[size_t(f * 2)] = a.mouse.dy;
    ms[size_t(f * 2 + 1)] = a.mouse.dx;
  }
  return {Tensor::from_vector(kb, {1, n, k}), Tensor::from_vector(ms, {1, n, 2})};
}

std::vector<Action> ActionSpace::from_tensors(const Tensor& keyboard, const Tensor& mouse) const {
  EMBER_CHECK(keyboard.ndim() == 3 && keyboard.dim(0) == 1 && keyboard.dim(2) == num_keys(),
              "actions: keyboard must be [1, frames, {}], got {}", num_keys(), keyboard.shape().str());
  EMBER_CHECK(mouse.ndim() == 3 && mouse.dim(0) == 1 && mouse.dim(1) == keyboard.dim(1) &&
                  mouse.dim(2) == 2,
              "actions: mouse must be [1, {}, 2], got {}", keyboard.dim(1), mouse.shape().str());
  auto kb = keyboard.to(Device::cpu()).to(DType::F32).contiguous().to_vector<float>();
  auto ms = mouse.to(Device::cpu()).to(DType::F32).contiguous().to_vector<float>();
  const int64_t n = keyboard.dim(1), k = num_keys();
  std::vector<Action> out;
  for (int64_t f = 0; f < n; ++f) {
    Action a = idle();
    for (int64_t i = 0; i < k; ++i) {
      float v = kb[size_t(f * k + i)];
      EMBER_CHECK(v == 0.f || v == 1.f, "actions: keyboard[0, {}, {}] = {} is not 0 or 1", f, i, v);
      a.keys[size_t(i)] = uint8_t(v);
    }
    a.mouse = {ms[size_t(f * 2 + 1)], ms[size_t(f * 2)]};
    validate(a, f);
    out.push_back(std::move(a));
  }
  return out;
}

std::vector<Action> load_actions(const ActionSpace& space, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EMBER_CHECK(in.good(), "{}: cannot open action file", path);
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return space.parse(ss.str());
  } catch (const Error& e) {
    throw_error("{}: {}", path, e.what());
  }
}

void save_actions(const ActionSpace& space, const std::vector<Action>& actions,
                  const std::string& path) {
  std::string text = space.format(actions);
  std::ofstream out(path, std::ios::binary);
  EMBER_CHECK(out.good(), "{}: cannot write action file", path);
  out << text;
  EMBER_CHECK(out.good(), "{}: write failed", path);
}

}  // namespace ember::world
