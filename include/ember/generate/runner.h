#pragma once
// The autoregressive runner: prefill the prompt in chunks, then decode one token at a time until
// a stop token, the token budget or the context limit.
#include <functional>
#include <span>
#include <vector>

#include "ember/generate/sampler.h"

namespace ember::generate {

// What the runner drives. The model keeps its own caches: forward continues from start_pos.
class CausalModel {
 public:
  virtual ~CausalModel() = default;
  virtual int64_t vocab_size() const = 0;
  virtual int64_t max_context() const = 0;
  // Runs `tokens` at positions start_pos.. and returns f32 logits [T, vocab] (all_logits) or
  // [1, vocab] for the last token only.
  virtual Tensor forward(std::span<const int32_t> tokens, int64_t start_pos, bool all_logits) = 0;
  virtual void reset() = 0;
  // Greedy steps: feeds `token` at `start_pos`, then each step's argmax (first on ties), until
  // `count` tokens or `on_token` (optional) returns false; returns the tokens. This default runs
  // forward and takes the argmax on the host; a model that keeps it on the device overrides it.
  virtual std::vector<int32_t> decode_greedy(int32_t token, int64_t start_pos, int64_t count,
                                             const std::function<bool(int32_t)>& on_token);
  // Sampling steps: picks a token from the last row of `logits` (the previous forward's) as
  // Sampler(sampling) would, drawing from `generator` (one uniform a pick unless greedy; it
  // advances), then feeds it at `start_pos`, picks the next from its logits, and so on until
  // `count` tokens or `on_token` (optional) returns false; returns the tokens. `history` holds the
  // tokens before the first pick; the penalties see it and the picks. This default runs forward
  // and Sampler on the host; a model that samples on the device overrides it.
  virtual std::vector<int32_t> sample(const Tensor& logits, int64_t start_pos, int64_t count,
                                      const SamplingConfig& sampling, Generator& generator,
                                      std::span<const int32_t> history,
                                      const std::function<bool(int32_t)>& on_token);
};

enum class StopReason { StopToken, MaxTokens, ContextFull, Callback };
const char* stop_reason_name(StopReason r);

struct RunnerOptions {
  int64_t max_tokens = 128;
  std::vector<int32_t> stop_tokens;
  int64_t prefill_chunk = 256;
  SamplingConfig sampling;
  uint64_t seed = 0;
  // Called for each generated token (stop tokens included); return false to stop.
  std::function<bool(int32_t token)> on_token;
};

struct RunResult {
  std::vector<int32_t> tokens;  // generated tokens (a final stop token included)
  StopReason reason = StopReason::MaxTokens;
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
};

// Resets the model, then prefills and decodes. Greedy sampling without penalties decodes through
// CausalModel::decode_greedy, any other through CausalModel::sample (on CUDA gpt-oss both replay
// a graph and copy no logits to the host). The prompt must be non-empty and leave room in the
// context (a clear error says by how much it does not).
RunResult run(CausalModel& model, std::span<const int32_t> prompt, const RunnerOptions& options);

}  // namespace ember::generate
