#include "ember/generate/runner.h"

#include <algorithm>
#include <chrono>

#include "ember/core/error.h"
#include "ember/generate/sampler.h"

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

namespace {

// The argmax of logits' last row, wherever they live.
int32_t last_row_argmax(const Tensor& logits) {
  return argmax(logits.select(0, logits.dim(0) - 1).to(Device::cpu()).to(DType::F32).to_vector<float>());
}

}  // namespace

std::vector<int32_t> CausalModel::decode_greedy(int32_t token, int64_t start_pos, int64_t count,
                                                const std::function<bool(int32_t)>& on_token) {
  std::vector<int32_t> out;
  for (int64_t i = 0; i < count; ++i) {
    const Tensor logits = forward(std::span<const int32_t>(&token, 1), start_pos + i, false);
    token = last_row_argmax(logits);
    out.push_back(token);
    if (on_token && !on_token(token)) break;
  }
  return out;
}

std::vector<int32_t> CausalModel::sample(const Tensor& logits, int64_t start_pos, int64_t count,
                                         const SamplingConfig& sampling, Generator& generator,
                                         std::span<const int32_t> history,
                                         const std::function<bool(int32_t)>& on_token) {
  Sampler sampler(sampling, generator.seed());
  sampler.generator().set_offset(generator.offset());
  std::vector<int32_t> seen(history.begin(), history.end()), out;
  Tensor row = logits.ndim() == 2 ? logits.select(0, logits.dim(0) - 1) : logits;
  for (int64_t i = 0; i < count; ++i) {
    if (i > 0) {
      const Tensor next = forward(std::span<const int32_t>(&out.back(), 1), start_pos + i - 1, false);
      row = next.select(0, next.dim(0) - 1);
    }
    const int32_t t = sampler.sample(row, seen);
    seen.push_back(t);
    out.push_back(t);
    if (on_token && !on_token(t)) break;
  }
  generator.set_offset(sampler.generator().offset());
  return out;
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
  o.sampling.validate();
  model.reset();

  RunResult r;
  r.prompt_tokens = int64_t(prompt.size());
  auto t0 = clock::now();
  Tensor logits;
  for (int64_t s = 0; s < int64_t(prompt.size()); s += o.prefill_chunk) {
    int64_t n = std::min<int64_t>(o.prefill_chunk, int64_t(prompt.size()) - s);
    logits = model.forward(prompt.subspan(size_t(s), size_t(n)), s, false);
  }
  auto t1 = clock::now();
  r.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();

  const int64_t pos = int64_t(prompt.size());
  const SamplingConfig& sc = o.sampling;
  bool stopped = false, halted = false;
  auto take = [&](int32_t t) {
    r.tokens.push_back(t);
    const bool go_on = !o.on_token || o.on_token(t);
    if (std::find(o.stop_tokens.begin(), o.stop_tokens.end(), t) != o.stop_tokens.end()) stopped = true;
    else if (!go_on) halted = true;
    return !stopped && !halted;
  };
  // Greedy without penalties is plain argmax: let the model run the steps (device-side argmax).
  // Anything else goes through model.sample (device-side sampling where the model has it). Both
  // produce at most one token more than the context has room to feed.
  const bool plain_greedy = sc.greedy() && sc.repetition_penalty == 1.0f && sc.frequency_penalty == 0.0f &&
                            sc.presence_penalty == 0.0f;
  if (o.max_tokens > 0) {
    if (plain_greedy) {
      const int32_t first = last_row_argmax(logits);
      if (take(first) && o.max_tokens > 1 && pos < ctx)
        (void)model.decode_greedy(first, pos, std::min<int64_t>(o.max_tokens - 1, ctx - pos), take);
    } else {
      Generator generator(o.seed);
      (void)model.sample(logits, pos, std::min<int64_t>(o.max_tokens, ctx - pos + 1), sc, generator, prompt, take);
    }
  }
  r.reason = stopped ? StopReason::StopToken
             : halted ? StopReason::Callback
             : int64_t(r.tokens.size()) >= o.max_tokens ? StopReason::MaxTokens
                                                        : StopReason::ContextFull;
  r.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  return r;
}

}  // namespace ember::generate
