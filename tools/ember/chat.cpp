// ember chat: talk to a gpt-oss checkpoint in the Harmony format. Interactive on a terminal (line
// editing and history through libedit; Ctrl-C stops the answer being written, not the program);
// with stdin not a terminal, one answer per input line and only the final channel on stdout.
#include <editline/readline.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>

#include "commands.h"
#include "ember/core/error.h"
#include "ember/generate/sampler.h"
#include "ember/harmony.h"
#include "ember/models/gpt_oss.h"

namespace ember::cli {

namespace {

using tokenizer::Token;
std::atomic<bool> g_interrupted{false};
void on_sigint(int) { g_interrupted = true; }

const char* kDim = "\x1b[2m";
const char* kReset = "\x1b[0m";

std::optional<harmony::ReasoningEffort> parse_effort(const std::string& s) {
  if (s == "low") return harmony::ReasoningEffort::kLow;
  if (s == "medium") return harmony::ReasoningEffort::kMedium;
  if (s == "high") return harmony::ReasoningEffort::kHigh;
  return std::nullopt;
}
const char* effort_name(harmony::ReasoningEffort e) {
  return e == harmony::ReasoningEffort::kLow ? "low" : e == harmony::ReasoningEffort::kHigh ? "high" : "medium";
}

std::string today() {
  std::time_t t = std::time(nullptr);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", std::localtime(&t));
  return buf;
}

struct ChatOptions {
  std::string model, tokenizer, system, developer, date, reasoning = "medium";
  bool show_reasoning = false;
  int64_t max_tokens = 4096, context = 8192, prefill_chunk = 256;
  float temperature = 1.0f, top_p = 1.0f;
  uint64_t seed = 0;
};

// One chat session: the conversation so far, the model with its caches, and what is in them.
class Chat {
 public:
  Chat(const ChatOptions& o, const GlobalOptions& global)
      : o_(o),
        tok_(load_model_tokenizer(o.model, o.tokenizer)),
        enc_(tok_),
        model_(models::gpt_oss::Model::load(models::gpt_oss::resolve_checkpoint_dir(o.model), global.parsed_device())),
        lm_(model_, o.context, o.prefill_chunk),
        sampling_{.temperature = o.temperature, .top_p = o.top_p},
        gen_(o.seed) {
    sampling_.validate();
    auto e = parse_effort(o.reasoning);
    EMBER_CHECK(e.has_value(), "--reasoning: '{}' is not low, medium or high", o.reasoning);
    effort_ = *e;
    EMBER_CHECK(model_.config().vocab_size > int64_t(enc_.stop_tokens_for_assistant_actions().front()),
                "{}: the model's vocabulary ({} tokens) lacks Harmony's special tokens; ember chat needs a "
                "gpt-oss checkpoint (o200k_harmony)", o.model, model_.config().vocab_size);
  }

  harmony::ReasoningEffort effort() const { return effort_; }
  void set_effort(harmony::ReasoningEffort e) { effort_ = e; }
  void clear() { history_.clear(); }
  size_t turns() const { return history_.size(); }

  struct Output {
    // Where each kind of text goes; null to drop it.
    std::FILE* final_out = stdout;
    std::FILE* reasoning_out = nullptr;
    std::FILE* tool_out = nullptr;
    bool color = false;
  };

