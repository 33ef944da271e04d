#include "ember/generate/runner.h"

#include <algorithm>
#include <chrono>

#include "ember/core/error.h"

namespace ember::generate {

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::StopToken: return "stop token";
    case StopReason::MaxTokens: return "max tokens";
    case StopReason::ContextFull: return "context full";
    case StopReason::Callback: return "stopped by callback";
  }
  return "?";
}

RunResult run(CausalModel& model, std::span<const int32_t> prompt, const RunnerOptions& o) {
  using clock = std::chrono::steady_clock;
  EMBER_CHECK(!prompt.empty(), "generate: the prompt is empty");
  EMBER_CHECK(o.max_tokens >= 0, "generate: max_tokens must be >= 0, got {}", o.max_tokens);
  EMBER_CHECK(o.prefill_chunk > 0, "generate: prefill_chunk must be positive, got {}", o.prefill_chunk);
  const int64_t ctx = model.max_context(), vocab = model.vocab_size();
  EMBER_CHECK(int64_t(prompt.size()) <= ctx,
              "generate: the prompt has {} tokens but the context holds {} ({} too many)",
              prompt.size(), ctx, int64_t(prompt.size()) - ctx);
  for (int32_t t : prompt)
    EMBER_CHECK(t >= 0 && t < vocab, "generate: prompt token {} outside the vocabulary of {}", t, vocab);
  Sampler sampler(o.sampling, o.seed);
  model.reset();

  RunResult r;
  r.prompt_tokens = int64_t(prompt.size());
  std::vector<int32_t> history(prompt.begin(), prompt.end());
  auto t0 = clock::now();
  Tensor logits;
  for (int64_t s = 0; s < int64_t(prompt.size()); s += o.prefill_chunk) {
    int64_t n = std::min<int64_t>(o.prefill_chunk, int64_t(prompt.size()) - s);
    logits = model.forward(prompt.subspan(size_t(s), size_t(n)), s, false);
  }
  auto t1 = clock::now();
  r.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();

  int64_t pos = int64_t(prompt.size());
  while (true) {
    if (int64_t(r.tokens.size()) >= o.max_tokens) {
      r.reason = StopReason::MaxTokens;
      break;
    }
    int32_t next = sampler.sample(logits.select(0, logits.dim(0) - 1), history);
    r.tokens.push_back(next);
    history.push_back(next);
    bool go_on = !o.on_token || o.on_token(next);
    if (std::find(o.stop_tokens.begin(), o.stop_tokens.end(), next) != o.stop_tokens.end()) {
      r.reason = StopReason::StopToken;
      break;
    }
    if (!go_on) {
      r.reason = StopReason::Callback;
      break;
    }
    if (int64_t(r.tokens.size()) >= o.max_tokens) {
      r.reason = StopReason::MaxTokens;
      break;
    }
    if (pos >= ctx) {  // the sampled token has no room to be fed back
      r.reason = StopReason::ContextFull;
      break;
    }
    logits = model.forward(std::span<const int32_t>(&history.back(), 1), pos, false);
    ++pos;
  }
  r.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  return r;
}

}  // namespace ember::generate
