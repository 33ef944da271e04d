// ember logits / ember generate: run a gpt-oss checkpoint on token ids.
#include <cstdio>
#include <optional>

#include "commands.h"
#include "ember/formats/npy.h"
#include "ember/generate/runner.h"
#include "ember/models/gpt_oss.h"

namespace ember::cli {


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
    Tensor logits = model.forward(parse_token_ids(o->tokens, "--tokens"));
    formats::npy::write(o->out, logits);
    std::fprintf(stderr, "wrote %s: logits [%lld, %lld]\n", o->out.c_str(), (long long)logits.dim(0), (long long)logits.dim(1));
  });
}

void register_generate(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand("generate", "Generate tokens from a prompt with a gpt-oss checkpoint");
  struct Opts {
    std::string model, tokens, prompt, stop, tokenizer;
    int64_t max_tokens = 64, prefill_chunk = 256;
    float temperature = 0.0f, top_p = 1.0f;
    int64_t top_k = 0;
    uint64_t seed = 0;
    bool ids = false, allow_special = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--model", o->model, "Checkpoint directory")->required();
  auto* tok = cmd->add_option("--tokens", o->tokens, "Prompt as token ids separated by spaces");
  auto* prm = cmd->add_option("--prompt", o->prompt, "Prompt text, encoded with the model's tokenizer");
  cmd->add_option("--tokenizer", o->tokenizer, "o200k_base.tiktoken or tokenizer.json (default: found beside the model)");
  cmd->add_flag("--allow-special", o->allow_special, "Turn special-token text in --prompt into special tokens");
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
    EMBER_CHECK(!o->tokens.empty() || !o->prompt.empty(), "give the prompt with --tokens or --prompt");
    // The tokenizer is needed to encode --prompt and to print text (not for --tokens with --ids).
    std::optional<tokenizer::Tokenizer> tok;
    if (!o->prompt.empty() || !o->ids) tok.emplace(load_model_tokenizer(o->model, o->tokenizer));
    auto model = models::gpt_oss::Model::load(models::gpt_oss::resolve_checkpoint_dir(o->model), global.parsed_device());
    std::vector<int32_t> prompt;
    if (!o->prompt.empty()) {
      for (auto t : tok->encode(o->prompt, o->allow_special ? tokenizer::Specials::kAllow : tokenizer::Specials::kAsText))
        prompt.push_back(int32_t(t));
      EMBER_CHECK(!prompt.empty(), "--prompt: empty text");
    } else {
      prompt = parse_token_ids(o->tokens, "--tokens");
    }
    const int64_t vocab = model.config().vocab_size;
    for (int32_t t : prompt)
      EMBER_CHECK(t < vocab, "prompt token {} is outside the model's vocabulary ({} tokens)", t, vocab);
    models::gpt_oss::CausalLM lm(model, int64_t(prompt.size()) + o->max_tokens, o->prefill_chunk);
    generate::RunnerOptions ro;
    ro.max_tokens = o->max_tokens;
    ro.prefill_chunk = o->prefill_chunk;
    ro.sampling = {.temperature = o->temperature, .top_k = o->top_k, .top_p = o->top_p};
    ro.seed = o->seed;
    if (!o->stop.empty()) ro.stop_tokens = parse_token_ids(o->stop, "--stop");
    bool first = true;
    std::optional<tokenizer::StreamDecoder> text;
    if (!o->ids) text.emplace(*tok);
    ro.on_token = [&](int32_t t) {
      if (text) {
        // Ids the tokenizer does not know (a model whose vocabulary is larger) print as <|id|>.
        std::string piece = uint32_t(t) < tok->vocab_size() ? text->push(uint32_t(t)) : fmt::format("<|{}|>", t);
        std::fwrite(piece.data(), 1, piece.size(), stdout);
      } else {
        std::printf(first ? "%d" : " %d", t);
      }
      std::fflush(stdout);
      first = false;
      return true;
    };
    auto r = generate::run(lm, prompt, ro);
    if (text) {
      std::string rest = text->flush();
      std::fwrite(rest.data(), 1, rest.size(), stdout);
    }
    std::printf("\n");
    std::fprintf(stderr, "%zu tokens (%s); prefill %.1f tok/s, decode %.1f tok/s\n", r.tokens.size(),
                 generate::stop_reason_name(r.reason), double(r.prompt_tokens) / std::max(r.prefill_seconds, 1e-9),
                 double(r.tokens.size()) / std::max(r.decode_seconds, 1e-9));
  });
}

}  // namespace ember::cli