  // Adds the user's message, samples the assistant's answer while streaming it, and keeps both.
  void answer(const std::string& user_text, const Output& out) {
    history_.push_back(harmony::Message::from_role_and_content(harmony::Role::kUser, user_text));
    std::vector<int32_t> prompt;
    for (Token t : enc_.render_conversation_for_completion(conversation(), harmony::Role::kAssistant))
      prompt.push_back(int32_t(t));
    const int64_t room = lm_.max_context() - int64_t(prompt.size());
    if (room < 1) {
      history_.pop_back();
      throw_error("the conversation ({} tokens) fills the context of {} tokens; /reset starts over "
                  "(or raise --context)", prompt.size(), lm_.max_context());
    }
    // Reuse the cached prefix the new prompt shares with what the caches hold.
    size_t common = 0;
    while (common < fed_.size() && common < prompt.size() - 1 && fed_[common] == prompt[common]) ++common;
    if (!lm_.rewind(int64_t(common))) {
      lm_.reset();
      common = 0;
    }
    fed_.resize(common);

    auto t0 = std::chrono::steady_clock::now();
    Tensor logits;
    for (size_t at = common; at < prompt.size(); at += size_t(o_.prefill_chunk)) {
      size_t n = std::min(prompt.size() - at, size_t(o_.prefill_chunk));
      logits = lm_.forward(std::span(prompt).subspan(at, n), int64_t(at), false);
      fed_.insert(fed_.end(), prompt.begin() + ptrdiff_t(at), prompt.begin() + ptrdiff_t(at + n));
    }
    auto t1 = std::chrono::steady_clock::now();

    harmony::StreamableParser parser(enc_, harmony::Role::kAssistant, {.strict = false});
    const auto stops = enc_.stop_tokens_for_assistant_actions();
    std::vector<int32_t> generated;
    std::optional<std::string> shown_channel;
    size_t messages_seen = 0;
    bool stopped = false, malformed = false;
    const int64_t limit = std::min<int64_t>(o_.max_tokens, room);
    std::string note;
    // The model samples (on the device with the CUDA runtime: no logits reach the host) and feeds
    // each token back; this sees each one as it comes and says when to stop.
    auto on_token = [&](int32_t t) {
      generated.push_back(t);
      try {
        parser.process(Token(t));
      } catch (const Error& e) {
        note = fmt::format("the model's output is not valid Harmony ({})", e.what());
        malformed = true;
        return false;
      }
      if (parser.messages().size() != messages_seen) {  // a message ended: the next starts a new block
        messages_seen = parser.messages().size();
        end_block(shown_channel, out);
      }
      if (auto delta = parser.last_content_delta())
        show(parser, *delta, shown_channel, out);
      if (std::find(stops.begin(), stops.end(), Token(t)) != stops.end()) {
        stopped = true;
        return false;
      }
      if (g_interrupted) {
        note = "interrupted";
        return false;
      }
      return true;
    };
    if (!g_interrupted) {
      (void)lm_.sample(logits, int64_t(fed_.size()), limit, sampling_, gen_, {}, on_token);
    } else {
      note = "interrupted";
    }
    // Every token but the last was fed back.
    if (!generated.empty()) fed_.insert(fed_.end(), generated.begin(), generated.end() - 1);
    if (!stopped && note.empty())
      note = limit < o_.max_tokens ? std::string("context full")
                                   : fmt::format("stopped at --max-tokens {}", o_.max_tokens);
    if (!malformed && !stopped) {
      try {
        parser.process_eos();
      } catch (const Error&) {
      }
    }
    end_block(shown_channel, out);
    // A turn that reached its final answer keeps only that in the history: gpt-oss is trained
    // without earlier turns' chain of thought (the renderer alone would keep analysis written
    // after the conversation's first final answer).
    bool final_reached = false;
    for (const auto& m : parser.messages()) final_reached |= m.channel == "final";
    for (const auto& m : parser.messages()) {
      if (!(final_reached && m.channel == "analysis")) history_.push_back(m);
      if (m.recipient && out.tool_out)
        std::fprintf(out.tool_out, "%s[tool call to %s: %s — ember chat does not run tools]%s\n", out.color ? kDim : "",
                     m.recipient->c_str(), m.text().c_str(), out.color ? kReset : "");
    }
    auto t2 = std::chrono::steady_clock::now();
    stats_ = fmt::format("{} prompt tokens ({} new) {:.1f} tok/s, {} generated {:.1f} tok/s{}{}", prompt.size(),
                         prompt.size() - common, double(prompt.size() - common) / seconds(t0, t1), generated.size(),
                         double(generated.size()) / seconds(t1, t2), note.empty() ? "" : "; ", note);
  }

  const std::string& stats() const { return stats_; }

