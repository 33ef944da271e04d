// ember logits / ember generate: run a gpt-oss checkpoint on token ids.
#include <cstdio>
#include <sstream>

#include "commands.h"
#include "ember/formats/npy.h"
#include "ember/generate/runner.h"
#include "ember/models/gpt_oss.h"

namespace ember::cli {

namespace {

std::vector<int32_t> parse_ids(const std::string& text, const char* option) {
  std::vector<int32_t> ids;
  std::istringstream in(text);
  std::string word;
  while (in >> word) {
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    EMBER_CHECK(used == word.size() && v >= 0 && v <= INT32_MAX, "{}: '{}' is not a token id", option, word);
    ids.push_back(int32_t(v));
  }
  EMBER_CHECK(!ids.empty(), "{}: no token ids given", option);
  return ids;
}

}  // namespace

void register_logits(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand("logits", "Write the logits of every position as a float32 .npy [tokens, vocab]");
  struct Opts {
    std::string model, tokens, out;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--model", o->model, "Checkpoint directory (original or Hugging Face layout; a download's original/ is preferred)")->required();
  cmd->add_option("--tokens", o->tokens, "Token ids separated by spaces")->required();
  cmd->add_option("--out", o->out, "Output .npy file")->required();
  cmd->callback([o, &global] {
    auto model = models::gpt_oss::Model::load(models::gpt_oss::resolve_checkpoint_dir(o->model), global.parsed_device());
    Tensor logits = model.forward(parse_ids(o->tokens, "--tokens"));
    formats::npy::write(o->out, logits);
    std::fprintf(stderr, "wrote %s: logits [%lld, %lld]\n", o->out.c_str(), (long long)logits.dim(0), (long long)logits.dim(1));
  });
}

void register_generate(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand("generate", "Generate tokens from a prompt with a gpt-oss checkpoint");
  struct Opts {
    std::string model, tokens, prompt, stop;
    int64_t max_tokens = 64, prefill_chunk = 256;
    float temperature = 0.0f, top_p = 1.0f;
    int64_t top_k = 0;
    uint64_t seed = 0;
    bool ids = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--model", o->model, "Checkpoint directory")->required();
  auto* tok = cmd->add_option("--tokens", o->tokens, "Prompt as token ids separated by spaces");
  auto* prm = cmd->add_option("--prompt", o->prompt, "Prompt text (needs a tokenizer)");
  tok->excludes(prm);
  cmd->add_option("--max-tokens", o->max_tokens, "Tokens to generate")->capture_default_str();
  cmd->add_option("--temperature", o->temperature, "0 = greedy")->capture_default_str();
  cmd->add_option("--top-p", o->top_p, "Nucleus sampling mass")->capture_default_str();
  cmd->add_option("--top-k", o->top_k, "Keep the k most likely tokens (0 = off)")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Sampling seed")->capture_default_str();
  cmd->add_option("--stop", o->stop, "Stop token ids separated by spaces");
  cmd->add_option("--prefill-chunk", o->prefill_chunk, "Prompt tokens per forward pass")->capture_default_str();
  cmd->add_flag("--ids", o->ids, "Print generated token ids instead of text");
  cmd->callback([o, &global] {
    EMBER_CHECK(o->prompt.empty(), "--prompt needs a tokenizer, which ember does not have yet; pass --tokens");
    EMBER_CHECK(!o->tokens.empty(), "give the prompt with --tokens");
    EMBER_CHECK(o->ids, "printing text needs a tokenizer, which ember does not have yet; pass --ids");
    auto model = models::gpt_oss::Model::load(models::gpt_oss::resolve_checkpoint_dir(o->model), global.parsed_device());
    const auto prompt = parse_ids(o->tokens, "--tokens");
    models::gpt_oss::CausalLM lm(model, int64_t(prompt.size()) + o->max_tokens, o->prefill_chunk);
    generate::RunnerOptions ro;
    ro.max_tokens = o->max_tokens;
    ro.prefill_chunk = o->prefill_chunk;
    ro.sampling = {.temperature = o->temperature, .top_k = o->top_k, .top_p = o->top_p};
    ro.seed = o->seed;
    if (!o->stop.empty()) ro.stop_tokens = parse_ids(o->stop, "--stop");
    bool first = true;
    ro.on_token = [&first](int32_t t) {
      std::printf(first ? "%d" : " %d", t);
      std::fflush(stdout);
      first = false;
      return true;
    };
    auto r = generate::run(lm, prompt, ro);
    std::printf("\n");
    std::fprintf(stderr, "%zu tokens (%s); prefill %.1f tok/s, decode %.1f tok/s\n", r.tokens.size(),
                 generate::stop_reason_name(r.reason), double(r.prompt_tokens) / std::max(r.prefill_seconds, 1e-9),
                 double(r.tokens.size()) / std::max(r.decode_seconds, 1e-9));
  });
}

}  // namespace ember::cli