 private:
  static double seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
    return std::max(1e-9, std::chrono::duration<double>(b - a).count());
  }

  harmony::Conversation conversation() const {
    harmony::Conversation c;
    auto sys = harmony::SystemContent{}.with_reasoning_effort(effort_).with_conversation_start_date(
        o_.date.empty() ? today() : o_.date);
    if (!o_.system.empty()) sys = std::move(sys).with_model_identity(o_.system);
    c.messages.push_back(harmony::Message::from_role_and_content(harmony::Role::kSystem, std::move(sys)));
    if (!o_.developer.empty())
      c.messages.push_back(harmony::Message::from_role_and_content(
          harmony::Role::kDeveloper, harmony::DeveloperContent{}.with_instructions(o_.developer)));
    c.messages.insert(c.messages.end(), history_.begin(), history_.end());
    return c;
  }

  void show(const harmony::StreamableParser& p, const std::string& delta, std::optional<std::string>& shown,
            const Output& out) {
    std::string channel = p.current_channel().value_or("final");
    bool tool = p.current_recipient().has_value();
    std::FILE* f = tool ? nullptr : channel == "final" ? out.final_out : out.reasoning_out;
    if (!f) return;
    if (shown != channel) {
      end_block(shown, out);
      shown = channel;
      if (channel != "final" && out.color) std::fputs(kDim, f);
    }
    std::fwrite(delta.data(), 1, delta.size(), f);
    std::fflush(f);
  }

  void end_block(std::optional<std::string>& shown, const Output& out) {
    if (!shown) return;
    std::FILE* f = *shown == "final" ? out.final_out : out.reasoning_out;
    if (f) {
      if (*shown != "final" && out.color) std::fputs(kReset, f);
      std::fputs("\n", f);
      std::fflush(f);
    }
    shown.reset();
  }

  ChatOptions o_;
  tokenizer::Tokenizer tok_;
  harmony::HarmonyEncoding enc_;
  models::gpt_oss::Model model_;
  models::gpt_oss::CausalLM lm_;
  generate::SamplingConfig sampling_;
  Generator gen_;  // one stream over the whole session, as one host Sampler would draw
  harmony::ReasoningEffort effort_ = harmony::ReasoningEffort::kMedium;
  std::vector<harmony::Message> history_;
  std::vector<int32_t> fed_;  // tokens the caches hold, in order
  std::string stats_;
};

const char* kHelp =
    "/effort low|medium|high  reasoning effort for the next answers\n"
    "/reasoning               show or hide the analysis channel\n"
    "/reset                   forget the conversation\n"
    "/help                    this list\n"
    "/quit                    leave (or Ctrl-D)\n";

// libedit's callback interface, driven by poll(): a Ctrl-C at the prompt (SIGINT interrupts poll)
// discards the line being typed and shows a fresh prompt, as shells do. nullopt at end of input.
std::optional<std::string> g_line;
bool g_line_done = false;
void on_line(char* raw) {
  g_line_done = true;
  if (raw) g_line = std::string(raw);
  else g_line.reset();
  std::free(raw);
}

std::optional<std::string> read_line(const char* prompt) {
  g_line_done = false;
  g_line.reset();
  rl_callback_handler_install(prompt, on_line);
  while (!g_line_done) {
    pollfd fd{STDIN_FILENO, POLLIN, 0};
    int rc = ::poll(&fd, 1, -1);
    if (g_interrupted) {
      g_interrupted = false;
      rl_callback_handler_remove();
      std::fputs("^C\n", stdout);
      std::fflush(stdout);
      rl_callback_handler_install(prompt, on_line);
      continue;
    }
    if (rc > 0) rl_callback_read_char();
  }
  rl_callback_handler_remove();
  return g_line;
}

void interactive(Chat& chat, ChatOptions& o) {
  std::fprintf(stderr, "ember chat — %s reasoning; /help for commands, Ctrl-C stops an answer, Ctrl-D leaves\n",
               effort_name(chat.effort()));
  using_history();
  for (;;) {
    g_interrupted = false;
    auto got = read_line(">>> ");
    if (!got) {
      std::fputs("\n", stdout);
      break;
    }
    std::string line = *got;
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    add_history(line.c_str());
    if (line[0] == '/') {
      std::string cmd = line.substr(0, line.find(' ')), arg = line.find(' ') == std::string::npos ? "" : line.substr(line.find(' ') + 1);
      if (cmd == "/quit" || cmd == "/exit") break;
      if (cmd == "/help") std::fputs(kHelp, stderr);
      else if (cmd == "/reset") chat.clear(), std::fputs("(conversation cleared)\n", stderr);
      else if (cmd == "/reasoning")
        o.show_reasoning = !o.show_reasoning, std::fprintf(stderr, "(reasoning %s)\n", o.show_reasoning ? "shown" : "hidden");
      else if (cmd == "/effort") {
        if (auto e = parse_effort(arg)) chat.set_effort(*e), std::fprintf(stderr, "(reasoning effort %s)\n", arg.c_str());
        else std::fprintf(stderr, "(/effort takes low, medium or high; now %s)\n", effort_name(chat.effort()));
      } else std::fprintf(stderr, "(unknown command %s; /help lists them)\n", cmd.c_str());
      continue;
    }
    Chat::Output out{.final_out = stdout, .reasoning_out = o.show_reasoning ? stdout : nullptr, .tool_out = stdout,
                     .color = true};
    if (!o.show_reasoning) std::fprintf(stderr, "%s(thinking…)%s\r", kDim, kReset);
    try {
      chat.answer(line, out);
      std::fprintf(stderr, "\x1b[K%s[%s]%s\n", kDim, chat.stats().c_str(), kReset);
    } catch (const Error& e) {
      std::fprintf(stderr, "\x1b[Kember: %s\n", e.what());
    }
  }
}

void batch(Chat& chat, const ChatOptions& o) {
  // One user message per input line; the final answer on stdout, one line each (newlines inside
  // an answer are kept); reasoning on stderr with --show-reasoning.
  Chat::Output out{.final_out = stdout, .reasoning_out = o.show_reasoning ? stderr : nullptr, .tool_out = stderr,
                   .color = false};
  for (std::string line; std::getline(std::cin, line);) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    chat.answer(line, out);
    if (g_interrupted) break;
  }
}

}  // namespace

void register_chat(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand("chat", "Chat with a gpt-oss checkpoint (Harmony format)");
  auto o = std::make_shared<ChatOptions>();
  cmd->add_option("--model", o->model, "Checkpoint directory")->required();
  cmd->add_option("--tokenizer", o->tokenizer, "o200k_base.tiktoken or tokenizer.json (default: found beside the model)");
  cmd->add_option("--reasoning", o->reasoning, "Reasoning effort: low, medium or high")->capture_default_str();
  cmd->add_flag("--show-reasoning", o->show_reasoning, "Show the analysis channel (dimmed; on stderr when not interactive)");
  cmd->add_option("--system", o->system, "Model identity line of the system message");
  cmd->add_option("--developer", o->developer, "Developer instructions");
  cmd->add_option("--date", o->date, "Current date for the system message (default: today)");
  cmd->add_option("--max-tokens", o->max_tokens, "Most tokens per answer")->capture_default_str();
  cmd->add_option("--context", o->context, "Context length in tokens")->capture_default_str();
  cmd->add_option("--temperature", o->temperature, "0 = greedy")->capture_default_str();
  cmd->add_option("--top-p", o->top_p, "Nucleus sampling mass")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Sampling seed")->capture_default_str();
  cmd->add_option("--prefill-chunk", o->prefill_chunk, "Prompt tokens per forward pass")->capture_default_str();
  cmd->callback([o, &global] {
    EMBER_CHECK(o->max_tokens > 0 && o->context > 0 && o->prefill_chunk > 0,
                "--max-tokens, --context and --prefill-chunk must be positive");
    Chat chat(*o, global);
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    if (::isatty(STDIN_FILENO)) interactive(chat, *o);
    else batch(chat, *o);
  });
}

}  // namespace ember::cli
